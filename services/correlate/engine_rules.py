"""The rule engine's compiled rules: what planning needs of each rule, once.

Pure, store-free helpers shared by planning and the batch loop: the event time
of an event (:func:`event_ms`, :func:`_interval`), the digests that name a
group's keys (:func:`_digest`, :data:`_tag`), :class:`_Planned` (one planned op
with its event, rule and group), :class:`_Compiled` (a rule's planning data,
computed once per rule set) and the per-event-type decisions
(:func:`_decide`, :func:`_by_type`, :func:`_possible_types`) that let the engine
visit only the rules an event's type can match. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as json_str
from typing import Any

from services.correlate.rules.model import (
    AbsenceRule,
    DistinctRule,
    Filter,
    ProximityRule,
    SequenceRule,
)
from shared.models import NormalizedEvent


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
