"""Correlate's Faust edge: wiring only (the decisions are in :mod:`.handler`).

Builds the engine (rules, Redis state, absence timers), the producer and the
:class:`~.handler.CorrelateHandler`; runs the agent over batches of
``vigie.events.v1``, the absence poll every ``VIGIE_ABSENCE_POLL_S`` and the
rules reload (directory changes or SIGHUP; a bad new version is logged and
ignored, the previous one stays active).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry

from services.correlate.absence import AbsenceStore
from services.correlate.engine import Engine
from services.correlate.handler import CorrelateHandler
from services.correlate.metrics import CorrelateMetrics
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import Reloader
from services.correlate.settings import CorrelateSettings
from services.correlate.state import RedisState
from shared.app import Health, create_app, on_stop
from shared.flow import take_batches
from shared.kafka import BatchSender
from shared.redis import Keys, create_redis
from shared.topics import Topics

log = logging.getLogger("vigie.correlate")


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

    def owned() -> list[int]:
        """The partitions of the events topic this worker owns now."""
        return [tp.partition for tp in app.consumer.assignment() if tp.topic == topics.events]

    worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    handler = CorrelateHandler(
        engine, state, absences, sender.send, owned, settings, metrics, worker
    )

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _absences() -> None:
        if settings.engine_mode != "batched":
            return
        while True:
            await asyncio.sleep(settings.absence_poll_s)
            try:
                await handler.fire_absences()
            except Exception as exc:  # Redis or broker down: the timers wait in Redis
                log.warning("absence timers not fired", extra={"error": type(exc).__name__})

    async def nothing(batch: list[Any]) -> None:
        """``noop`` mode, the benchmark's ceiling: same consumer and batching, no work."""

    handle = nothing if settings.engine_mode == "noop" else handler.handle

    @app.agent(events_in, name="correlate")
    async def correlate(stream: faust.StreamT[Any]) -> None:
        async for batch in take_batches(stream, settings.batch_max, settings.batch_within_s):
            await handler.run(list(batch), handle)

    return app, health
