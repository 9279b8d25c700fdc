"""Notify's Faust edge: read alerts, route, deliver once, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import faust
import httpx
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from services.notify.channels.webhook import DeliveryError, deliver, payload
from services.notify.metrics import NotifyMetrics
from services.notify.nflog import NotificationLog
from services.notify.settings import NotifySettings
from shared.app import Health, create_app, on_stop
from shared.models import Alert
from shared.redis import Keys, create_redis
from shared.topics import Topics

log = logging.getLogger("vigie.notify")


def receivers_for(alert: Alert) -> list[str]:
    """Skeleton routing: the département's cell, else headquarters."""
    dept = alert.labels.get("department")
    return [f"dept-{dept}"] if dept else ["hq"]


def build(
    settings: NotifySettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    app, health = create_app("notify", settings, registry)
    topics = Topics(settings.topic_prefix)
    metrics = NotifyMetrics(registry)
    alerts_in = app.topic(topics.alerts, value_serializer="raw", key_serializer="raw")
    audit_out = app.topic(topics.notifications, value_serializer="raw", key_serializer="raw")
    dlq_out = app.topic(topics.notifications_dlq, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    health.add_check("redis", redis.ping)
    nflog = NotificationLog(redis, Keys(settings.redis_prefix), settings.nflog_ttl_s)
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    client = httpx.AsyncClient()

    async def _close() -> None:
        await client.aclose()
        await redis.aclose()

    on_stop(app, _close)

    async def audit(kind: str, **fields: Any) -> None:
        record = {"kind": kind, "at_ms": int(time.time() * 1000), **fields}
        await audit_out.send(value=json.dumps(record, default=str).encode())

    async def notify_one(alert: Alert, receiver: str) -> None:
        entry = f"{alert.alert_id}:{alert.status}"
        if not await nflog.claim(receiver, entry):
            metrics.notifications.labels(receiver, "webhook", "deduplicated").inc()
            return
        url = settings.notify_webhook_url.format(cell=receiver)
        body = payload(receiver, f"{receiver}:{alert.alert_id}", [alert])
        last = ""
        for attempt in range(settings.delivery_attempts):
            try:
                await deliver(client, url, body, secret, settings.delivery_timeout_s)
            except DeliveryError as exc:
                last = str(exc)
                if not exc.retryable or attempt + 1 == settings.delivery_attempts:
                    break
                metrics.retries.labels("webhook").inc()
                await asyncio.sleep(random.uniform(0, settings.retry_base_s * 2**attempt))  # noqa: S311
            else:
                await nflog.sent(receiver, entry)
                metrics.notifications.labels(receiver, "webhook", "delivered").inc()
                if alert.trigger_published_ms:
                    metrics.latency.labels("webhook").observe(
                        max(0.0, time.time() - alert.trigger_published_ms / 1000))
                await audit("delivery", alert_id=alert.alert_id, receiver=receiver,
                            channel="webhook", outcome="delivered", attempts=attempt + 1)
                return
        await nflog.sent(receiver, entry)  # failed for good: in the DLQ, not retried by replays
        metrics.notifications.labels(receiver, "webhook", "failed").inc()
        await dlq_out.send(value=json.dumps({
            "alert_id": alert.alert_id, "receiver": receiver, "channel": "webhook",
            "reason": "delivery_failed", "message": last, "alert": alert.model_dump(mode="json"),
        }).encode())
        await audit("delivery", alert_id=alert.alert_id, receiver=receiver, channel="webhook",
                    outcome="failed", error=last)

    @app.agent(alerts_in, name="notify")
    async def notify(stream: faust.StreamT[Any]) -> None:
        async for value in stream:
            metrics.alerts.inc()
            try:
                alert = Alert.model_validate_json(value)
            except ValidationError as exc:
                await dlq_out.send(value=json.dumps({
                    "reason": "bad_alert", "message": str(exc.errors()[0]["msg"]),
                }).encode())
                continue
            await asyncio.gather(*(notify_one(alert, r) for r in receivers_for(alert)))

    return app, health
