"""Silences and group timers on an injected clock (pure logic, no Redis)."""

from __future__ import annotations

import yaml

from services.notify.group import Member, finished, first_flush, next_flush
from services.notify.route import parse_routing
from services.notify.silence import Silence, silenced


def test_silence_window_and_matchers() -> None:
    s = Silence("s1", "dept-13", ('rule="r1"', 'severity=~"high|critical"'), 100.0, 200.0)
    labels = {"rule": "r1", "severity": "high"}
    assert not s.mutes(labels, 99.9)  # not started
    assert s.mutes(labels, 100.0) and s.mutes(labels, 199.9)
    assert not s.mutes(labels, 200.0)  # ended
    assert not s.mutes({"rule": "r1", "severity": "info"}, 150)
    assert silenced([s], labels, 150) == "s1" and silenced([s], labels, 250) is None
    assert Silence.from_json(s.to_json()) == s


def test_group_timers() -> None:
    routing = parse_routing(
        yaml.safe_load("""
route:
  receiver: hq
  group_wait: 10s
  group_interval: 1m
  routes:
    - {receiver: hq, matchers: ['severity="critical"'], group_wait: 0s}
receivers: [{name: hq}]
""")
    )
    (crit,) = routing.route.match({"severity": "critical"})
    (other,) = routing.route.match({"severity": "high"})
    assert first_flush(crit, 1000.0) == 1000.0  # critical leaves at once
    assert first_flush(other, 1000.0) == 1010.0
    assert next_flush(other, 1010.0) == 1070.0 == next_flush(crit, 1010.0)
    assert finished([Member("a", "resolved", 1)])
    assert not finished([Member("a", "resolved", 1), Member("b", "firing", 1)])
