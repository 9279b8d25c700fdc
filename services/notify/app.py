"""Notify's wiring: Kafka topics, Redis, the dispatcher, the API, the background tasks.

No decision is taken here. The agent batches alerts and hands each batch to
the dispatcher (:mod:`services.notify.intake`: record in Redis with bounded
retries, a bad alert to ``vigie.notifications.dlq`` with a reason), then acks
it: the Kafka offset is committed only once the alert is safe in Redis. A
background task runs the flush loop (:mod:`services.notify.flusher`); the
cells' API is served on the same port as ``/metrics``.
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

from services.notify import api
from services.notify.cells import (
    Cells,
    Secrets,
    check_channels,
    default_cells_path,
    load_secrets,
)
from services.notify.channels.email import SmtpConfig
from services.notify.delivery import DeliveryConfig
from services.notify.dispatch import Dispatcher
from services.notify.metrics import NotifyMetrics
from services.notify.reload import ConfigReloader
from services.notify.route import Routing, default_routing_path
from services.notify.settings import NotifySettings
from shared.app import Health, create_app, on_stop
from shared.flow import take_batches
from shared.kafka import BatchSender, Record
from shared.redis import Keys, create_redis
from shared.topics import Topics

log = logging.getLogger("vigie.notify")

#: Under load, a batch lingers while alerts keep coming, at most this long (take_batches).
LINGER_S = 0.003


def delivery_config(settings: NotifySettings, smtp_password: str | None) -> DeliveryConfig:
    smtp = None
    if settings.smtp_host:
        smtp = SmtpConfig(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            settings.smtp_starttls,
            settings.smtp_tls,
            settings.smtp_username,
            smtp_password,
            settings.delivery_timeout_s,
        )
    secret = (
        settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    )
    return DeliveryConfig(
        webhook_url=settings.notify_webhook_url,
        webhook_secret=secret,
        attempts=settings.delivery_attempts,
        retry_base_s=settings.retry_base_s,
        timeout_s=settings.delivery_timeout_s,
        give_up_s=settings.notify_give_up_s,
        redeliver_s=settings.notify_redeliver_s,
        claim_s=settings.notify_claim_s,
        lease_s=settings.notify_lease_s,
        per_receiver=settings.notify_per_receiver,
        nflog_ttl_s=settings.nflog_ttl_s,
        smtp=smtp,
        matrix_homeserver=settings.matrix_homeserver,
        console_url=settings.console_url,
    )


class _Trail:
    """The audit trail and the DLQ on Kafka. :meth:`many` buffers records that
    :meth:`writer` publishes in one produce for whatever piled up while the
    previous one was on its way (flush batches are small when alerts are few;
    Faust's per-message send costs more than a record here)."""

    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.topics = topics
        self.audit_out = app.topic(
            topics.notifications, value_serializer="raw", key_serializer="raw"
        )
        self.dlq_out = app.topic(
            topics.notifications_dlq, value_serializer="raw", key_serializer="raw"
        )
        self.sender = BatchSender(app)
        self.buffer: list[Record] = []
        self.ready = asyncio.Event()

    async def one(self, record: dict[str, Any]) -> None:
        record = {"at_ms": int(time.time() * 1000), **record}
        await self.audit_out.send(value=json.dumps(record, default=str).encode())

    async def dlq(self, record: dict[str, Any]) -> None:
        await self.dlq_out.send(value=json.dumps(record, default=str).encode())

    async def many(self, records: list[dict[str, Any]]) -> None:
        at = int(time.time() * 1000)
        self.buffer.extend(
            (None, json.dumps({"at_ms": at, **r}, default=str).encode(), None) for r in records
        )
        self.ready.set()

    async def flush(self) -> None:
        """Publish what is buffered."""
        records = self.buffer[:]
        self.buffer.clear()
        self.ready.clear()
        if records:
            await self.sender.send(self.topics.notifications, records)

    async def writer(self) -> None:
        while True:
            await self.ready.wait()
            try:
                await self.flush()
            except Exception:  # the producer already retried
                log.exception("audit records not written")
                await asyncio.sleep(1.0)


def build(
    settings: NotifySettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    """The notify app. Raises ``ValueError`` (one line) on a bad routing, cells or secrets file.

    The routing and cells files are reloaded when they change (checked every
    ``VIGIE_NOTIFY_RELOAD_S``) or on SIGHUP; a bad new version is logged and ignored.
    """
    secrets_box: list[Secrets] = []

    def check(routing: Routing, cells: Cells) -> None:
        secrets = load_secrets(settings.notify_secrets_file, cells)
        check_channels(cells, secrets, settings.smtp_host, settings.matrix_homeserver)
        secrets_box[:] = [secrets]

    reloader = ConfigReloader(
        settings.notify_routing_file or default_routing_path(),
        settings.notify_cells_file or default_cells_path(),
        check,
    )
    routing, cells, secrets = reloader.routing, reloader.cells, secrets_box[0]

    app, health = create_app("notify", settings, registry)
    topics = Topics(settings.topic_prefix)
    alerts_in = app.topic(topics.alerts, value_serializer="raw", key_serializer="raw")
    trail = _Trail(app, topics)
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    health.add_check("redis", redis.ping)
    dispatcher = Dispatcher(
        redis,
        Keys(settings.redis_prefix),
        routing,
        cells,
        secrets,
        delivery_config(settings, secrets.smtp_password),
        NotifyMetrics(registry),
        trail.one,
        trail.dlq,
        audit_many=trail.many,
    )
    api.register(app, dispatcher, secrets.token_index())

    async def _close() -> None:
        await dispatcher.close()
        with contextlib.suppress(Exception):  # what the last flushes audited
            await trail.flush()
        await redis.aclose()

    on_stop(app, _close)

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _audit_writer() -> None:
        await trail.writer()

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _flusher() -> None:
        await dispatcher.run()

    @app.task  # type: ignore[misc,untyped-decorator]
    async def _watch_config() -> None:
        await _watch(reloader, dispatcher, settings.notify_reload_s)

    @app.agent(alerts_in, name="notify")
    async def notify(stream: faust.StreamT[Any]) -> None:
        await _consume(stream, dispatcher, settings.notify_batch_max)

    return app, health


async def _watch(reloader: ConfigReloader, dispatcher: Dispatcher, every_s: float) -> None:
    """Reload the routing and cells files on a change (checked every ``every_s``) or SIGHUP."""
    sighup = asyncio.Event()
    # not on the main thread (tests): no SIGHUP, the file watch still works
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, sighup.set)
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await sighup.wait()
        force = sighup.is_set()
        sighup.clear()
        if reloader.maybe_reload(force):
            dispatcher.apply(reloader.routing, reloader.cells)


async def _consume(stream: faust.StreamT[Any], dispatcher: Dispatcher, batch_max: int) -> None:
    """Alerts in batches from :func:`shared.flow.take_batches`, the one batching
    helper: a lone alert goes at once; under load a batch lingers while alerts
    keep coming from a backlog (at most ``LINGER_S``), up to ``batch_max``, so
    the per-batch round trips are shared. A batch is acked once ``handle()``
    returned (it is in Redis): an alert is acked only once it is safe; when
    ``handle()`` is cancelled (stopping), the batch is not acked and is read
    again after the restart."""
    async for batch in take_batches(stream, batch_max, LINGER_S):
        await dispatcher.handle([e.value for e in batch])
