"""Ingest's Faust edge: read the agency topics, call the pipeline, write the outputs.

Messages are taken in batches (``VIGIE_BATCH_MAX`` within
``VIGIE_BATCH_WITHIN_S``): the pure decision (:func:`.pipeline.process`) runs per
message, deduplication is one Redis round trip per batch, then each message
is sent to ``vigie.events.v1`` or ``vigie.events.dlq``. The batch is acked
after that, so a crash redelivers it (dedup recognises a redelivery by its
source coordinates and publishes it again; downstream is idempotent).

Nothing raises out of the loop (Faust would ack and lose the batch): Redis and
producer calls are retried ``VIGIE_RETRIES`` times with backoff, then the
message is dead-lettered with reason ``internal_error``. Every message is
counted exactly once as published, rejected (by reason) or duplicate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry

from services.ingest.dedup import Deduplicator, Seen
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import Accepted, Refused, Source, TokenCache, dlq_record, process
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from services.ingest.validate import Rejection
from shared.app import Health, create_app, on_stop
from shared.redis import Keys, create_redis
from shared.retry import retry
from shared.topics import Topics

log = logging.getLogger("vigie.ingest")


def _headers(msg: Any) -> list[tuple[str, bytes]] | None:
    raw = msg.headers
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v or b"")) for k, v in items]


def build(
    settings: IngestSettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    """The ingest worker's app. Raises ``ValueError`` when no key is configured."""
    pseudo = TokenCache(Pseudonymizer(settings.key_bytes(), settings.pseudo_key_id))
    # Faust publishes what an agent sends when the source offset is committed
    # (its "attachments"): outputs never get ahead of the input's commit.
    # VIGIE_COMMIT_EVERY trades that hop's latency (small: commit often) for
    # fewer producer flushes (large). A short linger lets one produce request
    # carry many events.
    app, health = create_app(
        "ingest",
        settings,
        registry,
        producer_linger=0.005,
        broker_commit_every=settings.commit_every,
    )
    topics = Topics(settings.topic_prefix)
    metrics = IngestMetrics(registry)
    inbound = app.topic(*topics.all_inbound, value_serializer="raw", key_serializer="raw")
    events_out = app.topic(topics.events, value_serializer="raw", key_serializer="raw")
    dlq_out = app.topic(topics.events_dlq, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    dedup = Deduplicator(redis, Keys(settings.redis_prefix), settings.dedup_ttl_s)
    health.add_check("redis", redis.ping)
    tolerance = timedelta(seconds=settings.future_tolerance_s)
    attempts = settings.retries

    async def dead_letter(label: str, refused: Refused) -> None:
        body = json.dumps(refused.record, separators=(",", ":")).encode()
        try:
            await retry(lambda: dlq_out.send(key=None, value=body), attempts)
        except Exception:
            # The DLQ itself is down: the record stays in the log (no clear
            # identifier: reason and coordinates only) and the metric counts it.
            log.error(
                "dead-letter send failed",
                extra={"reason": refused.reason, "source": refused.record["source"]},
            )
        metrics.rejected.labels(label, refused.reason).inc()
        log.info(
            "rejected",
            extra={
                "reason": refused.reason,
                "field": refused.record["field"],
                "source": refused.record["source"],
            },
        )

    async def handle(batch: Sequence[faust.EventT[Any]]) -> None:
        now = datetime.now(UTC)
        accepted: list[tuple[str, Accepted, Source, bytes | None, Any]] = []
        for ev in batch:
            msg = ev.message
            started = time.perf_counter()
            agency = topics.agency_of(msg.topic)
            label = agency or "unknown"
            metrics.consumed.labels(label).inc()
            ts = int(msg.timestamp * 1000) if msg.timestamp else None
            source = Source(msg.topic, msg.partition, msg.offset, ts, agency)
            headers = _headers(msg)
            outcome = process(
                ev.value, source, pseudo, now, settings.max_message_bytes, tolerance, headers
            )
            metrics.processing.observe(time.perf_counter() - started)
            if isinstance(outcome, Accepted):
                accepted.append((label, outcome, source, ev.value, headers))
            else:
                await dead_letter(label, outcome)
        if not accepted:
            return
        items = [
            (a.event.agency, a.event.event_id, f"{s.topic}/{s.partition}/{s.offset}")
            for _, a, s, _, _ in accepted
        ]
        try:
            verdicts = await retry(lambda: dedup.mark(items), attempts)
        except Exception as exc:
            log.error("dedup unavailable", extra={"error": type(exc).__name__, "n": len(items)})
            for label, _, source, raw, headers in accepted:
                rej = Rejection(
                    "internal_error", f"deduplication unavailable: {type(exc).__name__}"
                )
                await dead_letter(
                    label, Refused(rej.reason, dlq_record(raw, source, rej, now, headers))
                )
            return
        for (label, outcome, source, raw, headers), seen in zip(accepted, verdicts, strict=True):
            if seen is Seen.DUPLICATE:
                metrics.duplicates.labels(label).inc()
                continue
            body = outcome.event.model_dump_json(by_alias=True).encode()
            try:
                await retry(lambda: events_out.send(key=outcome.key, value=body), attempts)  # noqa: B023
            except Exception as exc:
                rej = Rejection("internal_error", f"publish failed: {type(exc).__name__}")
                await dead_letter(
                    label, Refused(rej.reason, dlq_record(raw, source, rej, now, headers))
                )
            else:
                metrics.published.labels(label).inc()

    @app.agent(inbound, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_within_s
        )
        async for batch in batches:
            try:
                await handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: keep the worker alive, the count shows it
                log.exception("batch failed", extra={"n": len(batch)})

    on_stop(app, redis.aclose)

    return app, health
