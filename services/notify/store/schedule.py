"""The two schedules in Redis: due groups and due escalations (sorted sets of times).

A due member is *leased* (its time moved to the lease's end) by the replica
that takes it, atomically (``claim_due.lua``): a crash frees it when the lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.notify.store.base import Due, Timers
from services.notify.store.keys import NotifyKeys
from services.notify.store.scripts import Conn
from shared.resp import Batch, text


class RedisSchedule:
    conn: Conn
    k: NotifyKeys

    async def schedule(self, fresh: Timers, known: Timers) -> None:
        def fill(p: Batch) -> None:
            if fresh:
                p.zadd(self.k.groups_due, fresh)
            if known:
                p.zadd(self.k.groups_due, known, nx=True)

        await self.conn.pipe(fill)

    async def lease_due(self, now: float, until: float, groups: int, escalations: int) -> Due:
        """Both schedules in one round trip (``claim_due.lua`` on each)."""
        asked = [(self.k.groups_due, groups), (self.k.escalations_due, escalations)]
        asked = [(key, limit) for key, limit in asked if limit]

        def fill(p: Batch) -> None:
            for key, limit in asked:
                self.conn.eval(p, "claim_due", [key], [now, until, limit])

        replies = dict(zip([key for key, _ in asked], await self.conn.pipe(fill), strict=True))
        firsts = [float(r[1]) for r in replies.values() if len(r) > 1]

        def members(key: str) -> list[str]:
            return [text(m) for m in replies[key][0]] if key in replies else []

        return Due(
            members(self.k.groups_due), members(self.k.escalations_due), min(firsts, default=None)
        )

    async def unschedule(self, gids: Sequence[str], lease: float, kept: Timers) -> None:
        def fill(p: Batch) -> None:
            for gid in gids:
                self.conn.eval(p, "unschedule", [self.k.groups_due], [gid, repr(float(lease))])
            if kept:
                p.zadd(self.k.groups_due, kept)

        await self.conn.pipe(fill)

    async def escalation_done(self, member: str) -> None:
        await self.conn.redis.zrem(self.k.escalations_due, member)

    async def escalation_retry(self, member: str, at: float) -> None:
        await self.conn.redis.zadd(self.k.escalations_due, {member: at})
