"""Notify's decisions: :class:`NotifyHandler`, on any notify store (``store.base``).

The handler holds no state of its own beyond caches: groups, timers, the
notification log, incidents, acknowledgements, escalations and silences are
in the store (Redis in production, so a restart or a second replica neither
loses a group nor notifies twice; memory in unit tests).

* :meth:`NotifyHandler.ingest_many` records alerts (``record``);
  :meth:`~NotifyHandler.ingest_and_flush` also sends at once, from memory, the
  new groups due now (``record → deliver → mark``, in the background).
* :meth:`NotifyHandler.flush_due` flushes due groups, leased to this caller:
  ``load → mute → plan → tally → dedup → deliver → mark``.
* :meth:`NotifyHandler.escalate_due` escalates unacknowledged alerts
  (:mod:`services.notify.escalate`); :meth:`NotifyHandler.run` does both
  until cancelled (:mod:`services.notify.flusher`).
* The cells' API backend (``holds``, ``acknowledge``, ``resolve``,
  ``list_alerts``, ``count_silences``, ``invalidate_silences``,
  ``silences``) is here too, from :mod:`services.notify.actions`.
"""

from __future__ import annotations

import logging
import time

from services.notify.actions import CellActions
from services.notify.cells import Cells
from services.notify.channels.registry import Notifiers
from services.notify.delivery import DeliveryConfig
from services.notify.escalate import Escalator
from services.notify.flusher import Flusher
from services.notify.intake import Intake
from services.notify.metrics import NotifyMetrics
from services.notify.route import Routing
from services.notify.stages.base import BatchSink, Clock, Context, Flush, Pipeline, Sink, Tally
from services.notify.stages.dedup import Dedup
from services.notify.stages.deliver import Deliver, Delivery
from services.notify.stages.mark import Mark
from services.notify.stages.mute import Mute
from services.notify.stages.plan import Load, Plan
from services.notify.stages.record import Record
from services.notify.store.base import Due, NotifyStore, Silences
from shared.models import Alert

log = logging.getLogger("vigie.notify")


