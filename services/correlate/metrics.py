"""Correlate's metrics (``vigie_correlate_*``), declared together."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CorrelateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "vigie_correlate_events_total",
            "Events read from vigie.events.v1 and handled",
            registry=registry,
        )
        self.invalid = Counter(
            "vigie_correlate_invalid_total",
            "Events that could not be decoded (sent to the DLQ)",
            registry=registry,
        )
        self.late = Counter(
            "vigie_correlate_late_total",
            "Events too late for every rule that takes them (sent to vigie.events.late)",
            registry=registry,
        )
        self.watermark = Gauge(
            "vigie_correlate_watermark_seconds",
            "The worker's event-time watermark (min over its active partitions), Unix time",
            registry=registry,
        )
        self.partitions = Gauge(
            "vigie_correlate_partitions_owned",
            "Partitions of vigie.events.v1 this worker owns",
            registry=registry,
        )
        self.failed = Counter(
            "vigie_correlate_failed_total",
            "Events dead-lettered after the state store kept failing, by reason",
            ["reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "vigie_correlate_alerts_total",
            "Alerts emitted, by rule and severity",
            ["rule", "severity"],
            registry=registry,
        )
        self.redis_round_trips = Counter(
            "vigie_correlate_redis_round_trips_total",
            "Redis round trips made",
            registry=registry,
        )
        self.rules_version = Gauge(
            "vigie_correlate_rules_version_info",
            "The active rule set (1 on its version)",
            ["version"],
            registry=registry,
        )
        self.rules = Gauge(
            "vigie_correlate_rules",
            "Rules in the active rule set",
            registry=registry,
        )
        self.rules_reload_errors = Counter(
            "vigie_correlate_rules_reload_errors_total",
            "Rule reloads rejected (the previous rules stayed active)",
            registry=registry,
        )
        self.batch = Histogram(
            "vigie_correlate_batch_events",
            "Events per correlated batch",
            registry=registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
        )
        self.processing = Histogram(
            "vigie_correlate_processing_seconds",
            "Time to correlate one batch",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )

    def set_rules(self, version: str, count: int) -> None:
        self.rules_version.clear()
        self.rules_version.labels(version).set(1)
        self.rules.set(count)
