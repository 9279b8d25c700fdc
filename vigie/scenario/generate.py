"""A seeded, deterministic scenario: background traffic, embedded situations, near-misses.

:func:`generate` returns a :class:`Scenario` for ``(seed, days, start, volume)``;
the same arguments always give the same bytes. It holds:

* ``events``: inbound v1 events (each checked with
  :class:`shared.models.InboundEvent`; a generator bug raises ``ValueError``),
  sorted by ``occurred_at``. Every agency appears; départements 13, 59, 75, 76,
  2A, 33, 69, 93 and overseas 971, 972, 973, 974.
* ``expected_alerts``: one object per alert the default rule pack must raise:
  ``rule``, ``severity``, ``department``, ``event_ids`` (the events that form
  the match: all must be in the alert's evidence) and ``situation``.
* ``expected_notifications``: ``cell``, ``rule``, ``department`` per cell that
  must be notified, computed with notify's own routing code on the shipped
  routing file (labels ``rule``, ``severity``, ``department``, ``axis``).
* ``near_misses``: situations that look like a match but must raise nothing
  (just outside a window, just too far, same agency, similar-looking but
  different identifiers), with the reason.

Background traffic (seizures, arrests, intelligence, deal points mapped and
dismantled, planned operations, tips, transactions...) uses fresh identifiers
only and places every deal point, dismantling, planned operation and violent
incident at least 2 km (twice the largest radius) from every other one, so it
raises no alert by construction; it holds no violent incident (those are only
in situations, so the violence-cluster expectations stay exact). Several
situations legitimately also raise ``target_deconfliction`` (e.g. a vessel
tipped by the navy and seized by customs): those co-firings are derived by a
small oracle over the generated entities, not typed by hand. The generator
refuses (``ValueError``) a scenario in which two expected alerts share a rule
and a département (they would share a notification group and be delayed by
``group_interval``).

This module is the entry point and the oracle: :func:`generate` orchestrates
the pieces (data in :mod:`~vigie.scenario.vocab`, state in
:mod:`~vigie.scenario.state`, traffic in :mod:`~vigie.scenario.background`,
situations in :mod:`~vigie.scenario.situations` and
:mod:`~vigie.scenario.absences`), derives co-firings, checks and
notifications here, and :func:`write` / :func:`read_jsonl` handle the files.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vigie.scenario.absences import _absences, _outcome_reports
from vigie.scenario.background import _background
from vigie.scenario.situations import _situations
from vigie.scenario.state import Scenario as Scenario  # re-exported
from vigie.scenario.state import _Gen
from vigie.scenario.vocab import RULES as RULES  # re-exported
from vigie.scenario.vocab import TD_KINDS, TD_WINDOW, VIOLENT
from vigie.scenario.vocab import _iso6346 as _iso6346  # re-exported


def _target_oracle(g: _Gen) -> None:
    """Add the target_deconfliction alerts that situations raise as a side effect.

    For each entity of a deconfliction kind: the first sighting by a second
    agency within 90 days of an earlier one completes a match (department of
    that event). More than two agencies on one entity is refused (each new
    agency raises a new alert; the scenario keeps it simple).
    """
    explicit = {tuple(e["event_ids"]) for e in g.expected if e["rule"] == "target_deconfliction"}
    by_entity: dict[str, list[tuple[datetime, str, str, str]]] = {}
    for canonical, agency, at, event_id, dept in g.sightings:
        if canonical.split(":", 1)[0] in TD_KINDS:
            by_entity.setdefault(canonical, []).append((at, agency, event_id, dept))
    for canonical, seen in sorted(by_entity.items()):
        seen.sort()
        if len({a for _, a, _, _ in seen}) > 2:
            raise ValueError(f"{canonical} held by more than two agencies")
        for i, (at, agency, event_id, dept) in enumerate(seen):
            earlier = [s for s in seen[:i] if s[1] != agency and at - s[0] <= TD_WINDOW]
            if earlier:
                ids = [earlier[0][2], event_id]
                if tuple(ids) not in explicit:
                    g.expect(
                        "target_deconfliction",
                        dept,
                        ids,
                        f"side effect: same {canonical.split(':')[0]}, two agencies",
                    )
                break


def _check(g: _Gen) -> None:
    seen: set[tuple[str, str]] = set()
    for e in g.expected:
        key = (e["rule"], e["department"])
        if key in seen:
            raise ValueError(f"two expected alerts share rule and département: {key}")
        seen.add(key)
    # violence cluster: only the intended département has 3 incidents within 7 days
    times: dict[str, list[datetime]] = {}
    for ev in g.events:
        if ev["type"] in VIOLENT:
            times.setdefault(ev["location"]["department"], []).append(
                datetime.fromisoformat(ev["occurred_at"])
            )
    clusters = {e["department"] for e in g.expected if e["rule"] == "violence_cluster"}
    for dept, ts in times.items():
        ts.sort()
        dense = any(ts[i + 2] - ts[i] <= timedelta(days=7) for i in range(len(ts) - 2))
        if dense != (dept in clusters):
            raise ValueError(f"violence cluster expectation wrong in {dept}")


def expected_notifications(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells each expected alert reaches, by notify's routing on the shipped file."""
    from services.notify.route import default_routing_path, load_routing

    routing = load_routing(default_routing_path())
    out: list[dict[str, Any]] = []
    for a in alerts:
        labels = {
            "rule": a["rule"],
            "severity": a["severity"],
            "department": a["department"],
            "axis": RULES[a["rule"]][1],
        }
        for cell in routing.receivers_for(labels):
            out.append({"cell": cell, "rule": a["rule"], "department": a["department"]})
    return out


def generate(
    seed: int,
    days: int = 14,
    start: datetime | None = None,
    volume: float = 1.0,
    dense: bool = False,
) -> Scenario:
    """Build the scenario; ``ValueError`` on impossible arguments or a generator bug.

    ``dense`` (backfill benchmarks: hundreds of thousands of events): background
    places are not kept apart, so background traffic may raise alerts of its
    own and the expectations are a subset of what the pack raises."""
    if days < 3:
        raise ValueError("days must be at least 3")
    if volume < 0:
        raise ValueError("volume must be ≥ 0")
    start = (start or datetime(2026, 10, 1, tzinfo=UTC)).astimezone(UTC)
    g = _Gen(random.Random(seed), start, seed)
    _background(g, days, volume, dense)
    _situations(g, days)
    unreported = _absences(g, days)
    _outcome_reports(g, unreported)
    _target_oracle(g)
    _check(g)
    g.events.sort(key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
    agencies = {e["agency"] for e in g.events}
    if len(agencies) != 8:
        raise ValueError(f"only {len(agencies)} agencies in the scenario")
    g.expected.sort(key=lambda e: (e["rule"], e["department"]))
    return Scenario(seed, g.events, g.expected, expected_notifications(g.expected), g.near)


def write(scenario: Scenario, out: Path) -> dict[str, Path]:
    """Write the four JSON Lines files into ``out`` (created); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "events": (out / "events.jsonl", scenario.events),
        "expected_alerts": (out / "expected_alerts.jsonl", scenario.expected_alerts),
        "expected_notifications": (
            out / "expected_notifications.jsonl",
            scenario.expected_notifications,
        ),
        "near_misses": (out / "near_misses.jsonl", scenario.near_misses),
    }
    for path, rows in files.values():
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows),
            encoding="utf-8",
        )
    return {k: v[0] for k, v in files.items()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file written by :func:`write`."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
