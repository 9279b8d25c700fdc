"""Deduplication: claim each job's notification in the notification log.

One entry per (group, cell, channel, content state). A claim answers the
first try's time (claimed: send it), ``sent:<t>`` (sent within its
``repeat_interval``: not again) or ``claimed:<t>`` (another replica, or a
crashed one until the claim expires, is sending it).
"""

from __future__ import annotations

from services.notify.stages.base import Context, Flush, Job
from services.notify.store.base import Claim


def claims_of(ctx: Context, flush: Flush, job: Job) -> list[Claim]:
    """The notification log claims of ``job`` (one per channel), added to ``flush.claims``."""
    out = []
    for ci, ch in enumerate(job.cell.channels):
        key = ctx.store.nflog_key(f"g:{job.gid}", job.cell.id, ci, job.state)
        flush.claims.append((job, ch, key))
        out.append(Claim(key, flush.now, ctx.config.claim_ttl, job.route.repeat_interval))
    return out


class Dedup:
    """Claim every job's notifications (one round trip): :attr:`Flush.answers`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, flush: Flush) -> None:
        flush.claims.clear()
        claims = [c for job in flush.jobs for c in claims_of(self.ctx, flush, job)]
        flush.answers = await self.ctx.store.claim(claims)
