"""Ingest's Faust edge: read the agency topics, call the pipeline, write the outputs.

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
message is dead-lettered with reason ``internal_error``. Every message is
counted exactly once as published, rejected (by reason) or duplicate.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import faust
from prometheus_client import REGISTRY, CollectorRegistry

from services.ingest.dedup import Deduplicator, Seen
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import Accepted, Refused, Source, TokenCache, process
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from services.ingest.validate import Rejection
from shared.app import Health, create_app, on_stop
from shared.flow import GroupFlusher, take_batches
from shared.kafka import BatchSender, Record
from shared.metrics import children
from shared.redis import Keys, create_redis
from shared.resp import pipelines_for
from shared.retry import retry
from shared.topics import Topics

log = logging.getLogger("vigie.ingest")


def _headers(msg: Any) -> list[tuple[str, bytes]] | None:
    raw = msg.headers
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v or b"")) for k, v in items]


class _Out(NamedTuple):
    """An accepted message, ready to publish."""

    label: str
    key: bytes
    body: bytes
    dedup: tuple[str, str, str]
    raw: bytes | None
    source: Source
    headers: list[tuple[str, bytes]] | None
    now: datetime


class _Decided(NamedTuple):
    """What a batch's CPU half decided."""

    accepted: list[_Out]
    refused: list[tuple[str, Refused]]


def refuse_all(
    batch: Sequence[Any], topics: Topics, now: datetime, why: str
) -> list[tuple[str, Refused]]:
    """(agency label, dead-letter record) for every message of a batch that could
    not be decided (a bug): reason ``internal_error``, original bytes and headers
    kept, so nothing is dropped silently."""
    rej = Rejection("internal_error", why)
    out = []
    for ev in batch:
        msg = ev.message
        agency = topics.agency_of(msg.topic)
        source = Source(msg.topic, msg.partition, msg.offset, None, agency)
        raw = ev.value if isinstance(ev.value, bytes) else None
        out.append((agency or "unknown", Refused.of(raw, source, rej, now, _headers(msg))))
    return out


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
    pipes = pipelines_for(redis)
    dedup = Deduplicator(pipes, Keys(settings.redis_prefix), settings.dedup_ttl_s)
    health.add_check("redis", redis.ping)
    tolerance = timedelta(seconds=settings.future_tolerance_s)
    attempts = settings.retries

    sender = BatchSender(app)
    consumed = children(metrics.consumed)
    published = children(metrics.published)
    duplicates = children(metrics.duplicates)
    rejected = children(metrics.rejected)

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
            rejected(label, r.reason).inc()
            log.info(
                "rejected",
                extra={
                    "reason": r.reason,
                    "field": r.record["field"],
                    "source": r.record["source"],
                },
            )

    def internal(outs: list[_Out], why: str) -> list[tuple[str, Refused]]:
        rej = Rejection("internal_error", why)
        return [(o.label, Refused.of(o.raw, o.source, rej, o.now, o.headers)) for o in outs]

    # topic -> (agency, metric label), for the few topics ingest reads
    agency_of: dict[str, tuple[str | None, str]] = {}

    def decide(batch: Sequence[faust.EventT[Any]]) -> _Decided:
        """The CPU half of a batch: decode, validate, normalise, serialise.
        The consumed counters are bumped once per agency per batch."""
        now = datetime.now(UTC)
        decided = _Decided([], [])
        observe = metrics.processing.observe
        per_label: Counter[str] = Counter()
        clock = time.perf_counter
        for ev in batch:
            msg = ev.message
            started = clock()
            topic = msg.topic
            known = agency_of.get(topic)
            if known is None:
                agency = topics.agency_of(topic)
                known = agency_of[topic] = (agency, agency or "unknown")
            agency, label = known
            per_label[label] += 1
            ts = int(msg.timestamp * 1000) if msg.timestamp else None
            source = Source(topic, msg.partition, msg.offset, ts, agency)
            headers = _headers(msg)
            outcome = process(
                ev.value, source, pseudo, now, settings.max_message_bytes, tolerance, headers
            )
            if isinstance(outcome, Accepted):
                decided.accepted.append(
                    _Out(
                        label,
                        outcome.key,
                        outcome.body,
                        (outcome.agency, outcome.event_id, f"{topic}/{msg.partition}/{msg.offset}"),
                        ev.value,
                        source,
                        headers,
                        now,
                    )
                )
            else:
                decided.refused.append((label, outcome))
            observe(clock() - started)
        for label, n in per_label.items():
            consumed(label).inc(n)
        return decided

    async def flush(group: list[_Decided]) -> None:
        """The I/O half, for every batch decided since the last flush: one
        dedup round trip, one produce per partition, the dead letters."""
        accepted = [o for d in group for o in d.accepted]
        refused = [r for d in group for r in d.refused]
        if accepted:
            items = [o.dedup for o in accepted]
            try:
                verdicts = await retry(lambda: dedup.mark(items), attempts)
            except Exception as exc:
                log.error("dedup unavailable", extra={"error": type(exc).__name__, "n": len(items)})
                refused += internal(accepted, f"deduplication unavailable: {type(exc).__name__}")
                accepted, verdicts = [], []
            fresh = []
            for out, seen in zip(accepted, verdicts, strict=True):
                if seen is Seen.DUPLICATE:
                    duplicates(out.label).inc()
                else:
                    fresh.append(out)
            records: list[Record] = [(o.key, o.body, None) for o in fresh]
            try:
                await retry(lambda: sender.send(topics.events, records), attempts)
            except Exception as exc:
                refused += internal(fresh, f"publish failed: {type(exc).__name__}")
            else:
                for label, n in Counter(o.label for o in fresh).items():
                    published(label).inc(n)
        await dead_letter(refused)

    flusher = GroupFlusher(app, flush, max_pending=settings.max_pending, name="ingest-flush")

    @app.agent(inbound, name="ingest")
    async def ingest(stream: faust.StreamT[Any]) -> None:
        try:
            async for batch in take_batches(stream, settings.batch_max, settings.batch_within_s):
                try:
                    decided = decide(batch)
                except Exception as exc:  # a bug: keep the worker alive, dead-letter the batch
                    log.exception("batch failed", extra={"n": len(batch)})
                    why = f"{type(exc).__name__} while deciding the batch"
                    refused = refuse_all(batch, topics, datetime.now(UTC), why)
                    for label, n in Counter(label for label, _ in refused).items():
                        consumed(label).inc(n)
                    decided = _Decided([], refused)
                await flusher.put(batch, decided)
        finally:
            await flusher.stop()

    on_stop(app, pipes.aclose)
    on_stop(app, redis.aclose)

    return app, health
