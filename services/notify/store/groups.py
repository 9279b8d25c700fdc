"""Alert groups in Redis: a hash of members and a meta hash (route, labels, version)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.notify.store.base import Added, GroupAdd
from services.notify.store.keys import NotifyKeys
from services.notify.store.scripts import Conn
from shared.resp import Batch, pairs, text, values


class RedisGroups:
    conn: Conn
    k: NotifyKeys

    async def add_to_groups(self, adds: Sequence[GroupAdd], ttl: int) -> list[Added]:
        """One ``group_add.lua`` call per group, all in one round trip."""

        def fill(p: Batch) -> None:
            for a in adds:
                keys = [self.k.group(a.gid, "alerts"), self.k.group(a.gid, "meta")]
                args: list[Any] = [a.route, a.labels, ttl, len(a.members) // 2, *a.members]
                if a.claims:
                    c = a.claims[0]
                    keys += [x.key for x in a.claims]
                    args += [c.now, c.claim_s, c.repeat_s]
                self.conn.eval(p, "group_add", keys, args)

        replies = await self.conn.pipe(fill)
        return [Added(bool(int(r[0])), text(r[1]), [text(x) for x in r[2:]]) for r in replies]

    async def read_groups(self, gids: Sequence[str]) -> list[tuple[dict[str, str], list[Any]]]:
        def fill(p: Batch) -> None:
            for gid in gids:
                p.hgetall(self.k.group(gid, "meta"))
                p.hgetall(self.k.group(gid, "alerts"))

        raw = await self.conn.pipe(fill)
        return [(pairs(raw[2 * i]), values(raw[2 * i + 1])) for i in range(len(gids))]

    async def delete_groups(self, drops: Sequence[tuple[str, str | None]]) -> list[bool]:
        def fill(p: Batch) -> None:
            for gid, ver in drops:
                meta, alerts = self.k.group(gid, "meta"), self.k.group(gid, "alerts")
                if ver is None:
                    p.delete(meta, alerts)
                else:
                    self.conn.eval(p, "group_delete", [alerts, meta], [ver])

        return [
            ver is None or bool(int(ok))
            for (_, ver), ok in zip(drops, await self.conn.pipe(fill), strict=True)
        ]

    async def remove_from_groups(self, gids: Sequence[str], alert_id: str) -> None:
        def fill(p: Batch) -> None:
            for gid in gids:
                keys = [self.k.group(gid, "alerts"), self.k.group(gid, "meta")]
                self.conn.eval(p, "group_remove", keys, [alert_id])

        await self.conn.pipe(fill)
