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
from dataclasses import dataclass
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


@dataclass(slots=True)
class Send:
    """One notification to send on one channel of ``cell``: its notification log
    ``key`` and repeat interval ``ttl``; ``alerts`` for the latency metrics; with
    ``holds``, the cell holds these alerts once it is delivered."""

    cell: Cell
    key: str
    channel: Any
    n: Notification
    ttl: float
    alerts: list[Alert]
    holds: Alerts | None = None


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
        key = self.ctx.store.nflog_key
        sends = [
            Send(cell, key(tag, cell.id, i, entry), ch, n, ttl, alerts)
            for i, ch in enumerate(cell.channels)
        ]
        results = await asyncio.gather(*(self._claim_and_send(s, records) for s in sends))
        await self.ctx.emit(records)
        if "retry" in results:
            return "retry"
        return "delivered" if "delivered" in results else "done"

    async def _claim_and_send(self, s: Send, records: Records) -> str:
        claim = Claim(s.key, self.ctx.clock(), self.ctx.config.claim_ttl, s.ttl)
        [got] = await self.ctx.store.claim([claim])
        return await self.send_claimed(s, got, records)

    async def send_claimed(self, s: Send, got: str, records: Records) -> str:
        """Act on a claim answer: 'delivered', 'dedup', 'retry' or 'done' (failed
        for good). Writes the mark of what it did; the cell's hold of ``s.holds``
        goes with the sent mark. Audit records go to ``records`` (the caller
        writes them once the batch is done)."""
        cell, n, kind = s.cell, s.n, s.channel.type
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
            attempts, last = await self._try(cell, s.channel, n)
            if attempts > 0:
                clock = self.ctx.clock
                held, timers = holds_of(cell, s.holds, clock()) if s.holds else ({}, {})
                keep = self.ctx.config.keep_s(s.ttl)
                await self._mark(s.key, f"sent:{clock()}", keep, held, timers)
                self._delivered(cell, kind, s.alerts)
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
        return await self._failed(s, first, last, records)

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

    async def _failed(self, s: Send, first: float, last: str, records: Records) -> str:
        """Every try failed: 'retry' at a later flush, or 'done' once ``give_up_s``
        passed (dead-lettered, then marked: a crash between dead-letters it again)."""
        ctx, cfg = self.ctx, self.ctx.config
        cell, key, kind, n = s.cell, s.key, s.channel.type, s.n
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
        await self._mark(key, f"sent:{ctx.clock()}", cfg.keep_s(s.ttl))
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
        sends = [
            Send(
                job.cell,
                key,
                ch,
                job.n,
                job.route.repeat_interval,
                [a for a, _ in job.alerts],
                job.alerts,
            )
            for job, ch, key in flush.claims
        ]
        send = self.delivery.send_claimed
        outcomes = await asyncio.gather(
            *(send(s, got, flush.records) for s, got in zip(sends, flush.answers, strict=True))
        )
        flush.outcomes = list(outcomes)
