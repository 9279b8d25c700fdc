"""Ingest's Faust edge (wiring only): read the agency topics, hand each batch to the
:class:`~.handler.IngestHandler`, release the acks once its outputs are written.

Messages are taken in batches as soon as they arrive (at most
``VIGIE_BATCH_MAX``, lingering at most ``VIGIE_BATCH_WITHIN_S`` while more keep coming;
:func:`~shared.flow.take_batches`). The agent runs the pure decision
(:func:`.pipeline.process`) on each message and hands the batch to a
:class:`~shared.flow.GroupFlusher`, whose single background flush covers every
batch decided since the previous one: one dedup round trip, the events to
``vigie.events.v1`` and the refusals to ``vigie.events.dlq`` with one produce
batch per partition (:class:`~shared.kafka.BatchSender`), delivery awaited.
The messages are acked only after that, so a crash redelivers them (dedup
recognises a redelivery by its source coordinates and publishes it again;
downstream is idempotent).

Nothing raises out of the loop (Faust would ack and lose the batch): Redis and
producer calls are retried ``VIGIE_RETRIES`` times with backoff, then the
message is dead-lettered with reason ``internal_error``; a dead-letter send
that still fails leaves the batch un-acked (read again, never lost). The
decisions and their failure behaviour are :mod:`.handler`'s.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry

from services.ingest.dedup import Deduplicator
from services.ingest.handler import Decided, IngestHandler
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import TokenCache
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from shared.app import Health, create_app, on_stop
from shared.flow import GroupFlusher, take_batches
from shared.kafka import BatchSender, topic_max_bytes
from shared.kafkaauth import client_options
from shared.redis import Keys, create_redis
from shared.resp import pipelines_for
from shared.topics import Topics

log = logging.getLogger("vigie.ingest")


def build(
    settings: IngestSettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    """The ingest worker's app. Raises ``ValueError`` when no key is configured."""
    pseudo = TokenCache(Pseudonymizer(settings.key_bytes(), settings.pseudo_key_id))
    # Outputs are published by BatchSender and delivered before the batch is
    # acked, so offsets may be committed lazily: VIGIE_COMMIT_EVERY only sets
    # how much a crash replays (dedup makes a replay harmless).
    app, health = create_app(
        "ingest",
        settings,
        registry,
        producer_linger=0.005,
        broker_commit_every=settings.commit_every,
    )
    topics = Topics(settings.topic_prefix)
    inbound = app.topic(*topics.all_inbound, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    pipes = pipelines_for(redis)
    dedup = Deduplicator(pipes, Keys(settings.redis_prefix), settings.dedup_ttl_s)
    health.add_check("redis", redis.ping)
    handler = IngestHandler(settings, pseudo, dedup, BatchSender(app), IngestMetrics(registry))
    flusher: GroupFlusher[Decided] = GroupFlusher(
        app, handler.flush, max_pending=settings.max_pending, name="ingest-flush"
    )

    async def learn_dlq_cap() -> None:
        """Lower the dead-letter size cap to the topic's ``max.message.bytes``."""
        cap = await topic_max_bytes(
            settings.kafka_bootstrap, topics.events_dlq, options=client_options(settings)
        )
        if cap is not None and cap < handler.dlq_cap:
            handler.dlq_cap = cap
            log.info("dead-letter size cap from the topic", extra={"bytes": cap})

    @app.agent(inbound, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        await learn_dlq_cap()  # before the first message
        try:
            async for batch in take_batches(stream, settings.batch_max, settings.batch_within_s):
                await flusher.put(batch, handler.decide(batch))
        finally:
            await flusher.stop()

    on_stop(app, pipes.aclose)
    on_stop(app, redis.aclose)

    return app, health
