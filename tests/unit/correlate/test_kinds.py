"""Each kind through the engine, on an injected clock and the in-memory state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.correlate.engine import Engine
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import RuleSet, load_dir
from services.correlate.state import MemoryState
from shared.models import NormalizedEvent
from shared.redis import Keys

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
DAY = timedelta(days=1)
NOW_MS = 1_900_000_000_000


def ev(eid: str, agency: str, etype: str, at: datetime, **kw: Any) -> NormalizedEvent:
    ents = [{"kind": k, "token": f"t:{v}"} for k, v in kw.pop("entities", {}).items()]
    return NormalizedEvent.model_validate(
        {
            "event_id": eid,
            "agency": agency,
            "type": etype,
            "occurred_at": at.isoformat(),
            "entities": ents,
            "case_ref": f"c-{eid}",
            "contact": "unit",
            **kw,
        }
    )


def engine(rules: RuleSet | None = None, lateness_days: int = 7) -> Engine:
    return Engine(
        rules or load_dir(DEFAULT_DIR),
        MemoryState(),
        Keys("u"),
        lateness_days * 86_400_000,
        clock=lambda: NOW_MS,
    )


async def run(e: Engine, events: list[NormalizedEvent], rule: str) -> list[list[str]]:
    out = []
    for event in events:
        outcome = await e.process([event])
        out += [[x.event_id for x in a.evidence] for a, _ in outcome.alerts if a.rule == rule]
    return out


def one_rule(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "r.yaml").write_text(text)
    return load_dir(tmp_path)


async def test_threshold_fires_once_per_run_in_event_time() -> None:
    e = engine()
    shots = [
        ev(f"s{i}", "police", "shooting", T0 + i * 2 * DAY, location={"department": "13"})
        for i in range(5)
    ]
    # s0,s1,s2 span 4 days (fires); s3, s4 are suppressed for 7 days
    assert await run(e, shots, "violence_cluster") == [["s0", "s1", "s2"]]


async def test_threshold_respects_the_window_edge(tmp_path: Path) -> None:
    rules = one_rule(
        tmp_path,
        """
id: three
title: t
kind: threshold
severity: info
group_by: [department]
count: 3
window: 2d
""",
    )
    e = engine(rules)
    loc = {"department": "75"}
    events = [
        ev("a", "police", "arrest", T0, location=loc),
        ev("b", "police", "arrest", T0 + DAY, location=loc),
        ev("c", "police", "arrest", T0 + 2 * DAY + timedelta(seconds=1), location=loc),
        ev("d", "police", "arrest", T0 + 2 * DAY + timedelta(seconds=2), location=loc),
    ]
    assert await run(e, events, "three") == [["b", "c", "d"]]


async def test_distinct_counts_agencies_and_pointers_only() -> None:
    e = engine()
    p = ev(
        "p1",
        "police",
        "seizure",
        T0,
        entities={"phone": "A"},
        location={"department": "13"},
        handling="secret",
    )
    d = ev("d1", "douane", "seizure", T0 + 3 * DAY, entities={"phone": "A"})
    outcome = [await e.process([p]), await e.process([d])]
    assert not outcome[0].alerts
    ((alert, _),) = outcome[1].alerts
    assert alert.rule == "target_deconfliction"
    assert alert.labels["agencies"] == "douane,police"
    assert alert.labels["audience"] == "holders"
    assert alert.labels["department"] == "13"  # from the evidence when the trigger has none
    assert alert.handling.value == "secret"  # the strictest of the evidence
    assert alert.rules_version == e.rules.version
    assert [x.case_ref for x in alert.evidence] == ["c-p1", "c-d1"]
    assert alert.event_time_lag_ms == NOW_MS - int((T0 + 3 * DAY).timestamp() * 1000)
    # the same events again (a replay, or a second worker) raise nothing
    assert not (await e.process([p, d])).alerts


async def test_sequence_in_event_time_order_whatever_the_arrival() -> None:
    e = engine()
    kd = ev("kd", "gendarmerie", "kidnapping", T0 + 5 * DAY, entities={"person": "X"})
    th = ev("th", "police", "death_threat", T0, entities={"person": "X"})
    assert await run(e, [kd, th], "threat_escalation") == [["th", "kd"]]
    e2 = engine()
    th_after = ev("th2", "police", "death_threat", T0 + 6 * DAY, entities={"person": "X"})
    assert await run(e2, [kd, th_after], "threat_escalation") == []


async def test_sequence_until_cancels(tmp_path: Path) -> None:
    rules = one_rule(
        tmp_path,
        """
id: tip_then_seizure
title: t
kind: sequence
severity: high
group_by: [entity:vessel]
steps: [{types: [maritime_intel]}, {types: [seizure]}]
until: {types: [operation_report]}
window: 30d
""",
    )
    vessel = {"vessel": "V"}
    events = [
        ev("mi", "marine", "maritime_intel", T0, entities=vessel),
        ev("or", "marine", "operation_report", T0 + DAY, entities=vessel),
        ev("sz", "douane", "seizure", T0 + 2 * DAY, entities=vessel),
    ]
    assert await run(engine(rules), events, "tip_then_seizure") == []
    assert await run(engine(rules), [events[0], events[2]], "tip_then_seizure") == [["mi", "sz"]]


async def test_unordered_sequence_and_three_steps(tmp_path: Path) -> None:
    rules = one_rule(
        tmp_path,
        """
