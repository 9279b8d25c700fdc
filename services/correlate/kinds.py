"""The kinds' decisions: pure functions over the observations a state op read back.

Each takes the rule, the current observation and the observations within the
window (or radius) around it, and returns the :class:`Match` es the current
observation completes. A match's ``anchor`` identifies it (with the rule and
the group it feeds the alert's fingerprint), so the same state gives the same
anchor whatever the arrival order of the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, islice, repeat
from operator import attrgetter, eq

from services.correlate.rules.model import (
    DistinctRule,
    OverlapRule,
    ProximityRule,
    SequenceRule,
    ThresholdRule,
)
from services.correlate.state import Obs

#: Candidates tried per sequence step (bounds the search on hot groups).
_MAX_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class Match:
    anchor: str
    evidence: tuple[Obs, ...]


#: (event time, member): the order of a window (in C: the kinds sort with it).
_key = attrgetter("t", "member")
_member = attrgetter("member")
_value = attrgetter("value")


def _with_current(cur: Obs, seen: Sequence[Obs]) -> list[Obs]:
    """``seen`` with ``cur`` added unless an observation of its member is there
    (one per member: the last one seen wins), sorted by (event time, member).

    All in C: a window read back from Redis is already in order, which the
    sort only checks."""
    obs = dict(zip(map(_member, seen), seen, strict=True))
    obs.setdefault(cur.member, cur)
    return sorted(obs.values(), key=_key)


def threshold(rule: ThresholdRule, cur: Obs, seen: Sequence[Obs]) -> list[Match]:
    """The earliest run of ``count`` events spanning at most the window that includes ``cur``."""
    obs = _with_current(cur, seen)
    n = rule.count
    i_cur = next(i for i, o in enumerate(obs) if o.member == cur.member)
    for start in range(max(0, i_cur - n + 1), min(i_cur, len(obs) - n) + 1):
        run = obs[start : start + n]
        if len(run) == n and run[-1].t - run[0].t <= rule.window:
            return [Match(run[0].member, tuple(run))]
    return []


def distinct(rule: DistinctRule, cur: Obs, seen: Sequence[Obs]) -> list[Match]:
    """≥ ``count`` distinct values within the window of ``cur``; the evidence is the
    earliest observation of each value, and the anchor the values with the
    window bucket of the earliest: a new value (a third agency) is a new alert."""
    if cur.value is None:
        return []
    first: dict[str, Obs] = {}
    for o in _with_current(cur, seen):
        if o.value is not None and abs(o.t - cur.t) <= rule.window:
            first.setdefault(o.value, o)
    if len(first) < rule.count:
        return []
    values = sorted(first)
    earliest = min(first.values(), key=_key)
    evidence = tuple(sorted(first.values(), key=_key))
    return [Match(f"{','.join(values)}|{earliest.t // rule.window}", evidence)]


@lru_cache(maxsize=256)
def _parse_steps(value: str | None) -> frozenset[int]:
    if not value or value == "u":
        return frozenset()
    return frozenset(int(s) for s in value.split(","))


def _steps(o: Obs) -> frozenset[int]:
    return _parse_steps(o.value)


def _candidates(
    obs: list[Obs], n: int, ordered: bool
) -> tuple[list[tuple[int, str]], list[list[Obs]]]:
    """The ``until`` keys (``ordered`` only) and, per step, the first
    :data:`_MAX_CANDIDATES` observations that can take it, in the order of ``obs``.

    Filtered in C (by value: the few distinct values are parsed once), a step's
    scan stopping at its last candidate. Raises ``ValueError`` on a value that
    is not a list of steps (an observation of another kind of rule).
    """
    values = list(map(_value, obs))
    untils = [_key(o) for o in compress(obs, map(eq, repeat("u"), values))] if ordered else []
    steps_of = {v: _parse_steps(v) for v in set(values)}
    per_step: list[list[Obs]] = []
    for i in range(n):
        takes = {v for v, steps in steps_of.items() if i in steps}
        matching = compress(obs, map(takes.__contains__, values))
        per_step.append(list(islice(matching, _MAX_CANDIDATES)))
    return untils, per_step


def sequence(rule: SequenceRule, cur: Obs, seen: Sequence[Obs]) -> list[Match]:
    """The earliest chain of the steps, including ``cur``, within the window.

    Ordered: strictly increasing (event time, then pointer) and no ``until``
    event between its first and last step. Unordered: one event per step,
    any order, spanning at most the window.

    "Earliest": the first chain in the order of the candidates of step 1, then
    step 2... (each by event time, at most ``_MAX_CANDIDATES`` per step). The
    search prunes only branches that cannot succeed (a repeated event, a span
    over the window, an ``until`` already inside, ``cur`` no longer placeable),
    so its answer is the one an exhaustive search in that order gives.
    """
    cur_steps = _steps(cur)
    if not cur_steps:
        return []
    obs = _with_current(cur, seen)
    me = cur.member
    n = len(rule.steps)
    window = rule.window
    ordered = rule.ordered
    untils, per_step = _candidates(obs, n, ordered)
    # the last step ``cur`` can take: past it, a chain without ``cur`` is hopeless
    last_cur = max(i for i in cur_steps if i < n) if any(i < n for i in cur_steps) else -1
    if last_cur < 0:
        return []
    # ``cur`` itself, where the bounded candidate lists hold it
    cur_at = [next((o for o in per_step[i] if o.member == me), None) for i in range(n)]
    if all(o is None for o in cur_at):
        return []  # ``cur`` is no step's candidate (a hot window): no chain can hold it

    def search(
        i: int, chain: list[Obs], members: set[str], lo: int, hi: int, has_cur: bool
    ) -> list[Obs] | None:
        if i == n:
            return chain if has_cur else None
        if not has_cur and i == last_cur:
            only = cur_at[i]
            candidates: list[Obs] = [only] if only is not None else []
        else:
            candidates = per_step[i]
        for o in candidates:
            if o.member in members:
                continue
            t = o.t
            nlo, nhi = (t, t) if not chain else (min(lo, t), max(hi, t))
            if nhi - nlo > window:
                continue
            if ordered and chain:
                k, first = _key(o), _key(chain[0])
                if k <= _key(chain[-1]):
                    continue
                if any(first <= u <= k for u in untils):
                    continue
            found = search(
                i + 1, [*chain, o], members | {o.member}, nlo, nhi, has_cur or o.member == me
            )
            if found:
                return found
        return None

    chain = search(0, [], set(), 0, 0, False)
    if chain is None:
        return []
    evidence = tuple(sorted(chain, key=_key))
    return [Match("|".join(o.member for o in evidence), evidence)]


def proximity(rule: ProximityRule, cur: Obs, near: Sequence[Obs]) -> list[Match]:
    """A trigger with the references at most ``window`` before it (one alert per
    trigger); a late reference completes the triggers already seen after it."""
    if cur.role == "t":
        refs = sorted(
            (o for o in near if o.role == "r" and 0 <= cur.t - o.t <= rule.window), key=_key
        )
        return [Match(cur.member, (*refs[:8], cur))] if refs else []
    if cur.role == "r":
        return [
            Match(o.member, (cur, o))
            for o in sorted(near, key=_key)
            if o.role == "t" and 0 <= o.t - cur.t <= rule.window
        ]
    return []


def overlap(rule: OverlapRule, cur: Obs, near: Sequence[Obs]) -> list[Match]:
    """Every other interval near ``cur`` that overlaps it (from another agency)."""
    cs = cur.start if cur.start is not None else cur.t
    ce = cur.end if cur.end is not None else cur.t
    out = []
    for o in sorted(near, key=_key):
        if rule.different_agencies and o.agency == cur.agency:
            continue
        os_, oe = o.start if o.start is not None else o.t, o.end if o.end is not None else o.t
        if cs <= oe and os_ <= ce:
            pair = tuple(sorted((cur, o), key=lambda x: x.member))
            out.append(Match("|".join(p.member for p in pair), pair))
    return out
