"""The notification pipeline on Redis: :class:`Dispatcher`, what ``app`` and the API use.

A :class:`~services.notify.handler.NotifyHandler` on a
:class:`~services.notify.store.redis_store.RedisStore`, delivering through the
channels the configuration can reach (:mod:`services.notify.channels.registry`).
The layout (stages, store, channels, escalation, run loop) is described in
``docs/notify.md``.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from services.notify.cells import Cells, Secrets
from services.notify.channels.registry import notifiers
from services.notify.delivery import DeliveryConfig
from services.notify.handler import NotifyHandler
from services.notify.metrics import NotifyMetrics
from services.notify.route import Routing
from services.notify.stages.base import BatchSink, Clock, Sink
from services.notify.store.redis_store import RedisStore
from shared.redis import Keys
from shared.resp import Pipelines, PoolPipelines

__all__ = ["DeliveryConfig", "Dispatcher"]


class Dispatcher(NotifyHandler):
    """Notify on ``redis`` under ``keys``; ``pipes``: how pipelines reach Redis
    (default: :func:`~shared.resp.pipelines_for`)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        routing: Routing,
        cells: Cells,
        secrets: Secrets,
        config: DeliveryConfig,
        metrics: NotifyMetrics,
        audit: Sink,
        dlq: Sink,
        clock: Clock = time.time,
        audit_many: BatchSink | None = None,
        pipes: Pipelines | PoolPipelines | None = None,
    ) -> None:
        super().__init__(
            RedisStore(redis, keys, pipes),
            notifiers(config, secrets),
            routing,
            cells,
            config,
            metrics,
            audit,
            dlq,
            clock,
            audit_many,
        )
        self.redis = redis
        self.keys = keys  # the console reads a few keys (services/notify/console/backend.py)
        self.secrets = secrets
