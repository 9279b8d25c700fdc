"""After the deliveries: each group's next timer, the audit trail, finished groups dropped.

The notification log marks themselves are written by each delivery before
its receiver slot frees (:mod:`services.notify.stages.deliver`); this stage
writes what the batch decided once its deliveries ended.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.notify.cells import Cell
from services.notify.group import finished
from services.notify.stages.base import Alerts, Context, Flush
from services.notify.store.base import Held, Timers


def holds_of(cell: Cell, alerts: Alerts, now: float) -> tuple[Held, Timers]:
    """The cell now holds these alerts (its API lists them) and, when it has
    someone to escalate to, their ack timers start (``alert|incident|cell``)."""
    mine = {a.alert_id: now for a, _ in alerts}
    timers: Timers = {}
    if cell.escalate_to:
        for a, seq in alerts:
            timers.setdefault(f"{a.alert_id}|{seq}|{cell.id}", now + cell.ack_timeout_s)
    return {cell.id: mine}, timers


class Mark:
    """Reschedule (``redeliver_s`` after a retry, else ``group_interval``), write
    the audit records, drop the finished groups."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, flush: Flush) -> None:
        ctx = self.ctx
        by_job: dict[str, set[str]] = {}
        for (job, _, _), outcome in zip(flush.claims, flush.outcomes, strict=True):
            by_job.setdefault(job.gid, set()).add(outcome)
        now = ctx.clock()
        for job in flush.jobs:
            got = by_job.get(job.gid, set())
            if "retry" in got:
                flush.reschedule[job.gid] = now + ctx.config.redeliver_s
            elif finished(job.members):
                flush.drops.append((job.gid, job.ver, now + job.route.group_interval))
            else:
                flush.reschedule[job.gid] = now + job.route.group_interval
        if flush.reschedule:
            await ctx.store.schedule(flush.reschedule, {})
            ctx.wake(min(flush.reschedule.values()))
        await ctx.emit(flush.records)
        if flush.drops:
            await self.drop(flush.drops, flush.lease)

    async def drop(self, drops: Sequence[tuple[str, str | None, float]], lease: float) -> None:
        """Delete finished groups (unless an alert arrived: version changed) and
        unschedule them (unless someone rescheduled them since); a group kept
        is scheduled again, later."""
        deleted = await self.ctx.store.delete_groups([(gid, ver) for gid, ver, _ in drops])
        kept = {
            gid: later
            for (gid, ver, later), ok in zip(drops, deleted, strict=True)
            if ver is not None and not ok
        }
        gone = [gid for gid, _, _ in drops if gid not in kept]
        await self.ctx.store.unschedule(gone, lease, kept)
        self.ctx.wake(min(kept.values(), default=None))  # run() may sleep past them