class NotifyHandler:
    """Notify's pipeline on ``store``, delivering through ``notifiers``."""

    def __init__(
        self,
        store: NotifyStore,
        notifiers: Notifiers,
        routing: Routing,
        cells: Cells,
        config: DeliveryConfig,
        metrics: NotifyMetrics,
        audit: Sink,
        dlq: Sink,
        clock: Clock = time.time,
        audit_many: BatchSink | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.flusher = Flusher(config.batches, clock)
        self.ctx = ctx = Context(
            store, routing, cells, config, metrics, audit, dlq, clock, audit_many
        )
        ctx.wake = self.flusher.timers_set
        self.mute = Mute(ctx)
        self.mark = Mark(ctx)
        self.delivery = Delivery(ctx, notifiers)
        self.escalator = Escalator(ctx, self.delivery)
        self.actions = CellActions(ctx)
        tally, deliver, plan = Tally(ctx), Deliver(self.delivery), Plan(ctx)
        self.record = Record(ctx, Pipeline(self.mute, plan), tally)
        self.flush = Pipeline(Load(ctx), self.mute, plan, tally, Dedup(ctx), deliver, self.mark)
        self.send = Pipeline(deliver, self.mark)
        # the cells' API backend (services.notify.api, the console)
        self.holds = self.actions.holds
        self.acknowledge = self.actions.acknowledge
        self.resolve = self.actions.resolve
        self.list_alerts = self.actions.list_alerts
        self.count_silences = self.actions.count_silences
        #: the Kafka edge: a batch of raw alerts, decoded and recorded (never raises)
        self.handle = Intake(self.ingest_and_flush, metrics, dlq).handle

    # what the API and the tests read ---------------------------------------
    @property
    def silences(self) -> Silences:
        return self.store.silences

    @property
    def routing(self) -> Routing:
        return self.ctx.routing

    @property
    def cells(self) -> Cells:
        return self.ctx.cells

    @property
    def config(self) -> DeliveryConfig:
        return self.ctx.config

    @property
    def metrics(self) -> NotifyMetrics:
        return self.ctx.metrics

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def audit(self) -> Sink:
        return self.ctx.audit

    def invalidate_silences(self, cell: str) -> None:
        """A silence of ``cell`` was created or expired: read them again."""
        self.mute.invalidate(cell)

    def apply(self, routing: Routing, cells: Cells) -> None:
        """Use a new routing and cells pair (hot reload) for everything from now on.

        Groups of a route the new routing no longer has are dropped at their next
        flush; flushes in flight finish with the pair they started with.
        """
        self.ctx.apply(routing, cells)
        self.mute.invalidate()

    async def close(self) -> None:
        """Let the flushes in flight end (within the delivery timeout), then close
        the store and the notifiers."""
        await self.flusher.close(self.config.timeout_s)
        await self.store.close()
        await self.notifiers.close()

    # ingest -------------------------------------------------------------
    async def ingest(self, alert: Alert) -> int:
        """Record one alert (see :meth:`ingest_many`)."""
        return await self.ingest_many([alert])

    async def ingest_many(self, alerts: list[Alert]) -> int:
        """Record alerts in the groups their routes reach; return how many group updates.

        Idempotent (a redelivered alert changes nothing); three store round
        trips per batch. Raises ``redis.RedisError`` when Redis fails: the caller
        retries the batch, and nothing half-applied is wrong when retried. Due
        groups are left to :meth:`run` (or :meth:`flush_due`).
        """
        return await self._record(alerts, take=False)

    async def ingest_and_flush(self, alerts: list[Alert]) -> int:
        """:meth:`ingest_many`, then flush at once, in the background, the groups
        these alerts created that have no ``group_wait``.

        Such a group is leased to this replica as it is recorded (the same lease
        :meth:`flush_due` takes), and flushed from the alerts in memory: no
        timer tick, no read back. A crash before the flush ends frees the lease:
        :meth:`run` flushes the group then. When ``batches`` flushes are already
        in flight, the groups are scheduled as usual.
        """
        return await self._record(alerts, take=self.flusher.room)

    async def _record(self, alerts: list[Alert], take: bool) -> int:
        flush = Flush(0.0, alerts=alerts, take=take)
        await self.record(flush)
        if flush.sending:
            self.flusher.spawn(self._safely(self.send, flush))
        return flush.count

    async def drain(self) -> None:
        """Wait for the flushes in flight (tests, shutdown)."""
        await self.flusher.drain()

    # flush --------------------------------------------------------------
    async def flush_due(self, limit: int = 512) -> int:
        """Flush every due group (leased to this caller, in one batch); return how many.

        A failure leaves the leased groups to be flushed again when the lease ends.
        """
        now = self.clock()
        due = await self.store.lease_due(now, now + self.config.lease_s, limit, 0)
        if due.groups:
            await self._safely(self.flush, Flush(now + self.config.lease_s, gids=due.groups))
        return len(due.groups)

    async def _safely(self, pipeline: Pipeline, flush: Flush) -> None:
        try:
            await pipeline(flush)
        except Exception:  # the leases bring these groups back
            log.exception("flush failed", extra={"groups": len(flush.gids or flush.jobs)})

    async def escalate_due(self, limit: int = 256) -> int:
        """Escalate every unacknowledged alert whose cell's timeout passed."""
        now = self.clock()
        due = await self.store.lease_due(now, now + self.config.lease_s, 0, limit)
        await self.escalator.escalate_all(due.escalations)
        return len(due.escalations)

    # the run loop (services.notify.flusher) ---------------------------------
    async def run(self, idle_s: float = 0.5) -> None:
        """Flush due groups and escalate due alerts until cancelled (see :mod:`.flusher`)."""
        await self.flusher.run(self, idle_s)

    async def due(self, now: float, groups: bool) -> Due:
        """Lease due groups (unless not ``groups``) and due escalations, one round trip."""
        return await self.store.lease_due(now, now + self.config.lease_s, 512 if groups else 0, 256)

    async def flush_leased(self, gids: list[str], now: float) -> None:
        """Flush groups :meth:`due` leased at ``now`` (never raises)."""
        await self._safely(self.flush, Flush(now + self.config.lease_s, gids=gids))

    async def escalate_all(self, members: list[str]) -> None:
        await self.escalator.escalate_all(members)

    async def gauge(self) -> None:
        self.metrics.silences.set(await self.count_silences())
