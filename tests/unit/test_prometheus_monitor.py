"""The cached Prometheus monitor exposes the same per-message metrics as Faust's."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from shared.faust_compat import CachedPrometheusMonitor


class _Obj:
    """A plain object Faust's monitor can hold weak references to."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def _feed(monitor: Any) -> None:
    streams = [
        _Obj(shortlabel=f"Stream: Topic: agency.{a}.events", task_owner=_Obj()) for a in "ab"
    ]
    for i in range(50):
        tp = TP(f"topic-{i % 3}", i % 2)
        message = _Obj(time_in=None, time_out=None, time_total=None)
        monitor.on_message_in(tp, i, message)
        stream = streams[i % 2]
        state = monitor.on_stream_event_in(tp, i, stream, _Obj(message=message))
        monitor.on_stream_event_out(tp, i, stream, None, state)
        monitor.on_message_out(tp, i, message)


def _exposed(cls: type) -> list[str]:
    registry = CollectorRegistry()
    monitor = cls(metrics=FaustMetrics.create(registry, "x"))
    _feed(monitor)
    lines = generate_latest(registry).decode().splitlines()
    # everything but the timing histograms (wall-clock dependent)
    return [ln for ln in lines if not any(w in ln for w in ("latency", "created", "runtime"))]


def test_same_metrics_as_faust() -> None:
    ours, theirs = _exposed(CachedPrometheusMonitor), _exposed(PrometheusMonitor)
    assert ours == theirs
    assert any('x_messages_received_per_topic_total{topic="topic-1"} 17.0' in ln for ln in ours)
