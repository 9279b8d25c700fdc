"""The rule engine: a batch of normalised events in, the alerts they raise out.

For a batch, :meth:`Engine.process`

1. plans one state op per (event, rule, group) and applies them all in one
   round trip (:meth:`State.apply`). A rule skips an event *too late* for it:
   older than the watermark (:mod:`.eventtime`, once the batch's event times
   have advanced it) by more
   than its window plus ``lateness_ms`` (its state is gone or going). An event
   too late for every rule that would take it is set aside: the caller sends it
   to ``vigie.events.late`` (an event no rule takes is neither late nor used);
2. trims state behind that watermark (never behind a group's newest event).
   An event already in the state (a replay) and older than the watermark by
   more than ``lateness_ms`` reads nothing back: whatever it could complete was
   decided when it first came (a new, late event is decided like any other);
3. evaluates each rule's kind on what each op read back (:mod:`.kinds`);
4. claims the resulting alerts in one more round trip (:meth:`State.claim`),
   keeping only those never raised before and not suppressed.

State errors propagate (nothing is half-decided: every op is idempotent, so
the caller retries the whole batch). The clock is injected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from services.correlate import kinds
from services.correlate.absence import AbsenceOp, AbsenceStore, Taken, absence_alert
from services.correlate.engine_plan import Planner
from services.correlate.engine_rules import (
    _ABSENCE,
    _ANY_ENTITY,
    _ASK,
    _ENTITY,
    _FIELD,
    _OVERLAP,
    _PLACE,
    _PROXIMITY,
    _SKIP,
    _WINDOW,
    _by_type,
    _case,
    _Compiled,
    _decide,
    _digest,
    _filter_types,
    _inner,
    _interval,
    _json_str,
    _Planned,
    _possible_types,
    _tag,
    _type_only,
    event_ms,
)
from services.correlate.eventtime import Watermarks
from services.correlate.rules.loader import RuleSet
from services.correlate.rules.model import AbsenceRule
from services.correlate.state import Claim, Obs, State
from shared.models import AXIS_OF_TYPE, Alert, NormalizedEvent
from shared.redis import Keys

__all__ = [
    "_ABSENCE",
    "_ANY_ENTITY",
    "_ASK",
    "_ENTITY",
    "_FIELD",
    "_OVERLAP",
    "_PLACE",
    "_PROXIMITY",
    "_SKIP",
    "_WINDOW",
    "Engine",
    "Outcome",
    "Planner",
    "_Compiled",
    "_Planned",
    "_by_type",
    "_case",
    "_decide",
    "_digest",
    "_filter_types",
    "_inner",
    "_interval",
    "_json_str",
    "_possible_types",
    "_tag",
    "_type_only",
    "event_ms",
]


@dataclass
class Outcome:
    """What a batch raised: alerts (with their claims) and the late events."""

    alerts: list[tuple[Alert, Claim]] = field(default_factory=list)
    late: list[NormalizedEvent] = field(default_factory=list)
    ops: int = 0
    #: the watermark the batch was decided with (ms)
    watermark: int = 0


class Engine(Planner):
    """Evaluates a :class:`RuleSet` over batches of events, state in ``state``."""

    def __init__(
        self,
        rules: RuleSet,
        state: State,
        keys: Keys,
        lateness_ms: int,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        idle_ms: int = 30_000,
        absences: AbsenceStore | None = None,
    ) -> None:
        self.state = state
        #: Where absence rules keep their timers (None: absence rules do nothing).
        self.absences = absences
        self._busy, self._settled = False, 0
        self._settled_parts: dict[int, tuple[int, bool]] = {}
        self.keys = keys
        self.lateness_ms = lateness_ms
        self.clock = clock
        #: Per-partition event time (``process``'s ``partitions``; partition 0 when not given).
        self.watermarks = Watermarks(idle_ms)
        self.rules = rules

    @property
    def watermark(self) -> int:
        """The watermark now (ms, event time): see :mod:`.eventtime`."""
        return self.watermarks.current(self.clock())

    def settled_watermark(self) -> int:
        """The watermark over the events whose batch is fully applied: what may
        be shared (a batch's events advance :attr:`watermark` before its ops
        are in Redis; an absence must not fire on a missing event that is
        still on its way there)."""
        return self._settled if self._busy else self.watermark

    def settled_partitions(self, now: int) -> dict[int, tuple[int, bool]]:
        """Per partition: (watermark, idle), over the batches fully applied (the
        in-flight batch's partitions at their value before it)."""
        marks = self.watermarks.by_partition(now)
        if self._busy:
            marks = {p: self._settled_parts.get(p, (0, False)) for p in marks}
        return marks

    @property
    def rules(self) -> RuleSet:
        """The active rule set; assigning one (a reload) re-indexes it."""
        return self._rules

    @rules.setter
    def rules(self, rules: RuleSet) -> None:
        compiled = [self._compile(r) for r in rules.rules]
        possible = [_possible_types(c.rule) for c in compiled]
        # per event type, the rules whose filters can accept it (in rule order),
        # each with its decision for that type (see _by_type)
        by_type: dict[str, list[tuple[_Compiled, Any]]] = {etype: [] for etype in AXIS_OF_TYPE}
        for c, types in zip(compiled, possible, strict=True):
            for etype, rules_of_type in by_type.items():
                if types is not None and etype not in types:
                    continue
                decided = _by_type(c, etype)
                if decided is not _SKIP:
                    rules_of_type.append((c, decided))
        self._rules, self._by_type = rules, by_type
        self._absence = any(c.how == _ABSENCE for c in compiled)

    async def process(
        self, events: list[NormalizedEvent], streams: list[Hashable] | None = None
    ) -> Outcome:
        """Correlate ``events`` (in order; ``streams``: the event-time stream each
        was read from, see :mod:`.eventtime`; default: all from one stream); see
        the module docstring."""
        outcome = Outcome()
        planned: list[_Planned] = []
        now = self.clock()
        self._busy = True  # until this batch is applied (a failed one: until the next)
        times = [event_ms(e.occurred_at) for e in events]
        observe = self.watermarks.observe
        for i, t in enumerate(times):
            observe(0 if streams is None else streams[i], t, now)
        wm = outcome.watermark = self.watermarks.current(now)
        for event, t in zip(events, times, strict=True):
            ops = self._plan(event, t, wm)
            if ops is None:
                outcome.late.append(event)
            else:
                planned += ops
        if self._absence and planned:
            absent = [p.op for p in planned if p.op.__class__ is AbsenceOp]
            if absent:
                planned = [p for p in planned if p.op.__class__ is not AbsenceOp]
                if self.absences is not None:
                    await self.absences.record(absent)
        outcome.ops = len(planned)
        version = self.rules.version
        found: dict[int, list[tuple[kinds.Match, Claim]]] = {}

        def decide(i: int, seen: list[Obs]) -> None:
            # runs as each op's answer arrives, while Redis works on the next ops
            p = planned[i]
            if not seen or (len(seen) == 1 and seen[0] is p.op.obs):
                return  # nothing but the event itself: no kind matches a single event
            matches = self._matches(p, seen)
            if matches:
                found[i] = [(m, self._claim(p, m)) for m in matches]

        # a replayed event older than the lateness decides nothing again (below)
        await self.state.apply([p.op for p in planned], decide, wm, wm - self.lateness_ms)
        candidates = [(planned[i], m, c) for i in sorted(found) for m, c in found[i]]
        if candidates:
            fired = await self.state.claim([c for _, _, c in candidates])
            outcome.alerts = [
                (self._alert(p, m, c.alert_id, now, version), c)
                for (p, m, c), ok in zip(candidates, fired, strict=True)
                if ok
            ]
        self._settled, self._busy = wm, False
        if self._absence:
            self._settled_parts = self.watermarks.by_partition(now)
        return outcome

    # -- absences -------------------------------------------------------------------------
    async def fire(self, watermark: int) -> list[tuple[Alert, Taken, str, int]]:
        """The alerts of the absence timers due by ``watermark`` (event time, ms),
        taken for this worker: send them, then :meth:`ack`. A timer whose rule
        is gone (a reload) or whose payload is unreadable is acknowledged with
        no alert."""
        if self.absences is None:
            return []
        now, version = self.clock(), self.rules.version
        out: list[tuple[Alert, Taken, str, int]] = []
        dropped: list[tuple[Taken, str, int]] = []
        for taken in await self.absences.take(watermark, now):
            try:
                rule_id = json.loads(taken.payload)["r"]
                rule = self.rules.by_id.get(rule_id)
                if not isinstance(rule, AbsenceRule):
                    raise KeyError(rule_id)
                alert, head, ttl = absence_alert(rule, taken, now, version)
            except (ValueError, KeyError, TypeError):
                dropped.append((taken, "", 1))
                continue
            out.append((alert, taken, head, ttl))
        if dropped:
            await self.absences.ack(dropped)
        return out

    async def ack(self, fired: list[tuple[Alert, Taken, str, int]]) -> None:
        """Mark fired absence alerts sent (their timers are done)."""
        if self.absences is not None and fired:
            await self.absences.ack([(taken, head, ttl) for _, taken, head, ttl in fired])
