"""The Faust app factory: the configuration every Vigie service shares.

:func:`create_app` returns a :class:`faust.App` with

* the broker, web port and short session timeout from :class:`~shared.settings.Settings`;
* Faust's built-in web blueprints off (``/router``, ``/table``, ``/graph`` and
  the stats pages reveal internal state without authentication);
* ``/metrics`` (Prometheus: Faust's sensor plus the service's own metrics, on the
  registry given), ``/livez`` and ``/readyz`` (see :class:`Health`);
* ``fetch_max_wait_ms`` taken from the settings
  (:func:`shared.faust_compat.patch_fetch_wait`);
* producers with ``acks=all`` and, unless ``VIGIE_KAFKA_IDEMPOTENCE=false``,
  idempotence (:func:`shared.faust_compat.patch_idempotence`);
* the broker credentials of ``VIGIE_KAFKA_SECURITY_PROTOCOL`` and friends
  (:func:`shared.kafkaauth.faust_credentials`) for every client of the app;
* no topic declaration by Faust: the topics exist before a worker starts
  (:func:`shared.kafka.ensure_topics`, or the platform's topic resources);
* a producer that partitions as aiokafka does, each key hashed once
  (:class:`~shared.kafka.KeyPartitioner`).

:func:`run_worker` runs an app as a worker in the foreground, with JSON logs
and graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import mode
from aiokafka.client import AIOKafkaClient
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, Gauge

from shared.faust_compat import (
    CachedPrometheusMonitor,
    monitor_metrics,
    patch_commit_guard,
    patch_fetch_wait,
    patch_idempotence,
    patch_offset_reset_metadata,
)
from shared.kafka import KeyPartitioner
from shared.kafkaauth import client_options, faust_credentials
from shared.logs import JsonFormatter
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Apps that asked for a fetch wait, by consumer group id (see patch_fetch_wait).
_FETCH_WAIT_MS: dict[str, int] = {}
#: Apps whose producer is idempotent, by app id (see patch_idempotence).
_IDEMPOTENT: set[str] = set()


class Health:
    """Liveness and readiness of one worker.

    Ready means: the consumer joined its group (partitions assigned, possibly
    none), the broker answered a metadata request and every registered check
    (Redis PING...) passed, all within the last few seconds. The checks run in
    a background task, so ``/readyz`` itself never blocks on the network.
    """

    def __init__(
        self,
        app: faust.App,
        bootstrap: list[str],
        interval: float = 2.0,
        registry: CollectorRegistry | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.bootstrap = bootstrap
        #: the client's security arguments (shared.kafkaauth.client_options)
        self.options = options or {}
        self.interval = interval
        self.assigned = False
        self.checks: dict[str, Callable[[], Awaitable[Any]]] = {}
        self.status: dict[str, bool] = {"broker": False, "assigned": False}
        self.last_error: dict[str, str] = {}
        self.started = time.monotonic()
        self._client: AIOKafkaClient | None = None
        #: ``vigie_worker_ready{check}``: 1 when the check passed at its last run.
        self.gauge: Gauge | None = None
        if registry is not None:
            self.gauge = Gauge(
                "vigie_worker_ready",
                "Readiness checks of this worker (1 passed, 0 failed), by check",
                ["check"],
                registry=registry,
            )
            for name in self.status:
                self.gauge.labels(name).set(0)

    def add_check(self, name: str, check: Callable[[], Awaitable[Any]]) -> None:
        self.checks[name] = check
        self.status[name] = False
        if self.gauge is not None:
            self.gauge.labels(name).set(0)

    @property
    def ready(self) -> bool:
        return all(self.status.values())

    async def _check_broker(self) -> None:
        if self._client is None:
            self._client = AIOKafkaClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=3000, **self.options
            )
            await self._client.bootstrap()
        ok = await self._client.fetch_all_metadata()
        if ok is None:
            raise ConnectionError("no metadata")

    async def run_once(self) -> None:
        """Run every check once, with a timeout each; record the outcome."""
        named = {"broker": self._check_broker, **self.checks}
        for name, check in named.items():
            try:
                await asyncio.wait_for(check(), timeout=max(self.interval, 1.0))
            except Exception as exc:  # any failure means not ready, never a crash
                if self.status.get(name, True):
                    log.warning(
                        "readiness check failed", extra={"check": name, "error": type(exc).__name__}
                    )
                self.status[name] = False
                self.last_error[name] = type(exc).__name__
                if name == "broker" and self._client is not None:
                    await self._close_client()
            else:
                self.status[name] = True
                self.last_error.pop(name, None)
        self.status["assigned"] = self.assigned
        if self.gauge is not None:
            for name, ok in self.status.items():
                self.gauge.labels(name).set(1 if ok else 0)

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken client
                await client.close()

    async def loop(self) -> None:
        try:
            while True:
                await self.run_once()
                await asyncio.sleep(self.interval)
        finally:
            await self._close_client()


#: Every worker's first-generation GC threshold (CPython's default: 700). A
#: batch holds thousands of short-lived objects until it is decided; at 700 the
#: collector ran several times per batch, promoted them to the older
#: generations while still alive, and so triggered full collections of the
#: whole Faust heap (correlate: ~40 µs per event at 700, ~4 µs at 10,000,
#: measured with ``gc.callbacks``). Cyclic garbage waits a little longer.
GC_THRESHOLD_0 = 10_000


def settle_gc() -> None:
    """Put what a worker built at start out of the garbage collector's way.

    Collects, freezes the survivors (Faust, pydantic, rules and routing tables:
    over 100k long-lived objects, which every full collection walked: pauses of
    55-330 ms measured in the notify worker), and raises the first-generation
    threshold to :data:`GC_THRESHOLD_0`. Called once by every app's start-up
    task (:func:`create_app`); calling it again is harmless.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])


