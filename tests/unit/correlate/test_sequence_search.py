"""The pruned sequence search gives exactly the exhaustive search's answer.

``reference`` is the plain search the engine used first: every combination of
the step candidates (in order), then a check of the whole chain. The shipped
:func:`kinds.sequence` prunes hopeless branches; on random windows (both
orders, two and three steps, ``until`` events, hot groups over the candidate
cap) both must return the same match.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from services.correlate import kinds
from services.correlate.kinds import _MAX_CANDIDATES, Match, _key, _steps, _with_current
from services.correlate.rules.model import SequenceRule
from services.correlate.state import Obs

TYPES = ["death_threat", "kidnapping", "seizure"]


def rule(n: int, ordered: bool, window: int) -> SequenceRule:
    return SequenceRule.model_validate(
        {
            "id": "seq",
            "title": "t",
            "kind": "sequence",
            "severity": "high",
            "group_by": ["entity:*"],
            "steps": [{"types": [t]} for t in TYPES[:n]],
            "window": window,
            "ordered": ordered,
        }
    )


def reference(r: SequenceRule, cur: Obs, seen: Sequence[Obs]) -> list[Match]:
    """The exhaustive search (the first implementation), for comparison."""
    if not _steps(cur):
        return []
    obs = _with_current(cur, seen)
    untils = [o for o in obs if o.value == "u"]
    n = len(r.steps)
    per_step = [[o for o in obs if i in _steps(o)][:_MAX_CANDIDATES] for i in range(n)]

    def ok(chain: list[Obs]) -> bool:
        ts = [o.t for o in chain]
        if max(ts) - min(ts) > r.window or cur.member not in {o.member for o in chain}:
            return False
        if len({o.member for o in chain}) != n:
            return False
        if r.ordered:
            lo, hi = chain[0], chain[-1]
            return not any(_key(lo) <= _key(u) <= _key(hi) for u in untils)
        return True

    def search(i: int, chain: list[Obs]) -> list[Obs] | None:
        if i == n:
            return chain if ok(chain) else None
        for o in per_step[i]:
            if r.ordered and chain and _key(o) <= _key(chain[-1]):
                continue
            if chain and abs(o.t - chain[0].t) > r.window:
                continue
            found = search(i + 1, [*chain, o])
            if found:
                return found
        return None

    chain = search(0, [])
    if chain is None:
        return []
    evidence = tuple(sorted(chain, key=_key))
    return [Match("|".join(o.member for o in evidence), evidence)]


def obs(i: int, t: int, value: str) -> Obs:
    return Obs(agency="police", event_id=f"e{i:03d}", t=t, type="x", value=value)


def _value(n: int) -> st.SearchStrategy[str]:
    steps = st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True)
    return st.one_of(st.just("u"), steps.map(lambda s: ",".join(map(str, sorted(s)))))


@st.composite
def cases(draw: st.DrawFn) -> tuple[SequenceRule, Obs, list[Obs]]:
    n = draw(st.integers(2, 3))
    r = rule(n, draw(st.booleans()), draw(st.integers(1, 40)))
    size = draw(st.integers(0, 24))
    times = draw(st.lists(st.integers(0, 60), min_size=size, max_size=size))
    seen = [obs(i, t, draw(_value(n))) for i, t in enumerate(times)]
    if seen and draw(st.booleans()):
        cur = draw(st.sampled_from(seen))  # the window read back holds it already
    else:
        cur = obs(999, draw(st.integers(0, 60)), draw(_value(n)))
    return r, cur, seen


@settings(max_examples=400, deadline=None)
@given(cases())
def test_pruned_search_equals_the_exhaustive_one(
    case: tuple[SequenceRule, Obs, list[Obs]],
) -> None:
    r, cur, seen = case
    assert kinds.sequence(r, cur, seen) == reference(r, cur, seen)


def test_hot_group_over_the_candidate_cap() -> None:
    """Hundreds of observations in one group (a busy port): same answer, and the
    chain still holds the current event."""
    for ordered in (True, False):
        r = rule(2, ordered, 50)
        seen = [obs(i, i // 3, "0" if i % 2 else "1") for i in range(400)]
        for cur in (obs(999, 100, "1"), obs(998, 10, "0"), seen[5], seen[300]):
            got = kinds.sequence(r, cur, seen)
            assert got == reference(r, cur, seen)
            if got:
                assert cur.member in {o.member for o in got[0].evidence}
