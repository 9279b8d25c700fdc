"""Correlate's Faust edge: read normalised events in batches, correlate, emit.

Per batch: decode each event (undecodable → ``vigie.events.dlq`` with a
reason), run :class:`~.engine.Engine` (late events → ``vigie.events.late``),
send the alerts to ``vigie.alerts.v1``. A Redis error retries the whole batch
(every state op is idempotent) a bounded number of times, then dead-letters
its events with reason ``state_unavailable``; nothing raised inside the loop
escapes it (Faust would ack and lose the event). Rules are reloaded when the
directory changes or on SIGHUP; a bad new version is logged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Hashable
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from services.correlate.absence import AbsenceStore
from services.correlate.engine import Engine
from services.correlate.eventtime import stream_of
from services.correlate.metrics import CorrelateMetrics
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import Reloader
from services.correlate.settings import CorrelateSettings
from services.correlate.state import RedisState
from shared.app import Health, create_app, on_stop
from shared.flow import take_batches
from shared.kafka import BatchSender, Record
from shared.metrics import children
from shared.models import NormalizedEvent
from shared.redis import Keys, create_redis
from shared.retry import retry
from shared.topics import AGENCIES, Topics

log = logging.getLogger("vigie.correlate")

validate = NormalizedEvent.model_validate_json


def _source(ev: Any) -> dict[str, Any]:
    return {
        "topic": ev.message.topic,
        "partition": ev.message.partition,
        "offset": ev.message.offset,
    }


def build(
    settings: CorrelateSettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    """The correlate app. Raises :class:`~.rules.loader.RuleError` if the rules
    directory does not load at start (a worker never starts without rules)."""
    app, health = create_app("correlate", settings, registry)
    topics = Topics(settings.topic_prefix)
    metrics = CorrelateMetrics(registry)
    events_in = app.topic(topics.events, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    health.add_check("redis", redis.ping)
    on_stop(app, redis.aclose)
    reloader = Reloader(settings.rules_dir or DEFAULT_DIR)
    metrics.set_rules(reloader.active.version, len(reloader.active.rules))
    state = RedisState(redis, naive=settings.engine_mode == "naive")
    absences = AbsenceStore(redis, settings.redis_prefix + ":corr")
    engine = Engine(
        reloader.active,
        state,
        Keys(settings.redis_prefix + ":corr"),
        settings.allowed_lateness_s * 1000,
        idle_ms=int(settings.idle_partition_s * 1000),
        absences=absences,
    )
    sighup = asyncio.Event()

    def reload(force: bool = False) -> None:
        before = reloader.last_error
        if reloader.maybe_reload(force):
            engine.rules = reloader.active
            metrics.set_rules(reloader.active.version, len(reloader.active.rules))
        elif reloader.last_error and reloader.last_error != before:
            metrics.rules_reload_errors.inc()

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _watch_rules() -> None:
        # not on the main thread (tests): no SIGHUP, the directory watch still works
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, sighup.set)
        while True:
            try:
                await asyncio.wait_for(sighup.wait(), settings.rules_reload_s)
            except TimeoutError:
                reload()
            else:
                sighup.clear()
                reload(force=True)

    sender = BatchSender(app)

    async def dead_letter(evs: list[tuple[Any, str, str]]) -> None:
        """Dead-letter ``(event, reason, message)`` triples in one produce call,
        delivery awaited."""
        records: list[Record] = [
            (
                None,
                json.dumps(
                    {
                        "reason": reason,
                        "message": message,
                        "source": _source(ev),
                        "original": ev.value.decode("utf-8", "replace"),
                    }
                ).encode(),
                None,
            )
            for ev, reason, message in evs
        ]
        await sender.send(topics.events_dlq, records)

    alert_counter = children(metrics.alerts)

    #: every stream a partition of vigie.events.v1 may carry (see .eventtime)
    sources = [(a, i) for a in AGENCIES for i in range(settings.topic_partitions)]

    def owned() -> list[int]:
        """The partitions of the events topic this worker owns now."""
        return [tp.partition for tp in app.consumer.assignment() if tp.topic == topics.events]

    async def correlate_batch(batch: list[Any]) -> None:
        decoded: list[NormalizedEvent] = []
        raw_of: dict[tuple[str, str], Any] = {}
        invalid: list[tuple[Any, str, str]] = []
        streams: list[Hashable] = []
        for ev in batch:
            try:
                event = validate(ev.value)
            except ValidationError as exc:
                invalid.append((ev, "bad_normalized_event", str(exc.errors()[0]["msg"])))
                continue
            decoded.append(event)
            streams.append(stream_of(ev.message.partition, event.agency, event.source_partition))
            raw_of[(event.agency, event.event_id)] = ev
        if invalid:
            metrics.invalid.inc(len(invalid))
            await dead_letter(invalid)
        if not decoded:
            return

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning(
                "correlation failed, retrying",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )

        mine = owned()
        engine.watermarks.assign(mine, int(time.time() * 1000), sources)
        metrics.partitions.set(len(mine))
        before = state.round_trips
        try:  # Redis down, timeout...: retry the idempotent batch
            outcome = await retry(
                lambda: engine.process(decoded, streams),
                settings.redis_attempts,
                base_delay=0.1,
                max_delay=2.0,
                on_error=failed,
            )
        except Exception:
            metrics.redis_round_trips.inc(state.round_trips - before)
            metrics.failed.labels("state_unavailable").inc(len(decoded))
            await dead_letter(
                [
                    (
                        raw_of[(e.agency, e.event_id)],
                        "state_unavailable",
                        "the state store kept failing",
                    )
                    for e in decoded
                ]
            )
            return
        metrics.redis_round_trips.inc(state.round_trips - before)
        metrics.watermark.set(outcome.watermark / 1000)
        if outcome.late:
            late = [raw_of[(e.agency, e.event_id)] for e in outcome.late]
            await sender.send(topics.events_late, [(ev.message.key, ev.value, None) for ev in late])
            metrics.late.inc(len(late))
        if outcome.alerts:
            records: list[Record] = [
                (alert.alert_id.encode(), alert.model_dump_json().encode(), None)
                for alert, _ in outcome.alerts
            ]
            try:  # delivered before the batch is acked (at least once)
                await sender.send(topics.alerts, records)
            except Exception:
                # a redelivery of the batch may raise them again
                await state.release([claim for _, claim in outcome.alerts])
                raise
            for alert, _ in outcome.alerts:
                alert_counter(alert.rule, alert.severity.value).inc()

    worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    stale_ms = int(max(3 * settings.absence_poll_s, settings.idle_partition_s) * 1000)

    async def fire_absences() -> None:
        """Publish this worker's watermark; send the absence alerts due by the
        shared one (taken by this worker only), then mark them fired."""
        now = int(time.time() * 1000)
        mine = owned()
        if mine:  # streams not read yet hold it at 0: nothing fires before they are
            engine.watermarks.assign(mine, now, sources)
            await absences.publish_watermark(worker, engine.watermark, now)
        shared = await absences.shared_watermark(now, stale_ms)
        if shared <= 0:
            return
        fired = await engine.fire(shared)
        if not fired:
            return
        records: list[Record] = [
            (alert.alert_id.encode(), alert.model_dump_json().encode(), None) for alert, *_ in fired
        ]
        await sender.send(topics.alerts, records)  # a crash before ack: sent again, same id
        await engine.ack(fired)
        for alert, *_ in fired:
            alert_counter(alert.rule, alert.severity.value).inc()

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _absences() -> None:
        if settings.engine_mode != "batched":
            return
        while True:
            await asyncio.sleep(settings.absence_poll_s)
            try:
                await fire_absences()
            except Exception as exc:  # Redis or broker down: the timers wait in Redis
                log.warning("absence timers not fired", extra={"error": type(exc).__name__})

    async def nothing(batch: list[Any]) -> None:
        """``noop`` mode, the benchmark's ceiling: same consumer and batching, no work."""

    handle = nothing if settings.engine_mode == "noop" else correlate_batch

    @app.agent(events_in, name="correlate")
    async def correlate(stream: faust.StreamT[Any]) -> None:
        async for batch in take_batches(stream, settings.batch_max, settings.batch_within_s):
            started = time.perf_counter()
            try:
                await handle(list(batch))
            except Exception as exc:  # never let the loop ack and lose a batch silently
                log.exception("batch failed")
                metrics.failed.labels("internal_error").inc(len(batch))
                try:
                    await dead_letter([(ev, "internal_error", type(exc).__name__) for ev in batch])
                except Exception:
                    log.exception("dead-letter failed")
            metrics.processing.observe(time.perf_counter() - started)
            # counted once handled (alerts sent, late and dead letters written)
            metrics.events.inc(len(batch))
            metrics.batch.observe(len(batch))

    return app, health
