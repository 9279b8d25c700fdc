"""The notification log in Redis: one key per (group or alert, cell, channel, content).

A key is ``claimed:<first try>`` while a replica sends it (expiring after
``claim_s``: a crashed sender frees it), ``failed:<first try>`` between tries,
``sent:<time>`` once delivered (or given up). Claims go through
``nflog_claim.lua``; marks (and the holds they carry) through the
connection's :class:`~shared.resp.GroupCommit`, one round trip for every
delivery finishing meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.notify.store.base import Claim, Held, Timers
from services.notify.store.keys import NotifyKeys
from services.notify.store.scripts import Conn
from shared.resp import Batch, text


def hold_into(p: Batch, k: NotifyKeys, held: Held, timers: Timers) -> None:
    """Queue holds (a cell's alerts list) and ack timers (only where none is set)."""
    for cell_id, ids in held.items():
        if ids:
            p.zadd(k.cell(cell_id, "alerts"), ids)
    if timers:
        p.zadd(k.escalations_due, timers, nx=True)


class RedisNflog:
    conn: Conn
    k: NotifyKeys

    def nflog_key(self, tag: str, cell: str, channel: int, entry: str) -> str:
        return self.k.nflog(tag, cell, channel, entry)

    async def claim(self, claims: Sequence[Claim]) -> list[str]:
        def fill(p: Batch) -> None:
            for c in claims:
                self.conn.eval(p, "nflog_claim", [c.key], [c.now, c.claim_s, c.repeat_s])

        return [text(r) for r in await self.conn.pipe(fill)]

    async def mark(self, key: str, value: str, ex: int, held: Held, timers: Timers) -> None:
        def fill(p: Batch) -> None:
            p.set(key, value, ex=ex)
            hold_into(p, self.k, held, timers)

        await self.conn.marks.write(fill)

    async def hold(self, held: Held, timers: Timers) -> None:
        await self.conn.pipe(lambda p: hold_into(p, self.k, held, timers))
