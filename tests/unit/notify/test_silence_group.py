"""Silences and finished groups (pure logic, no Redis; the timers: test_handler.py)."""

from __future__ import annotations

from services.notify.group import Member, finished
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


def test_a_group_is_finished_once_every_alert_resolved() -> None:
    assert finished([Member("a", "resolved", 1)])
    assert not finished([Member("a", "resolved", 1), Member("b", "firing", 1)])
