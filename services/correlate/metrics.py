"""Correlate's metrics (``vigie_correlate_*``), declared together."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class CorrelateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "vigie_correlate_events_total", "Events read from vigie.events.v1",
            registry=registry,
        )
        self.invalid = Counter(
            "vigie_correlate_invalid_total", "Events that could not be decoded (sent to the DLQ)",
            registry=registry,
        )
        self.late = Counter(
            "vigie_correlate_late_total", "Events later than the allowed lateness",
            registry=registry,
        )
        self.alerts = Counter(
            "vigie_correlate_alerts_total", "Alerts emitted, by rule and severity",
            ["rule", "severity"], registry=registry,
        )
        self.processing = Histogram(
            "vigie_correlate_processing_seconds", "Time to correlate one event",
            registry=registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
        )
