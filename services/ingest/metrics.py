"""Ingest's metrics (``vigie_ingest_*``), declared together.

Invariant: consumed = published + rejected + duplicates + dead_letter_failed
(per agency). ``dead_letter_failed`` counts messages whose dead-letter record
could not be sent: they are not acked and will be read again (an alert).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "vigie_ingest_consumed_total",
            "Inbound messages read, by agency topic",
            ["agency"],
            registry=registry,
        )
        self.published = Counter(
            "vigie_ingest_published_total",
            "Events published to vigie.events.v1",
            ["agency"],
            registry=registry,
        )
        self.rejected = Counter(
            "vigie_ingest_rejected_total",
            "Messages dead-lettered, by reason",
            ["agency", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "vigie_ingest_duplicates_total",
            "Re-sent events dropped by deduplication",
            ["agency"],
            registry=registry,
        )
        self.dead_letter_failed = Counter(
            "vigie_ingest_dead_letter_failed_total",
            "Refused messages whose dead-letter record could not be sent (held, read again)",
            ["agency"],
            registry=registry,
        )
        self.processing = Histogram(
            "vigie_ingest_processing_seconds",
            "Time to process one message",
            registry=registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
        )
