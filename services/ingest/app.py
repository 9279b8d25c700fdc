"""Ingest's Faust edge: read the agency topics, call the pipeline, write the outputs."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry

from services.ingest.dedup import Deduplicator, Seen
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import Accepted, Source, process
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from shared.app import Health, create_app, on_stop
from shared.redis import Keys, create_redis
from shared.topics import Topics

log = logging.getLogger("vigie.ingest")


def build(
    settings: IngestSettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    """The ingest worker's app. Raises ``ValueError`` when no key is configured."""
    pseudo = Pseudonymizer(settings.key_bytes(), settings.pseudo_key_id)
    app, health = create_app("ingest", settings, registry)
    topics = Topics(settings.topic_prefix)
    metrics = IngestMetrics(registry)
    inbound = app.topic(*topics.all_inbound, value_serializer="raw", key_serializer="raw")
    events_out = app.topic(topics.events, value_serializer="raw", key_serializer="raw")
    dlq_out = app.topic(topics.events_dlq, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    dedup = Deduplicator(redis, Keys(settings.redis_prefix), settings.dedup_ttl_s)
    health.add_check("redis", redis.ping)
    tolerance = timedelta(seconds=settings.future_tolerance_s)

    @app.agent(inbound, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        async for ev in stream.events():
            msg = ev.message
            started = time.perf_counter()
            agency = topics.agency_of(msg.topic)
            label = agency or "unknown"
            metrics.consumed.labels(label).inc()
            source = Source(msg.topic, msg.partition, msg.offset, int(msg.timestamp * 1000) if msg.timestamp else None, agency)
            outcome = process(ev.value, source, pseudo, datetime.now(UTC),
                              settings.max_message_bytes, tolerance)
            if isinstance(outcome, Accepted):
                coords = f"{msg.topic}/{msg.partition}/{msg.offset}"
                (seen,) = await dedup.mark([(outcome.event.agency, outcome.event.event_id, coords)])
                if seen is Seen.DUPLICATE:
                    metrics.duplicates.labels(label).inc()
                else:
                    await events_out.send(
                        key=outcome.key,
                        value=outcome.event.model_dump_json(by_alias=True).encode(),
                    )
                    metrics.published.labels(label).inc()
            else:
                await dlq_out.send(key=None, value=json.dumps(outcome.record).encode())
                metrics.rejected.labels(label, outcome.reason).inc()
                log.info("rejected", extra={"reason": outcome.reason, "topic": msg.topic,
                                            "offset": msg.offset})
            metrics.processing.observe(time.perf_counter() - started)

    on_stop(app, redis.aclose)

    return app, health
