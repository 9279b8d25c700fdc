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
import signal
import time
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from services.correlate.engine import Engine
from services.correlate.metrics import CorrelateMetrics
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import Reloader
from services.correlate.settings import CorrelateSettings
from services.correlate.state import RedisState
from shared.app import Health, create_app, on_stop
from shared.models import NormalizedEvent
from shared.redis import Keys, create_redis
from shared.retry import retry
from shared.topics import Topics

log = logging.getLogger("vigie.correlate")


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
    alerts_out = app.topic(topics.alerts, value_serializer="raw", key_serializer="raw")
    dlq_out = app.topic(topics.events_dlq, value_serializer="raw", key_serializer="raw")
    late_out = app.topic(topics.events_late, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    health.add_check("redis", redis.ping)
    on_stop(app, redis.aclose)
    reloader = Reloader(settings.rules_dir or DEFAULT_DIR)
    metrics.set_rules(reloader.active.version, len(reloader.active.rules))
    state = RedisState(redis, naive=settings.engine_mode == "naive")
    engine = Engine(
        reloader.active,
        state,
        Keys(settings.redis_prefix + ":corr"),
        settings.allowed_lateness_s * 1000,
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

    async def dead_letter(ev: Any, reason: str, message: str) -> None:
        await dlq_out.send(
            value=json.dumps(
                {
                    "reason": reason,
                    "message": message,
                    "source": _source(ev),
                    "original": ev.value.decode("utf-8", "replace"),
                }
            ).encode()
        )

    async def correlate_batch(batch: list[Any]) -> None:
        decoded: list[NormalizedEvent] = []
        raw_of: dict[tuple[str, str], Any] = {}
        for ev in batch:
            try:
                event = NormalizedEvent.model_validate_json(ev.value)
            except ValidationError as exc:
                metrics.invalid.inc()
                await dead_letter(ev, "bad_normalized_event", str(exc.errors()[0]["msg"]))
                continue
            decoded.append(event)
            raw_of[(event.agency, event.event_id)] = ev
        if settings.engine_mode == "noop" or not decoded:
            return

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning(
                "correlation failed, retrying",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )

        before = state.round_trips
        try:  # Redis down, timeout...: retry the idempotent batch
            outcome = await retry(
                lambda: engine.process(decoded),
                settings.redis_attempts,
                base_delay=0.1,
                max_delay=2.0,
                on_error=failed,
            )
        except Exception:
            metrics.redis_round_trips.inc(state.round_trips - before)
            for event in decoded:
                metrics.failed.labels("state_unavailable").inc()
                await dead_letter(
                    raw_of[(event.agency, event.event_id)],
                    "state_unavailable",
                    "the state store kept failing",
                )
            return
        metrics.redis_round_trips.inc(state.round_trips - before)
        for event in outcome.late:
            metrics.late.inc()
            ev = raw_of[(event.agency, event.event_id)]
            await late_out.send(key=ev.message.key, value=ev.value)
        for alert, claim in outcome.alerts:
            try:
                await alerts_out.send(
                    key=alert.alert_id.encode(), value=alert.model_dump_json().encode()
                )
            except Exception:
                await state.release([claim])  # a redelivery may raise it again
                raise
            metrics.alerts.labels(alert.rule, alert.severity.value).inc()

    @app.agent(events_in, name="correlate")
    async def correlate(stream: faust.StreamT[Any]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_within_s
        )
        async for batch in batches:
            started = time.perf_counter()
            try:
                await correlate_batch(list(batch))
            except Exception as exc:  # never let the loop ack and lose a batch silently
                log.exception("batch failed")
                for ev in batch:
                    metrics.failed.labels("internal_error").inc()
                    try:
                        await dead_letter(ev, "internal_error", type(exc).__name__)
                    except Exception:
                        log.exception("dead-letter failed")
            metrics.processing.observe(time.perf_counter() - started)
            # counted once handled (alerts sent, late and dead letters written)
            metrics.events.inc(len(batch))
            metrics.batch.observe(len(batch))

    return app, health
