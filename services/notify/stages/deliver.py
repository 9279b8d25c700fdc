"""Delivery: send what was claimed, with retries, and mark it in the notification log.

A delivery keeps its receiver slot (``per_receiver`` per cell and process)
until its sent mark (and the cell's hold of its alerts, with the ack timer)
is in the store, so a worker killed at any moment leaves at most
``per_receiver`` notifications per cell delivered and unmarked: those a
restart sends again, with the same ``notificationId`` (at-least-once). A
failure to write a mark raises, like any store failure of the flush (the
claim then expires and the notification is sent again).

Each delivery is tried ``attempts`` times with exponential backoff and full
jitter, then again at later flushes until ``give_up_s`` after the first try;
then the notification is dead-lettered and marked sent (not retried).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from services.notify.cells import Cell
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.registry import Notifiers
from services.notify.stages.base import Alerts, Context, Flush
from services.notify.stages.mark import holds_of
from services.notify.store.base import Claim, Held, Timers
from shared.models import Alert

Records = list[dict[str, Any]]


def _record(cell: Cell, kind: str, n: Notification, outcome: str, **extra: Any) -> dict[str, Any]:
    """One audit record of a delivery outcome."""
    return {"kind": "delivery", "receiver": cell.id, "channel": kind, "outcome": outcome, **extra}


class Delivery:
    """Sends claimed notifications through the :class:`Notifiers`."""

    def __init__(self, ctx: Context, notifiers: Notifiers) -> None:
        self.ctx = ctx
        self.notifiers = notifiers
        self._sems: dict[str, asyncio.Semaphore] = {}

    async def deliver_all(
        self, cell: Cell, n: Notification, tag: str, entry: str, ttl: float, alerts: list[Alert]
    ) -> str:
        """Claim and deliver on every channel of ``cell`` (escalations):
        'delivered', 'retry' or 'done'; audit records written."""
        records: Records = []
        keys = [self.ctx.store.nflog_key(tag, cell.id, i, entry) for i in range(len(cell.channels))]
        results = await asyncio.gather(
            *(
                self._claim_and_send(cell, key, ch, n, ttl, alerts, records)
                for key, ch in zip(keys, cell.channels, strict=True)
            )
        )
        await self.ctx.emit(records)
        if "retry" in results:
            return "retry"
        return "delivered" if "delivered" in results else "done"

    async def _claim_and_send(
        self,
        cell: Cell,
        key: str,
        channel: Any,
        n: Notification,
        ttl: float,
        alerts: list[Alert],
        records: Records,
    ) -> str:
        claim = Claim(key, self.ctx.clock(), self.ctx.config.claim_ttl, ttl)
        [got] = await self.ctx.store.claim([claim])
        return await self.send_claimed(cell, key, channel, n, ttl, alerts, got, records)

    async def send_claimed(
        self,
        cell: Cell,
        key: str,
        channel: Any,
        n: Notification,
        ttl: float,
        alerts: list[Alert],
        got: str,
        records: Records,
        holds: Alerts | None = None,
    ) -> str:
        """Act on a claim answer: 'delivered', 'dedup', 'retry' or 'done' (failed
        for good). Writes the mark of what it did; given ``holds``, the cell's
        hold of those alerts goes with the sent mark. Audit records go to
        ``records`` (the caller writes them once the batch is done)."""
        kind = channel.type
        if got.startswith("sent:"):
            self.ctx.counter(self.ctx.metrics.notifications, cell.id, kind, "deduplicated").inc()
            return "dedup"
        if got.startswith("claimed:"):
            return "retry"  # another replica (or a crashed one) holds it
        first = float(got)
        sem = self._sems.get(cell.id)
        if sem is None:
            sem = self._sems[cell.id] = asyncio.Semaphore(self.ctx.config.per_receiver)
        async with sem:
            attempts, last = await self._try(cell, channel, n)
            if attempts > 0:
                clock = self.ctx.clock
                held, timers = holds_of(cell, holds, clock()) if holds else ({}, {})
                await self._mark(key, f"sent:{clock()}", self.ctx.config.keep_s(ttl), held, timers)
                self._delivered(cell, kind, alerts)
                records.append(
                    _record(
                        cell,
                        kind,
                        n,
                        "delivered",
                        attempts=attempts,
                        notification_id=n.notification_id,
                        notification_kind=n.kind,
                        alert_ids=[a["fingerprint"] for a in n.alerts],
                    )
                )
                return "delivered"
        if attempts < 0:
            first = -1e18  # not retryable: give up at once
        return await self._failed(cell, key, kind, n, ttl, first, last, records)

    async def _try(self, cell: Cell, channel: Any, n: Notification) -> tuple[int, str]:
        """Send, ``attempts`` times at most: (attempts it took, or 0 when every
        one failed, -1 when one failed for good; the last error)."""
        cfg = self.ctx.config
        last = ""
        for attempt in range(cfg.attempts):
            try:
                await self.notifiers.send(cell, channel, n)
            except DeliveryError as exc:
                last = str(exc)
                if not exc.retryable:
                    return -1, last
                if attempt + 1 < cfg.attempts:
                    self.ctx.counter(self.ctx.metrics.retries, channel.type).inc()
                    backoff = cfg.retry_base_s * 2**attempt
                    await asyncio.sleep(random.uniform(0, backoff))  # full jitter
            else:
                return attempt + 1, last
        return 0, last

    async def _failed(
        self,
        cell: Cell,
        key: str,
        kind: str,
        n: Notification,
        ttl: float,
        first: float,
        last: str,
        records: Records,
    ) -> str:
        """Every try failed: 'retry' at a later flush, or 'done' once ``give_up_s``
        passed (dead-lettered, then marked: a crash between dead-letters it again)."""
        ctx, cfg = self.ctx, self.ctx.config
        if ctx.clock() - first < cfg.give_up_s:
            await self._mark(key, f"failed:{first}", max(1, int(cfg.give_up_s + cfg.claim_s)))
            ctx.counter(ctx.metrics.notifications, cell.id, kind, "retrying").inc()
            records.append(
                _record(cell, kind, n, "retrying", error=last, notification_id=n.notification_id)
            )
            return "retry"
        ctx.counter(ctx.metrics.notifications, cell.id, kind, "failed").inc()
        ctx.counter(ctx.metrics.dlq, "delivery_failed").inc()
        await ctx.dlq(
            {
                "reason": "delivery_failed",
                "receiver": cell.id,
                "channel": kind,
                "message": last,
                "notification_id": n.notification_id,
                "alert_ids": [a["fingerprint"] for a in n.alerts],
            }
        )
        await self._mark(key, f"sent:{ctx.clock()}", cfg.keep_s(ttl))
        records.append(
            _record(cell, kind, n, "failed", error=last, notification_id=n.notification_id)
        )
        return "done"

    async def _mark(
        self, key: str, value: str, ex: int, held: Held | None = None, timers: Timers | None = None
    ) -> None:
        """One mark (and holds), in a round trip shared with the deliveries finishing meanwhile."""
        await self.ctx.store.mark(key, value, ex, held or {}, timers or {})
        if timers:
            self.ctx.wake(min(timers.values()))

    def _delivered(self, cell: Cell, kind: str, alerts: list[Alert]) -> None:
        m = self.ctx.metrics
        self.ctx.counter(m.notifications, cell.id, kind, "delivered").inc()
        now = time.time()
        latency = self.ctx.counter(m.latency, kind)
        pipeline = self.ctx.counter(m.pipeline_latency, kind)
        for a in alerts:
            latency.observe(max(0.0, now - a.starts_at.timestamp()))
            if a.trigger_published_ms:
                pipeline.observe(max(0.0, now - a.trigger_published_ms / 1000))


class Deliver:
    """Send every claim of the flush, side by side: :attr:`Flush.outcomes`."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    async def __call__(self, flush: Flush) -> None:
        send = self.delivery.send_claimed
        flush.outcomes = list(
            await asyncio.gather(
                *(
                    send(
                        job.cell,
                        key,
                        ch,
                        job.n,
                        job.route.repeat_interval,
                        [a for a, _ in job.alerts],
                        got,
                        flush.records,
                        job.alerts,
                    )
                    for (job, ch, key), got in zip(flush.claims, flush.answers, strict=True)
                )
            )
        )
