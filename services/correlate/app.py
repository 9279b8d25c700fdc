"""Correlate's Faust edge: read normalised events, update state, emit alerts."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import faust
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from services.correlate.metrics import CorrelateMetrics
from services.correlate.settings import CorrelateSettings
from services.correlate.state import Sighting, TargetState
from services.correlate.target import target_alert
from shared.app import Health, create_app, on_stop
from shared.models import NormalizedEvent
from shared.redis import Keys, create_redis
from shared.topics import Topics

log = logging.getLogger("vigie.correlate")


def build(
    settings: CorrelateSettings, registry: CollectorRegistry = REGISTRY
) -> tuple[faust.App, Health]:
    app, health = create_app("correlate", settings, registry)
    topics = Topics(settings.topic_prefix)
    metrics = CorrelateMetrics(registry)
    events_in = app.topic(topics.events, value_serializer="raw", key_serializer="raw")
    alerts_out = app.topic(topics.alerts, value_serializer="raw", key_serializer="raw")
    dlq_out = app.topic(topics.events_dlq, value_serializer="raw", key_serializer="raw")
    redis = create_redis(settings.redis_url, settings.redis_pool_size)
    health.add_check("redis", redis.ping)
    on_stop(app, redis.aclose)
    window_ms = settings.target_window_s * 1000
    state = TargetState(
        redis, Keys(settings.redis_prefix + ":corr"), window_ms,
        settings.target_window_s + settings.allowed_lateness_s,
    )

    @app.agent(events_in, name="correlate")
    async def correlate(stream: faust.StreamT[Any]) -> None:
        async for ev in stream.events():
            started = time.perf_counter()
            metrics.events.inc()
            try:
                event = NormalizedEvent.model_validate_json(ev.value)
            except ValidationError as exc:
                metrics.invalid.inc()
                await dlq_out.send(value=json.dumps({
                    "reason": "bad_normalized_event", "message": str(exc.errors()[0]["msg"]),
                    "source": {"topic": ev.message.topic, "partition": ev.message.partition,
                               "offset": ev.message.offset},
                }).encode())
                continue
            sighting = Sighting(
                event.agency, event.event_id, int(event.occurred_at.timestamp() * 1000),
                event.case_ref, event.contact, event.handling.value,
            )
            kinds = {e.token: e.kind.value for e in event.entities}
            matches = await state.observe(list(kinds), sighting)
            now_ms = int(time.time() * 1000)
            for token, sightings in matches.items():
                alert = target_alert(event, kinds[token], token, sightings, window_ms, now_ms)
                if alert is not None:
                    await alerts_out.send(key=alert.alert_id.encode(),
                                          value=alert.model_dump_json().encode())
                    metrics.alerts.labels(alert.rule, alert.severity.value).inc()
            metrics.processing.observe(time.perf_counter() - started)

    return app, health
