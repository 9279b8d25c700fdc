"""Notify's metrics (``vigie_notify_*``), declared together."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "vigie_notify_alerts_total", "Alerts read from vigie.alerts.v1", registry=registry,
        )
        self.notifications = Counter(
            "vigie_notify_notifications_total", "Notification outcomes",
            ["receiver", "channel", "outcome"], registry=registry,
        )
        self.retries = Counter(
            "vigie_notify_retries_total", "Delivery retries", ["channel"], registry=registry,
        )
        self.latency = Histogram(
            "vigie_notify_delivery_latency_seconds",
            "From the triggering event's publication to delivery",
            ["channel"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
