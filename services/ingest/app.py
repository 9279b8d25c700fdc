"""Ingest's Faust edge: read the agency topics, call the pipeline, write the outputs.

Messages are taken in batches (``VIGIE_BATCH_MAX`` within
``VIGIE_BATCH_WITHIN_S``): the pure decision (:func:`.pipeline.process`) runs per
message, deduplication is one Redis round trip per batch, then the batch's
events go to ``vigie.events.v1`` and its refusals to ``vigie.events.dlq``, one
produce batch per partition (:class:`~shared.kafka.BatchSender`), delivery
awaited. The batch is acked after that, so a crash redelivers it (dedup
recognises a redelivery by its source coordinates and publishes it again;
downstream is idempotent).

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
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from services.ingest.dedup import Deduplicator, Seen
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import Accepted, Refused, Source, TokenCache, dlq_record, process
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from services.ingest.validate import Rejection
from shared.app import Health, create_app, on_stop
from shared.kafka import BatchSender
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


class _Children:
    """A labelled counter's children by label value, looked up once each."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[str, Any] = {}

    def __getitem__(self, label: str) -> Any:
        child = self._children.get(label)
        if child is None:
            child = self._children[label] = self._counter.labels(label)
        return child


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
    metrics = IngestMetrics(registry)
    inbound = app.topic(*topics.all_inbound, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    dedup = Deduplicator(redis, Keys(settings.redis_prefix), settings.dedup_ttl_s)
    health.add_check("redis", redis.ping)
    tolerance = timedelta(seconds=settings.future_tolerance_s)
    attempts = settings.retries

    sender = BatchSender(app)
    consumed = _Children(metrics.consumed)
    published = _Children(metrics.published)
    duplicates = _Children(metrics.duplicates)

    async def dead_letter(refused: list[tuple[str, Refused]]) -> None:
        """Send the batch's dead-letter records (one produce batch), count and log them."""
        if not refused:
            return
        records = [
            (None, json.dumps(r.record, separators=(",", ":")).encode(), None) for _, r in refused
        ]
        try:
            await retry(lambda: sender.send(topics.events_dlq, records), attempts)
        except Exception as exc:
            # The DLQ itself is down: each record stays in the log (no clear
            # identifier: reason and coordinates only) and the metric counts it.
            for _, r in refused:
                log.error(
                    "dead-letter send failed",
                    extra={
                        "reason": r.reason,
                        "source": r.record["source"],
                        "error": type(exc).__name__,
                    },
                )
        for label, r in refused:
            metrics.rejected.labels(label, r.reason).inc()
            log.info(
                "rejected",
                extra={
                    "reason": r.reason,
                    "field": r.record["field"],
                    "source": r.record["source"],
                },
            )

    def internal(
        accepted: list[tuple[str, Accepted, Source, bytes | None, Any]],
        why: str,
        now: datetime,
    ) -> list[tuple[str, Refused]]:
        rej = Rejection("internal_error", why)
        return [
            (label, Refused(rej.reason, dlq_record(raw, source, rej, now, headers)))
            for label, _, source, raw, headers in accepted
        ]

    async def handle(batch: Sequence[faust.EventT[Any]]) -> None:
        now = datetime.now(UTC)
        accepted: list[tuple[str, Accepted, Source, bytes | None, Any]] = []
        refused: list[tuple[str, Refused]] = []
        observe = metrics.processing.observe
        for ev in batch:
            msg = ev.message
            started = time.perf_counter()
            agency = topics.agency_of(msg.topic)
            label = agency or "unknown"
            consumed[label].inc()
            ts = int(msg.timestamp * 1000) if msg.timestamp else None
            source = Source(msg.topic, msg.partition, msg.offset, ts, agency)
            headers = _headers(msg)
            outcome = process(
                ev.value, source, pseudo, now, settings.max_message_bytes, tolerance, headers
            )
            observe(time.perf_counter() - started)
            if isinstance(outcome, Accepted):
                accepted.append((label, outcome, source, ev.value, headers))
            else:
                refused.append((label, outcome))
        if accepted:
            items = [
                (a.event.agency, a.event.event_id, f"{s.topic}/{s.partition}/{s.offset}")
                for _, a, s, _, _ in accepted
            ]
            try:
                verdicts = await retry(lambda: dedup.mark(items), attempts)
            except Exception as exc:
                log.error("dedup unavailable", extra={"error": type(exc).__name__, "n": len(items)})
                why = f"deduplication unavailable: {type(exc).__name__}"
                refused += internal(accepted, why, now)
                accepted = []
                verdicts = []
            fresh = []
            for item, seen in zip(accepted, verdicts, strict=True):
                if seen is Seen.DUPLICATE:
                    duplicates[item[0]].inc()
                else:
                    fresh.append(item)
            records = [
                (a.key, a.event.model_dump_json(by_alias=True).encode(), None)
                for _, a, _, _, _ in fresh
            ]
            try:
                await retry(lambda: sender.send(topics.events, records), attempts)
            except Exception as exc:
                refused += internal(fresh, f"publish failed: {type(exc).__name__}", now)
            else:
                for label, *_ in fresh:
                    published[label].inc()
        await dead_letter(refused)

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
