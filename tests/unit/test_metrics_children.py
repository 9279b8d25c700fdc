"""shared.metrics.children: one lookup per label values, counts land on the metric."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.metrics import children


def test_children_are_memoised_and_count() -> None:
    registry = CollectorRegistry()
    counter = Counter("x_total", "x", ["agency", "reason"], registry=registry)
    child = children(counter)
    assert child("police", "schema") is child("police", "schema")
    child("police", "schema").inc()
    child("police", "schema").inc()
    child("douane", "not_json").inc()
    assert registry.get_sample_value("x_total", {"agency": "police", "reason": "schema"}) == 2
    assert registry.get_sample_value("x_total", {"agency": "douane", "reason": "not_json"}) == 1
