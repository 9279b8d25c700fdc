"""The kinds' and the state's fast paths give exactly what the plain paths give.

* :func:`kinds._with_current` (built in C): same list as a plain dict and sort,
  for any input (sorted or not, repeated members, ``cur`` in it or not).
* :func:`kinds.sequence` filters each step's candidates in C, stopping at the
  cap, and gives up at once when ``cur`` is no step's candidate: same match as
  the previous Python scan of the whole window (with caps small enough that
  the cap does cut the lists).
* :meth:`Obs.from_json` parses with orjson: same observation as ``json.loads``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.correlate import kinds
from services.correlate.kinds import _steps, _with_current
from services.correlate.rules.model import SequenceRule
from services.correlate.state import Obs
from tests.unit.correlate.test_sequence_search import rule

AGENCIES = ["police", "douane"]


def obs(agency: str, i: int, t: int, value: str | None = None) -> Obs:
    return Obs(agency=agency, event_id=f"e{i:03d}", t=t, type="x", value=value)


@st.composite
def windows(draw: st.DrawFn) -> tuple[Obs, list[Obs]]:
    size = draw(st.integers(0, 30))
    seen = [
        obs(draw(st.sampled_from(AGENCIES)), draw(st.integers(0, 20)), draw(st.integers(0, 30)))
        for _ in range(size)
    ]
    if draw(st.booleans()):  # a window as Redis reads it back: in order, one per member
        seen = sorted({o.member: o for o in seen}.values(), key=lambda o: (o.t, o.member))
    if seen and draw(st.booleans()):
        cur = draw(st.sampled_from(seen))
    else:
        cur = obs(
            draw(st.sampled_from(AGENCIES)), draw(st.integers(0, 25)), draw(st.integers(0, 30))
        )
    return cur, seen


def _with_current_plain(cur: Obs, seen: list[Obs]) -> list[Obs]:
    """What :func:`_with_current` does, in plain Python."""
    by_member = {o.member: o for o in seen}
    by_member.setdefault(cur.member, cur)
    return sorted(by_member.values(), key=lambda o: (o.t, o.member))


@settings(max_examples=500, deadline=None)
@given(windows())
def test_with_current_equals_the_plain_dict_and_sort(case: tuple[Obs, list[Obs]]) -> None:
    cur, seen = case
    got = _with_current(cur, seen)
    want = _with_current_plain(cur, seen)
    assert got == want
    assert [id(o) for o in got] == [id(o) for o in want]  # the very same observations


def test_with_current_cases() -> None:
    a, b, c = obs("police", 1, 5), obs("police", 2, 5), obs("douane", 3, 9)
    assert _with_current(b, [a, b, c]) == [a, b, c]  # in order, holding cur
    assert _with_current(c, [c, a, b]) == [a, b, c]  # out of order
    replay = obs("police", 2, 7)  # same member, another time: the window's wins
    assert _with_current(replay, [a, b, c]) == [a, b, c]
    twice = obs("police", 1, 8)  # a member twice: the last one wins
    assert _with_current(c, [a, twice, c]) == [twice, c]
    assert _with_current(a, []) == [a]


def _candidates_complete(
    obs_: list[Obs], n: int, ordered: bool
) -> tuple[list[tuple[int, str]], list[list[Obs]]]:
    """The candidates as the search built them before: every ``until``, each step's
    list cut after the scan of the whole window."""
    untils = [(o.t, o.member) for o in obs_ if o.value == "u"] if ordered else []
    steps_of = [(o, _steps(o)) for o in obs_]
    cap = kinds._MAX_CANDIDATES
    return untils, [[o for o, s in steps_of if i in s][:cap] for i in range(n)]


def _value(n: int) -> st.SearchStrategy[str]:
    steps = st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True)
    return st.one_of(st.just("u"), steps.map(lambda s: ",".join(map(str, sorted(s)))))


@st.composite
def sequences(draw: st.DrawFn) -> tuple[int, SequenceRule, Obs, list[Obs]]:
    cap = draw(st.integers(1, 4))
    n = draw(st.integers(2, 3))
    r = rule(n, draw(st.booleans()), draw(st.integers(1, 40)))
    size = draw(st.integers(0, 30))
    times = draw(st.lists(st.integers(0, 60), min_size=size, max_size=size))
    seen = [obs("police", i, t, draw(_value(n))) for i, t in enumerate(times)]
    if seen and draw(st.booleans()):
        cur = draw(st.sampled_from(seen))
    else:
        cur = obs("police", 999, draw(st.integers(0, 60)), draw(_value(n)))
    return cap, r, cur, seen


@settings(max_examples=600, deadline=None)
@given(sequences())
def test_sequence_candidates_equal_the_complete_scan(
    case: tuple[int, SequenceRule, Obs, list[Obs]],
) -> None:
    cap, r, cur, seen = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kinds, "_MAX_CANDIDATES", cap)
        got = kinds.sequence(r, cur, seen)
        mp.setattr(kinds, "_candidates", _candidates_complete)
        want = kinds.sequence(r, cur, seen)
    assert got == want


POINTERS: list[dict[str, Any]] = [
    {"a": "police", "e": "e1", "t": 1_790_000_000_000, "y": "seizure", "h": "restricted"},
    {"a": "douane", "e": "é\u2028", "t": -5, "y": "x", "c": "C", "p": "P", "d": "2A", "v": "0,1"},
    {"a": "marine", "e": "\ud800", "t": 3, "y": "x", "r": "t"},  # lone surrogate
    {"a": "marine", "e": "big", "t": 2**70, "y": "x", "s": -(2**65), "f": 2**64},
    {"a": "ofast", "e": "e2", "t": 7, "y": "planned_operation", "s": 1, "f": 9},
]


@pytest.mark.parametrize("pointer", POINTERS)
def test_from_json_equals_json_loads(pointer: dict[str, Any]) -> None:
    for raw in (json.dumps(pointer), json.dumps(pointer, separators=(",", ":")).encode()):
        want = Obs.from_dict(json.loads(raw))  # the reference: json.loads
        got = Obs.from_json(raw)
        assert got == want
        assert [type(getattr(got, f)) for f in ("t", "start", "end")] == [
            type(getattr(want, f)) for f in ("t", "start", "end")
        ]
        assert Obs.from_json(got.to_json()) == got