id: three_steps
title: t
kind: sequence
severity: high
group_by: ["entity:*"]
steps: [{types: [intel_share]}, {types: [arrest]}, {types: [seizure]}]
window: 10d
""",
    )
    x = {"person": "X"}
    events = [
        ev("i", "police", "intel_share", T0, entities=x),
        ev("s", "douane", "seizure", T0 + 2 * DAY, entities=x),
        ev("a", "police", "arrest", T0 + DAY, entities=x),
    ]
    assert await run(engine(rules), events, "three_steps") == [["i", "a", "s"]]
    e = engine()
    assert await run(
        e,
        [
            ev("sz", "police", "seizure", T0, entities={"vehicle": "V"}),
            ev("ws", "police", "weapons_seizure", T0 + DAY, entities={"vehicle": "V"}),
        ],
        "arms_and_drugs",
    ) == [["sz", "ws"]]


async def test_proximity_both_ways_and_radius() -> None:
    e = engine()
    here = {"lat": 43.3, "lon": 5.38, "department": "13"}
    near = {"lat": 43.3030, "lon": 5.38}  # ~330 m
    far = {"lat": 43.3060, "lon": 5.38}  # ~670 m
    events = [
        ev("dp", "police", "deal_point", T0, location=here, details={"status": "active"}),
        ev("far", "police", "shooting", T0 + DAY, location=far),
        ev("sh", "police", "shooting", T0 + DAY, location=near),
    ]
    assert await run(e, events, "violence_near_deal_point") == [["dp", "sh"]]
    # retaliation: violence first, the dismantling reported late (within lateness)
    e2 = engine()
    events = [
        ev("ho", "police", "homicide", T0 + 3 * DAY, location=far),
        ev("dm", "police", "dismantling_operation", T0, location=here),
    ]
    assert await run(e2, events, "retaliation_after_dismantling") == [["dm", "ho"]]


async def test_overlap_needs_time_space_and_two_agencies() -> None:
    e = engine()

    def op(eid: str, agency: str, start_h: int, end_h: int, lat: float) -> NormalizedEvent:
        return ev(
            eid,
            agency,
            "planned_operation",
            T0,
            location={"lat": lat, "lon": 5.38},
            details={
                "starts_at": (T0 + timedelta(hours=start_h)).isoformat(),
                "ends_at": (T0 + timedelta(hours=end_h)).isoformat(),
            },
        )

    events = [
        op("p1", "police", 10, 14, 43.3),
        op("p2", "police", 10, 14, 43.3),
        op("g1", "gendarmerie", 15, 16, 43.3),
        op("g2", "gendarmerie", 13, 16, 43.31),
        op("d1", "douane", 13, 20, 43.302),
    ]
    got = await run(e, events, "operation_deconfliction")
    assert sorted(map(sorted, got)) == [["d1", "g1"], ["d1", "p1"], ["d1", "p2"]]
    outcome = await e.process(events[-1:])
    assert not outcome.alerts


async def test_late_events_are_set_aside() -> None:
    """Too late only when older than every window that takes it (seizures: the
    180-day laundering link is the longest) plus the lateness."""
    e = engine(lateness_days=2)
    first = ev("a", "police", "seizure", T0 + 200 * DAY, entities={"phone": "A"})
    # the same stream (agency, partition): police's event time is at 200 days
    late = ev("b", "police", "seizure", T0, entities={"phone": "A"})
    within = ev("c", "douane", "seizure", T0 + 170 * DAY, entities={"phone": "A"})
    assert not (await e.process([first])).alerts
    assert [x.event_id for x in (await e.process([late])).late] == ["b"]
    outcome = await e.process([within])
    assert not outcome.late
    # 30 days behind: too late for nothing; the 90-day deconfliction takes it
    assert [a.rule for a, _ in outcome.alerts] == ["target_deconfliction"]


async def test_one_round_trip_per_batch_for_all_rules() -> None:
    e = engine()
    state = e.state
    assert isinstance(state, MemoryState)
    batch = [
        ev(
            f"e{i}",
            "police" if i % 2 else "douane",
            "seizure",
            T0 + i * DAY,
            entities={"phone": f"P{i // 2}", "vehicle": f"V{i}"},
            location={"department": "13", "site": "FRMRS"},
        )
        for i in range(20)
    ]
    outcome = await e.process(batch)
    assert outcome.ops > len(batch)  # several rules and groups per event
    assert state.round_trips == 2  # one apply, one claim
    assert len([a for a, _ in outcome.alerts if a.rule == "target_deconfliction"]) == 10


@pytest.mark.parametrize("n", [1, 3])
async def test_alert_ids_are_deterministic(n: int) -> None:
    events = [
        ev("p1", "police", "seizure", T0, entities={"phone": "A"}),
        ev("d1", "douane", "seizure", T0 + DAY, entities={"phone": "A"}),
    ]
    ids = set()
    for _ in range(n):
        e = engine()
        ids |= {a.alert_id for a, _ in (await e.process(events)).alerts}
    assert len(ids) == 1
