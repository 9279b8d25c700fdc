"""Routing semantics (Alertmanager's), matchers, timers, time intervals, inhibition."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from services.notify import route as route_mod
from services.notify.group import Member, content_state, group_id, to_notify
from services.notify.inhibit import inhibited
from services.notify.matchers import parse_matcher, parse_matchers
from services.notify.route import (
    RoutingError,
    default_routing_path,
    load_routing,
    parse_duration,
    parse_routing,
)
from services.notify.route_cli import cli_routes_test

CONFIG = """
route:
  receiver: hq
  group_by: [rule]
  group_wait: 30s
  routes:
    - receiver: a
      matchers: ['severity="critical"']
      group_wait: 0s
      continue: true
    - receiver: b
      match: {department: "13"}
      group_by: ['...']
      routes:
        - receiver: c
          match_re: {axis: "organ.*"}
          repeat_interval: 1h
    - receiver: d
      matchers: ['department=~"7[0-9]"', 'axis!="circulation"']
      mute_time_intervals: [nights]
    - receiver: e
      matchers: ['{department="2A",rule!~"x|y"}']
receivers: [{name: hq}, {name: a}, {name: b}, {name: c}, {name: d}, {name: e}]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "20:00", end_time: "24:00"}]
        weekdays: ["monday:friday"]
        location: Europe/Paris
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [department]
"""


@pytest.fixture
def routing():  # type: ignore[no-untyped-def]
    return parse_routing(yaml.safe_load(CONFIG))


def test_matchers_all_operators() -> None:
    labels = {"a": "x", "b": "yz"}
    assert parse_matcher('a="x"').matches(labels)
    assert parse_matcher("a=x").matches(labels)
    assert not parse_matcher('a!="x"').matches(labels)
    assert parse_matcher('b=~"y.*"').matches(labels)
    assert not parse_matcher('b=~"y"').matches(labels)  # anchored
    assert parse_matcher('b!~"y"').matches(labels)
    assert parse_matcher('missing=""').matches(labels)  # absent == empty
    assert parse_matcher('missing!~".+"').matches(labels)
    assert len(parse_matchers(['{a="x", b=~"y.*"}'])) == 2
    assert parse_matcher('a="with \\"quote\\""').value == 'with "quote"'
    for bad in ("a", 'a=~"("', "=x"):
        with pytest.raises(ValueError):
            parse_matcher(bad)


def test_route_tree_continue_inheritance_and_group_by(routing) -> None:  # type: ignore[no-untyped-def]
    r = routing.receivers_for
    assert r({"severity": "critical", "department": "13"}) == ["a", "b"]
    assert r({"severity": "critical"}) == ["a"]  # a match with continue: no default
    assert r({"department": "13", "axis": "organisations"}) == ["c"]
    assert r({"department": "13", "axis": "circulation"}) == ["b"]
    assert r({"department": "75", "axis": "organisations"}) == ["d"]
    assert r({"department": "75", "axis": "circulation"}) == ["hq"]
    assert r({"department": "2A", "rule": "z"}) == ["e"]
    assert r({"department": "2A", "rule": "x"}) == ["hq"]
    assert r({}) == ["hq"]
    (c,) = routing.route.match({"department": "13", "axis": "organisations"})
    assert c.group_by_all and c.group_wait == 30 and c.repeat_interval == 3600
    assert c.group_interval == 300  # Alertmanager's default, inherited
    (a, _) = routing.route.match({"severity": "critical", "department": "13"})
    assert a.group_by == ("rule",) and a.group_wait == 0
    gid1, gl = group_id(c, {"department": "13", "axis": "organisations", "x": "1"})
    gid2, _ = group_id(c, {"department": "13", "axis": "organisations", "x": "2"})
    assert gl == {"axis": "organisations", "department": "13", "x": "1"} and gid1 != gid2
    g1, gl1 = group_id(a, {"rule": "r", "x": "1"})
    g2, _ = group_id(a, {"rule": "r", "x": "2"})
    assert g1 == g2 and gl1 == {"rule": "r"}


def test_time_intervals(routing) -> None:  # type: ignore[no-untyped-def]
    (d,) = routing.route.match({"department": "75", "axis": "organisations"})
    # Tuesday 2026-11-24 21:30 Paris = 20:30 UTC: muted; 10:00 UTC: not; Saturday night: not
    assert routing.muted(d, datetime(2026, 11, 24, 20, 30, tzinfo=UTC).timestamp())
    assert not routing.muted(d, datetime(2026, 11, 24, 10, 0, tzinfo=UTC).timestamp())
    assert not routing.muted(d, datetime(2026, 11, 28, 20, 30, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("250ms", 0.25),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"route": {"receiver": "hq", "matchers": ['a="b"']}},
            "root route must not have any matchers",
        ),
        ({"route": {"receiver": "nobody"}}, "undefined receiver"),
        ({"route": {"receiver": "hq", "routes": [{"receiver": "hq", "typo": 1}]}}, "unknown key"),
        ({"route": {"receiver": "hq", "group_by": ["...", "a"]}}, "wildcard"),
        ({"route": {"receiver": "hq", "group_interval": "0s"}}, "group_interval"),
        ({"route": {"receiver": "hq", "group_wait": "soon"}}, "bad duration"),
        (
            {"route": {"receiver": "hq", "routes": [{"mute_time_intervals": ["x"]}]}},
            "undefined time",
        ),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_strict_loading(patch: dict, message: str) -> None:  # type: ignore[type-arg]
    doc = {"route": {"receiver": "hq"}, "receivers": [{"name": "hq"}], **patch}
    with pytest.raises(RoutingError, match=message):
        parse_routing(doc)


def test_inhibition(routing) -> None:  # type: ignore[no-untyped-def]
    rules = routing.inhibit_rules
    firing = {"s1": {"severity": "critical", "department": "13"}}
    assert inhibited(rules, "t", {"severity": "warning", "department": "13"}, firing) == "s1"
    assert inhibited(rules, "t", {"severity": "warning", "department": "76"}, firing) is None
    assert inhibited(rules, "t", {"severity": "high", "department": "13"}, firing) is None
    assert inhibited(rules, "s1", firing["s1"], firing) is None  # never itself
    # equal on an absent label: both empty → equal
    assert inhibited(rules, "t", {"severity": "warning"}, {"s": {"severity": "critical"}}) == "s"


def test_content_state_ignores_muted_and_changes_with_incidents() -> None:
    a = [Member("x", "firing", 1), Member("y", "firing", 1, muted=True)]
    assert content_state(a) == content_state([Member("x", "firing", 1)])
    assert content_state(a) != content_state([Member("x", "firing", 2)])
    assert content_state(a) != content_state([Member("x", "resolved", 1)])
    assert [m.alert_id for m in to_notify(a)] == ["x"]


def test_shipped_routing_file() -> None:
    routing = load_routing(default_routing_path())
    r = routing.receivers_for
    assert r({"department": "13", "severity": "high", "rule": "target_deconfliction"}) == [
        "dept-13"
    ]
    assert r({"department": "76", "severity": "high"}) == ["dept-76"]
    assert r({"department": "13", "severity": "critical"}) == ["hq", "antenne-marseille", "dept-13"]
    assert r({"department": "971", "severity": "critical"}) == [
        "hq",
        "antenne-fort-de-france",
        "dept-971",
    ]
    assert r({"severity": "high"}) == ["hq"]
    (crit,) = [
        x
        for x in routing.route.match({"department": "2A", "severity": "critical"})
        if x.receiver == "dept-2A"
    ]
    assert crit.group_wait == 0


class _Console:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, text: str, **_: object) -> None:
        self.lines.append(text)


def test_routes_test_cli(tmp_path: Path) -> None:
    out, err = _Console(), _Console()
    assert (
        cli_routes_test(default_routing_path(), ["department=13", 'severity="critical"'], out, err)
        == 0
    )
    assert out.lines == ["hq,antenne-marseille,dept-13"]
    bad = tmp_path / "bad.yml"
    bad.write_text("route: {receiver: x}\nreceivers: []\n")
    assert cli_routes_test(bad, ["a=b"], out, err) == 1
    assert cli_routes_test(default_routing_path(), ["not-a-label"], out, err) == 1
    assert len(err.lines) == 2 and all("\n" not in line for line in err.lines)


def test_remembered_matches_are_the_trees_answers(routing, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    values = {
        "severity": ["critical", "warning", ""],
        "department": ["13", "75", "2A", ""],
        "axis": ["organisations", "circulation", ""],
        "rule": ["r", "x", ""],
    }
    label_sets = []
    for combo in itertools.product(*values.values()):
        labels = {k: v for k, v in zip(values, combo, strict=True) if v}
        label_sets += [labels, {**labels, "case": "1"}, {**labels, "case": "2"}]
    for labels in label_sets + label_sets:  # the second pass answers from memory
        assert routing.match(labels) == routing.route.match(labels)
    # remembered by the labels the matchers read: 'case' (unread) adds no entry,
    # and a label with an empty value reads as a missing one (as matchers do)
    assert len(routing._memo) == 3 * 4 * 3 * 3
    assert routing.match({"department": "13", "axis": ""}) is routing.match({"department": "13"})
    monkeypatch.setattr(route_mod, "MATCH_MEMO", 5)  # bounded
    routing._memo.clear()
    for labels in label_sets:
        assert routing.match(labels) == routing.route.match(labels)
        assert len(routing._memo) <= 5
