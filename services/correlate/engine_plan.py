"""The rule engine's planning and alert building: :class:`Planner`.

A mixin of :class:`~services.correlate.engine.Engine` holding the per-kind
work on one event or one match, with no I/O: compiling a rule
(:meth:`Planner._compile`), planning the state ops an event needs, one per
(rule, group), or None when it is too late for every rule that takes it
(:meth:`Planner._plan`), evaluating a rule's kind on what an op read back
(:meth:`Planner._matches`), and building a match's claim and, once claimed, its
alert. It uses the engine's ``keys``, ``lateness_ms`` and per-type rule index
(``_by_type``, built by the ``rules`` setter); the batch loop stays in
:mod:`.engine`.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as json_str
from typing import Any

from services.correlate import kinds
from services.correlate.absence import absence_op
from services.correlate.alerts import build_alert
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
    _case,
    _Compiled,
    _decide,
    _digest,
    _interval,
    _json_str,
    _Planned,
    _tag,
    event_ms,
)
from services.correlate.fingerprint import fingerprint
from services.correlate.rules.model import (
    AbsenceRule,
    DistinctRule,
    OverlapRule,
    ProximityRule,
    SequenceRule,
    ThresholdRule,
)
from services.correlate.state import Claim, GeoOp, Obs, Op, WindowOp
from shared.models import Alert, NormalizedEvent
from shared.redis import Keys


class Planner:
    """Planning and alert building, mixed into the engine (see the module docstring)."""

    keys: Keys
    lateness_ms: int
    _by_type: dict[str, list[tuple[_Compiled, Any]]]

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
