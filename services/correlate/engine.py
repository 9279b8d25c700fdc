"""The rule engine: a batch of normalised events in, the alerts they raise out.

For a batch, :meth:`Engine.process`

1. sets aside events later than the allowed lateness (behind the highest
   event time seen minus ``lateness_ms``): the caller sends them to
   ``vigie.events.late``;
2. plans one state op per (event, rule, group) and applies them all in one
   round trip (:meth:`State.apply`);
3. evaluates each rule's kind on what each op read back (:mod:`.kinds`);
4. claims the resulting alerts in one more round trip (:meth:`State.claim`),
   keeping only those never raised before and not suppressed.

State errors propagate (nothing is half-decided: every op is idempotent, so
the caller retries the whole batch). The clock is injected.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.correlate import kinds
from services.correlate.fingerprint import fingerprint
from services.correlate.rules.loader import RuleSet
from services.correlate.rules.model import (
    DistinctRule,
    OverlapRule,
    ProximityRule,
    SequenceRule,
    ThresholdRule,
    window_label,
)
from services.correlate.state import Claim, GeoOp, Obs, Op, State, WindowOp
from shared.models import Alert, Annotations, Evidence, Handling, NormalizedEvent
from shared.redis import Keys


def event_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _tag(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class _Planned:
    event: NormalizedEvent
    rule: Any
    group: str
    tag: str
    op: Op


@dataclass
class Outcome:
    """What a batch raised: alerts (with their claims) and the late events."""

    alerts: list[tuple[Alert, Claim]] = field(default_factory=list)
    late: list[NormalizedEvent] = field(default_factory=list)
    ops: int = 0


def _interval(event: NormalizedEvent) -> tuple[int, int]:
    t = event_ms(event.occurred_at)
    start, end = t, t
    for name in ("starts_at", "ends_at"):
        raw = event.details.get(name)
        if isinstance(raw, str):
            try:
                dt = datetime.fromisoformat(raw)
            except ValueError:
                continue
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            if name == "starts_at":
                start = event_ms(dt)
            else:
                end = event_ms(dt)
    return min(start, end), max(start, end)


class Engine:
    """Evaluates a :class:`RuleSet` over batches of events, state in ``state``."""

    def __init__(
        self,
        rules: RuleSet,
        state: State,
        keys: Keys,
        lateness_ms: int,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.rules = rules
        self.state = state
        self.keys = keys
        self.lateness_ms = lateness_ms
        self.clock = clock
        #: Highest event time seen (ms): events behind it by more than the lateness are late.
        self.watermark = 0

    # -- planning -------------------------------------------------------------------------
    def _groups(self, rule: Any, event: NormalizedEvent) -> list[str]:
        out: list[str] = []
        for key in rule.group_by:
            if key == "entity:*":
                out += [f"entity={e.token}" for e in event.entities]
            elif key.startswith("entity:"):
                kind = key.split(":", 1)[1]
                out += [f"{key}={e.token}" for e in event.entities if e.kind.value == kind]
            else:
                value = getattr(event.location, key, None)
                if value:
                    out.append(f"{key}={value}")
        return list(dict.fromkeys(out))

    def _obs(self, event: NormalizedEvent, **extra: Any) -> Obs:
        return Obs(
            agency=event.agency,
            event_id=event.event_id,
            t=event_ms(event.occurred_at),
            type=event.type.value,
            case_ref=event.case_ref,
            contact=event.contact,
            handling=event.handling.value,
            department=event.location.department,
            **extra,
        )

    def plan(self, event: NormalizedEvent) -> list[_Planned]:
        """The state ops one event needs, one per (rule, group)."""
        out: list[_Planned] = []
        etype, agency, details = event.type.value, event.agency, event.details
        t = event_ms(event.occurred_at)
        for rule in self.rules.rules:
            if not rule.wants(etype, agency, details):
                continue
            keep = rule.window + self.lateness_ms
            if isinstance(rule, ProximityRule | OverlapRule):
                loc = event.location
                if loc.lat is None or loc.lon is None:
                    continue
                tag = _tag(rule.id)
                if isinstance(rule, ProximityRule):
                    obs = self._obs(event, role=rule.role(etype, agency, details))
                    retain, ttl = t + keep, keep
                else:
                    start, end = _interval(event)
                    obs = self._obs(event, start=start, end=end)
                    retain, ttl = end + keep, keep + max(0, end - t)
                op: Op = GeoOp(
                    self.keys.tagged(tag, "g"),
                    self.keys.tagged(tag, "h"),
                    self.keys.tagged(tag, "z"),
                    obs,
                    loc.lon,
                    loc.lat,
                    retain,
                    rule.radius_m,
                    ttl,
                )
                out.append(_Planned(event, rule, rule.id, tag, op))
                continue
            if isinstance(rule, DistinctRule):
                value = (
                    agency
                    if rule.field == "agency"
                    else (etype if rule.field == "type" else getattr(event.location, rule.field))
                )
                obs = self._obs(event, value=value)
            elif isinstance(rule, SequenceRule):
                steps = rule.step_of(etype, agency, details)
                obs = self._obs(event, value=",".join(map(str, steps)) if steps else "u")
            else:
                obs = self._obs(event)
            neighbours = rule.count - 1 if isinstance(rule, ThresholdRule) else 0
            for group in self._groups(rule, event):
                # one hash tag per group value (entity token, département...): the
                # windows of every rule on it are updated by one script call
                tag = _tag(group.split("=", 1)[1] if group.startswith("entity") else group)
                gid = _tag(rule.id, group)[:8]  # the rule and the group key's kind
                op = WindowOp(
                    self.keys.tagged(tag, gid, "h"),
                    self.keys.tagged(tag, gid, "z"),
                    obs,
                    rule.window,
                    keep,
                    keep,
                    neighbours,
                )
                out.append(_Planned(event, rule, group, tag, op))
        # the same event's ops on one group next to each other (fewer script calls)
        return sorted(out, key=lambda p: p.tag)

    # -- deciding -------------------------------------------------------------------------
    def _matches(self, p: _Planned, seen: list[Obs]) -> list[kinds.Match]:
        rule, cur = p.rule, p.op.obs
        if isinstance(rule, ThresholdRule):
            return kinds.threshold(rule, cur, seen)
        if isinstance(rule, DistinctRule):
            return kinds.distinct(rule, cur, seen)
        if isinstance(rule, SequenceRule):
            return kinds.sequence(rule, cur, seen)
        if isinstance(rule, ProximityRule):
            return kinds.proximity(rule, cur, seen)
        return kinds.overlap(rule, cur, seen)

    def _alert(self, p: _Planned, m: kinds.Match, now: int) -> tuple[Alert, Claim]:
        rule, event = p.rule, p.event
        alert_id = fingerprint(rule.id, p.group, m.anchor)
        agencies = sorted({o.agency for o in m.evidence})
        labels = {
            **rule.labels,
            "rule": rule.id,
            "severity": rule.severity.value,
            "axis": rule.resolved_axis(),
            "agencies": ",".join(agencies),
        }
        department = event.location.department or next(
            (o.department for o in m.evidence if o.department), None
        )
        if department:
            labels["department"] = department
        if p.group.startswith("entity:"):
            labels["entity_kind"] = p.group.split(":", 1)[1].split("=", 1)[0]
        handling = (
            Handling.SECRET
            if any(o.handling == "secret" for o in m.evidence)
            else Handling.RESTRICTED
        )
        types = ", ".join(sorted({o.type for o in m.evidence}))
        alert = Alert(
            alert_id=alert_id,
            rule=rule.id,
            severity=rule.severity,
            labels=labels,
            annotations=Annotations(
                summary=f"{rule.title}: {', '.join(agencies)} ({types})",
                description=rule.description.strip()
                or f"{rule.kind} within {window_label(rule.window)}",
                group_key=p.group,  # type: ignore[call-arg]  # extra annotations allowed
            ),
            starts_at=datetime.fromtimestamp(max(o.t for o in m.evidence) / 1000, UTC),
            evidence=[
                Evidence(
                    agency=o.agency,  # type: ignore[arg-type]
                    event_id=o.event_id,
                    occurred_at=datetime.fromtimestamp(o.t / 1000, UTC),
                    case_ref=o.case_ref,
                    contact=o.contact,
                )
                for o in m.evidence
            ],
            handling=handling,
            rules_version=self.rules.version,
            event_time_lag_ms=max(0, now - event_ms(event.occurred_at)),
            trigger_published_ms=event.published_ms,
            emitted_ms=now,
        )
        ttl = rule.window + self.lateness_ms
        gid = _tag(rule.id, p.group)[:8]
        claim = Claim(
            self.keys.tagged(p.tag, "f", alert_id),
            self.keys.tagged(p.tag, gid, "s"),
            p.op.obs.t,
            rule.suppress or 0,
            max(ttl, rule.suppress or 0),
        )
        return alert, claim

    async def process(self, events: list[NormalizedEvent]) -> Outcome:
        """Correlate ``events`` (in order); see the module docstring."""
        outcome = Outcome()
        planned: list[_Planned] = []
        for event in events:
            t = event_ms(event.occurred_at)
            if t < self.watermark - self.lateness_ms:
                outcome.late.append(event)
                continue
            self.watermark = max(self.watermark, t)
            planned += self.plan(event)
        outcome.ops = len(planned)
        results = await self.state.apply([p.op for p in planned])
        now = self.clock()
        candidates = [
            self._alert(p, m, now)
            for p, seen in zip(planned, results, strict=True)
            for m in self._matches(p, seen)
        ]
        if candidates:
            fired = await self.state.claim([c for _, c in candidates])
            outcome.alerts = [ac for ac, ok in zip(candidates, fired, strict=True) if ok]
        return outcome
