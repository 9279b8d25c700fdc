"""Notify's metrics (``vigie_notify_*``), declared together.

Label values are bounded: receivers are cells (a fixed list), channels and
outcomes are enums; never an alert id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.alerts = Counter(
            "vigie_notify_alerts_total",
            "Alerts read from vigie.alerts.v1, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.notifications = Counter(
            "vigie_notify_notifications_total",
            "Notification outcomes",
            ["receiver", "channel", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "vigie_notify_retries_total",
            "Delivery retries",
            ["channel"],
            registry=registry,
        )
        self.dlq = Counter(
            "vigie_notify_dlq_total",
            "Records written to vigie.notifications.dlq",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "vigie_notify_delivery_latency_seconds",
            "From the alert's starts_at to its delivery",
            ["channel"],
            registry=registry,
            buckets=_BUCKETS,
        )
        self.pipeline_latency = Histogram(
            "vigie_notify_pipeline_latency_seconds",
            "From the triggering agency message's publication to delivery",
            ["channel"],
            registry=registry,
            buckets=_BUCKETS,
        )
        self.escalations = Counter(
            "vigie_notify_escalations_total",
            "Escalations, by the cell escalated to",
            ["to"],
            registry=registry,
        )
        self.acks = Counter(
            "vigie_notify_acknowledgements_total",
            "Acknowledgements, by cell",
            ["cell"],
            registry=registry,
        )
        self.silences = Gauge(
            "vigie_notify_active_silences",
            "Active silences (all cells)",
            registry=registry,
        )
        self.muted = Counter(
            "vigie_notify_muted_total",
            "Alerts left out of a notification",
            ["reason"],
            registry=registry,
        )
