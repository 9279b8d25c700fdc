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

import hashlib
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as json_str
from typing import Any

from services.correlate import kinds
from services.correlate.absence import AbsenceOp, AbsenceStore, Taken, absence_alert, absence_op
from services.correlate.alerts import build_alert
from services.correlate.eventtime import Watermarks
from services.correlate.fingerprint import fingerprint
from services.correlate.rules.loader import RuleSet
from services.correlate.rules.model import (
    AbsenceRule,
    DistinctRule,
    Filter,
    OverlapRule,
    ProximityRule,
    SequenceRule,
    ThresholdRule,
)
from services.correlate.state import (
    Claim,
    GeoOp,
    Obs,
    Op,
    State,
    WindowOp,
)
from shared.models import AXIS_OF_TYPE, Alert, NormalizedEvent
from shared.redis import Keys


def event_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _digest(*parts: str) -> str:
    """The hex digest that names a group's keys (its hash tag, its id), of
    ``parts`` joined by ``\\x1f``."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


#: :func:`_digest`, memoised: for the few values that recur (rule ids,
#: départements, sites); entity tokens are mostly new, not cached.
_tag = lru_cache(maxsize=8192)(_digest)


#: JSON of the few strings that recur (agencies, types, départements, step lists,
#: roles); ``json_str`` is what ``json.dumps`` writes for a string.
_json_str = lru_cache(maxsize=4096)(json_str)


@dataclass(slots=True)
class _Planned:
    event: NormalizedEvent
    rule: Any
    group: str
    tag: str
    #: an :data:`Op` (a state op), or an :class:`AbsenceOp` (set aside before apply)
    op: Any
    #: the group's key prefix, ``<prefix>:{<tag>}:<group id>:``
    head: str


def _case(event: NormalizedEvent) -> str | None:
    """The ``case_ref`` group value: the agency's case (agency and reference)."""
    return f"{event.agency}:{event.case_ref}" if event.case_ref else None


#: How a rule's ops are planned: a window op per group, one geo op, an absence op per group.
_WINDOW, _PROXIMITY, _OVERLAP, _ABSENCE = 0, 1, 2, 3
#: ``group_by`` entries: every entity token, the tokens of some kinds, a location field.
_ANY_ENTITY, _ENTITY, _PLACE = 0, 1, 2


#: A rule's decision for an event type that its agency or details may change.
_ASK: Any = object()
#: The observation's value of a distinct rule: its field, read from each event.
_FIELD: Any = object()
#: A rule's decision for an event it does not take.
_SKIP: Any = object()


@dataclass(slots=True)
class _Compiled:
    """What planning needs of one rule, computed once per rule set."""

    rule: Any
    how: int
    #: how long (event time) state is kept behind the watermark: twice the window
    #: plus the lateness, so an event accepted as late as ``horizon`` still finds
    #: every event of the window before it (the same match as if it came in time)
    keep: int
    #: an event older than the watermark by more than this (window + lateness) is
    #: too late for the rule
    horizon: int
    #: per ``group_by`` entry (the ``entity:<kind>`` ones merged into one):
    #: (how, {kind: group prefix} or the location field)
    group_by: tuple[tuple[int, Any], ...] = ()
    neighbours: int = 0
    #: tag, GEO, hash, sorted-set keys, the group's key prefix, the radius (JSON)
    geo: tuple[str, str, str, str, str, str] | None = None
    #: the end of a window op's script arguments (JSON, see ``state._args``), the
    #: same for every op of the rule
    tail: str = ""


def _inner(rule: Any) -> list[Filter] | None:
    """The filters that pick a sequence's steps (and ``until``) or a proximity's
    roles; None for the other kinds."""
    if isinstance(rule, SequenceRule):
        return [*rule.steps] if rule.until is None else [*rule.steps, rule.until]
    if isinstance(rule, ProximityRule):
        return [rule.trigger, rule.reference]
    if isinstance(rule, AbsenceRule):
        return [rule.expect, rule.missing]
    return None


def _type_only(f: Filter, etype: str) -> bool | None:
    """Whether ``f`` accepts every event of type ``etype`` (True), none (False),
    or it depends on their agency or details (None)."""
    if f.types and etype not in f.types:
        return False
    return None if f.agencies or f.details else True


def _decide(c: _Compiled, etype: str, agency: str, details: dict[str, Any]) -> Any:
    """The rule's value (or role) for this event, from its filters; ``_SKIP``
    if it does not take the event."""
    rule = c.rule
    if c.how in (_PROXIMITY, _ABSENCE):
        role = rule.role(etype, agency, details)
        return _SKIP if role is None else role
    if not rule.filter.matches(etype, agency, details):
        return _SKIP
    if isinstance(rule, DistinctRule):
        return _FIELD
    if isinstance(rule, SequenceRule):
        steps = rule.step_of(etype, agency, details)
        if steps:
            return ",".join(map(str, steps))
        return "u" if rule.is_until(etype, agency, details) else _SKIP
    return None