def create_app(
    service: str,
    settings: Settings,
    registry: CollectorRegistry,
    **overrides: Any,
) -> tuple[faust.App, Health]:
    """A Faust app for ``service`` with Vigie's common configuration.

    The consumer group is ``VIGIE_CONSUMER_GROUP``, by default
    ``<topic_prefix>vigie-<service>``. ``registry`` is the
    Prometheus registry served on ``/metrics`` (Faust's sensor is registered
    on it too); pass a fresh one per app in tests, the global one in workers.
    """
    patch_fetch_wait(_FETCH_WAIT_MS)
    patch_idempotence(_IDEMPOTENT)
    patch_commit_guard()  # never commit past a held message (faust-streaming #606)
    patch_offset_reset_metadata()  # refresh metadata when an offset lookup fails
    app_id = settings.consumer_group or f"{settings.topic_prefix}vigie-{service}"
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h}" for h in settings.bootstrap_servers],
        "store": "memory://",
        "datadir": str(settings.data_dir / app_id),
        "web_enabled": True,
        "web_port": settings.web_port,
        "web_bind": settings.web_host,
        "web_in_thread": False,
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
        "broker_session_timeout": settings.broker_session_timeout,
        "broker_heartbeat_interval": max(0.5, settings.broker_session_timeout / 6),
        "broker_rebalance_timeout": max(settings.broker_session_timeout, 10.0),
        "topic_partitions": settings.topic_partitions,
        "consumer_auto_offset_reset": "earliest",
        "producer_linger": 0.0,
        "producer_acks": -1,  # all in-sync replicas (min.insync.replicas 2 on Kafka)
        "broker_credentials": faust_credentials(settings),
        "topic_allow_declare": False,
        # the default partitioning, each key hashed once (shared.kafka)
        "producer_partitioner": KeyPartitioner(),
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
        "stream_wait_empty": False,
    }
    conf.update(overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id, **conf)
    _FETCH_WAIT_MS[app_id] = settings.fetch_max_wait_ms
    if settings.kafka_idempotence:
        _IDEMPOTENT.add(app_id)
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=registry, name_prefix=f"vigie_{service}_faust"
    )
    app.monitor = CachedPrometheusMonitor(metrics=monitor_metrics(app.monitor))
    health = Health(
        app, settings.bootstrap_servers, registry=registry, options=client_options(settings)
    )

    @app.page("/livez")
    async def livez(self: View, request: Request) -> Response:
        return self.json({"status": "alive", "service": service})

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        body = {"ready": health.ready, "checks": health.status, "errors": health.last_error}
        return self.json(body, status=200 if health.ready else 503)

    @app.on_partitions_assigned.connect  # type: ignore[misc,arg-type]
    async def _assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        health.assigned = True
        health.status["assigned"] = True

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _settle_gc() -> None:
        settle_gc()

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _health_loop() -> None:
        await health.loop()

    return app, health


class _OnStop(mode.Service):  # type: ignore[misc]
    """Runs a coroutine function when the app stops (closing clients...)."""

    def __init__(self, fn: Callable[[], Awaitable[Any]]) -> None:
        super().__init__()
        self._fn = fn

    async def on_stop(self) -> None:
        try:
            await self._fn()
        except Exception:
            log.exception("error while stopping")


def on_stop(app: faust.App, fn: Callable[[], Awaitable[Any]]) -> None:
    """Call ``fn`` when ``app`` stops (after its agents)."""
    app.add_dependency(_OnStop(fn))


class _Worker(faust.Worker):  # type: ignore[misc]
    """A Faust worker whose logs are Vigie's JSON lines."""

    def __init__(
        self,
        *args: Any,
        service: str,
        log_format: str,
        shutdown_timeout: float = 20.0,
        **kwargs: Any,
    ) -> None:
        self._vigie_service = service
        self._vigie_format = log_format
        self._vigie_shutdown_timeout = shutdown_timeout
        self._vigie_watchdog: threading.Timer | None = None
        super().__init__(*args, **kwargs)

    # mode's private signal handler (listed in shared.faust_compat.PRIVATE)
    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        """Stop gracefully, but never for longer than the shutdown timeout.

        The graceful path (Faust: stop the agents, commit offsets, close the
        producer, run the ``on_stop`` callbacks) runs on the event loop; a
        watchdog thread ends the process with code 70 (EX_SOFTWARE) if it has
        not finished after ``shutdown_timeout`` seconds, so a stuck close
        never outlives the pod's grace period.
        """
        if self._vigie_watchdog is None:
            log.info(
                "stopping", extra={"signal": signum.name, "timeout_s": self._vigie_shutdown_timeout}
            )
            self._vigie_watchdog = threading.Timer(self._vigie_shutdown_timeout, _force_exit)
            self._vigie_watchdog.daemon = True
            self._vigie_watchdog.start()
        super()._schedule_shutdown(signum)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        if self._vigie_format == "json":
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter(self._vigie_service))
        for noisy in ("aiokafka", "faust", "mode"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def _force_exit() -> None:
    log.error("graceful stop took too long: exiting")
    logging.shutdown()
    os._exit(70)


def run_worker(app: faust.App, service: str, settings: Settings) -> int:
    """Run ``app`` as a worker until SIGTERM/SIGINT; return the exit code.

    On SIGTERM/SIGINT the worker stops gracefully (0) within
    ``settings.shutdown_timeout_s``, or the process exits with code 70.
    """
    worker = _Worker(
        app,
        loglevel=settings.log_level,
        service=service,
        log_format=settings.log_format,
        shutdown_timeout=settings.shutdown_timeout_s,
        quiet=True,
        override_logging=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