def _by_type(c: _Compiled, etype: str) -> Any:
    """What :meth:`Engine.plan` does with the rule for events of type ``etype``:
    ``_ASK`` (:func:`_decide` per event) when one of its filters looks at the
    agency or details of such events, else what :func:`_decide` answers for
    every one of them (``_SKIP``: never an op)."""
    filters = [c.rule.filter, *(_inner(c.rule) or ())]
    if any(_type_only(f, etype) is None for f in filters):
        return _ASK
    return _decide(c, etype, "", {})


def _filter_types(f: Any) -> set[str] | None:
    """The event types a filter can match (None: any)."""
    return {t.value for t in f.types} if f.types else None


def _possible_types(rule: Any) -> set[str] | None:
    """The event types ``rule.wants`` can accept (None: any); a superset is fine."""
    allowed = _filter_types(rule.filter)
    inner = _inner(rule)
    if inner is None:
        return allowed
    union: set[str] | None = set()
    for x in map(_filter_types, inner):
        union = None if x is None or union is None else union | x
    if allowed is None:
        return union
    return allowed if union is None else allowed & union


@dataclass
class Outcome:
    """What a batch raised: alerts (with their claims) and the late events."""

    alerts: list[tuple[Alert, Claim]] = field(default_factory=list)
    late: list[NormalizedEvent] = field(default_factory=list)
    ops: int = 0
    #: the watermark the batch was decided with (ms)
    watermark: int = 0


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

    def _compile(self, rule: Any) -> _Compiled:
        horizon = rule.window + self.lateness_ms
        keep = horizon + rule.window
        if isinstance(rule, ProximityRule | OverlapRule):
            tag = _tag(rule.id)
            how = _PROXIMITY if isinstance(rule, ProximityRule) else _OVERLAP
            g, h, z = (self.keys.tagged(tag, x) for x in ("g", "h", "z"))
            head = self.keys.tagged(tag, _tag(rule.id, rule.id)[:8], "")
            radius = f'"{rule.radius_m!r}"'
            return _Compiled(rule, how, keep, horizon, geo=(tag, g, h, z, head, radius))
        group_by: list[tuple[int, Any]] = []
        kinds_at: dict[str, str] = {}  # the entity:<kind> entries, as one
        for key in rule.group_by:
            if key == "entity:*":
                group_by.append((_ANY_ENTITY, None))
            elif key.startswith("entity:"):
                if not kinds_at:
                    group_by.append((_ENTITY, kinds_at))
                kinds_at.setdefault(key.split(":", 1)[1], key + "=")
            else:
                group_by.append((_PLACE, key))
        neighbours = rule.count - 1 if isinstance(rule, ThresholdRule) else 0
        tail = f"{rule.window},{keep},{keep},{neighbours}]"
        how = _ABSENCE if isinstance(rule, AbsenceRule) else _WINDOW
        return _Compiled(rule, how, keep, horizon, tuple(group_by), neighbours, tail=tail)

    # -- planning -------------------------------------------------------------------------
    def plan(self, event: NormalizedEvent, t: int | None = None) -> list[_Planned]:
        """The state ops one event needs, one per (rule, group), whatever its lateness."""
        return self._plan(event, event_ms(event.occurred_at) if t is None else t, 0) or []

    def _plan(self, event: NormalizedEvent, t: int, wm: int) -> list[_Planned] | None:
        """The state ops one event needs, one per (rule, group); None when it is
        too late (behind the watermark ``wm`` by more than its window plus the
        lateness) for every rule that takes it.

        Only the rules whose filters can accept the event's type are visited
        (most decided by the type alone, see :func:`_by_type`); the event's
        pointer is encoded once, each op adding its own fields, and each rule's
        script arguments once for all its groups. ``t``: the event time (ms).
        """
        etype = event.type.value
        candidates = self._by_type.get(etype)
        if not candidates:
            return []
        out: list[_Planned] = []
        took = too_late = 0
        agency, details, loc = event.agency, event.details, event.location
        event_id = event.event_id
        handling = event.handling.value
        department = loc.department
        base = (agency, event_id, t, etype, event.case_ref, event.contact, handling, department)
        # the pointer JSON (what Obs.to_json writes), open for the op's own fields
        prefix = f'{{"a":{_json_str(agency)},"e":{json_str(event_id)},"t":{t}'
        prefix += ',"y":' + _json_str(etype)
        if event.case_ref is not None:
            prefix += ',"c":' + json_str(event.case_ref)
        if event.contact is not None:
            prefix += ',"p":' + json_str(event.contact)
        prefix += ',"h":' + _json_str(handling)
        if department is not None:
            prefix += ',"d":' + _json_str(department)
        member = f"{agency}|{event_id}"
        member_json = json_str(member)
        lonlat: str | None = None  # the coordinates as a geo op's arguments
        # (kind, token, the token's digest: its groups' hash tag), once per event
        entities: list[tuple[str, str, str]] | None = None
        kp = self.keys.prefix
        for c, value in candidates:
            rule = c.rule
            if value is _ASK:
                value = _decide(c, etype, agency, details)
                if value is _SKIP:
                    continue
            took += 1
            if t + c.horizon < wm and (c.how != _OVERLAP or _interval(event)[1] + c.horizon < wm):
                too_late += 1
                continue
            if c.how in (_PROXIMITY, _OVERLAP):
                if loc.lat is None or loc.lon is None:
                    continue
                assert c.geo is not None
                tag, gkey, hkey, zkey, head, radius = c.geo
                if c.how == _PROXIMITY:
                    obs = Obs(*base, None, value)
                    pointer = f'{prefix},"r":{_json_str(value)}}}'
                    retain, ttl = t + c.keep, c.keep
                else:
                    start, end = _interval(event)
                    obs = Obs(*base, None, None, start, end)
                    pointer = f'{prefix},"s":{start},"f":{end}}}'
                    retain, ttl = end + c.keep, c.keep + max(0, end - t)
                if lonlat is None:
                    lonlat = f'"{loc.lon!r}","{loc.lat!r}"'
                args = f"[1,{member_json},{lonlat},{json_str(pointer)},{retain},{t},{radius},{ttl}]"
                op: Op = GeoOp(
                    gkey,
                    hkey,
                    zkey,
                    obs,
                    loc.lon,
                    loc.lat,
                    retain,
                    rule.radius_m,
                    ttl,
                    pointer,
                    args,
                )
                out.append(_Planned(event, rule, rule.id, tag, op, head))
                continue
            if value is _FIELD:
                field = rule.field
                value = (
                    agency
                    if field == "agency"
                    else etype
                    if field == "type"
                    else getattr(loc, field)
                )
            # (group, its hash tag: the digest of its value, its group id); one hash
            # tag per group value (entity token, département...): every rule's
            # window on it lives in one slot
            groups: list[tuple[str, str, str]] = []
            rid = rule.id
            for how, arg in c.group_by:
                if how == _PLACE:
                    place = getattr(loc, arg, None) if arg != "case_ref" else _case(event)
                    if place:
                        group = f"{arg}={place}"
                        groups.append((group, _tag(group), _tag(rid, group)[:8]))
                    continue
                if entities is None:
                    entities = [(e.kind.value, e.token, _digest(e.token)) for e in event.entities]
                if how == _ANY_ENTITY:
                    for _, tok, tag in entities:
                        group = "entity=" + tok
                        groups.append((group, tag, _digest(rid, group)[:8]))
                else:
                    for kind, tok, tag in entities:
                        if kind in arg:
                            group = arg[kind] + tok
                            groups.append((group, tag, _digest(rid, group)[:8]))
            if not groups:
                continue
            if len(groups) > 1:
                groups = list(dict.fromkeys(groups))
            if c.how == _ABSENCE:
                pointer = prefix + "}"
                for group, _, gid in groups:
                    aop = absence_op(
                        rule, value, group, gid, event, t, wm, self.lateness_ms, pointer, kp
                    )
                    out.append(_Planned(event, rule, group, aop.tag, aop, aop.head))
                continue
            obs = Obs(*base, value)
            pointer = prefix + "}" if value is None else f'{prefix},"v":{_json_str(value)}}}'
            args = f"[0,{member_json},{t},{json_str(pointer)},{c.tail}"
            window, keep, neighbours = rule.window, c.keep, c.neighbours
            for group, tag, gid in groups:
                head = f"{kp}:{{{tag}}}:{gid}:"
                op = WindowOp(
                    head + "h",
                    head + "z",
                    obs,
                    window,
                    keep,
                    keep,
                    neighbours,
                    pointer,
                    args,
                )
                out.append(_Planned(event, rule, group, tag, op, head))
        return None if took and took == too_late else out

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

    def _claim(self, p: _Planned, m: kinds.Match) -> Claim:
        """The claim of a match: its alert id (a fingerprint of rule, group and
        anchor) as the "fired" key, and the group's suppression key."""
        rule = p.rule
        alert_id = fingerprint(rule.id, p.group, m.anchor)
        ttl = 2 * rule.window + self.lateness_ms  # as long as the state (_Compiled.keep)
        return Claim(
            self.keys.tagged(p.tag, "f", alert_id),
            p.head + "s",
            p.op.obs.t,
            rule.suppress or 0,
            max(ttl, rule.suppress or 0),
            alert_id,
        )

    def _alert(self, p: _Planned, m: kinds.Match, alert_id: str, now: int, version: str) -> Alert:
        """The alert of a claimed match (built only once it is claimed)."""
        event = p.event
        return build_alert(
            p.rule,
            p.group,
            alert_id,
            m.evidence,
            department=event.location.department,
            starts_ms=max(o.t for o in m.evidence),
            lag_ms=now - event_ms(event.occurred_at),
            published_ms=event.published_ms,
            now=now,
            version=version,
        )

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
