"""Incidents, the firing set and the cells' alert lists in Redis.

An alert's incident (``{a:<alert>}:incident``: seq, state, acked_by...) opens
when it fires and closes when it resolves (``incident.lua``); its last
document is kept beside it. A cell's alert list (``{c:<cell>}:alerts``) holds
what was delivered to it, by routing or escalation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.notify.silence import Silence, SilenceStore
from services.notify.store.keys import NotifyKeys
from services.notify.store.scripts import Conn
from shared.models import Alert
from shared.resp import Batch, pairs, text


class RedisIncidents:
    conn: Conn
    k: NotifyKeys
    silences: SilenceStore

    async def record_incidents(
        self, alerts: Sequence[Alert], docs: Sequence[str], now: float, ttl: int
    ) -> list[int]:
        last = {a.alert_id: a for a in alerts}  # the last status wins
        firing = {
            aid: json.dumps(a.labels, sort_keys=True)
            for aid, a in last.items()
            if a.status == "firing"
        }
        resolved = [aid for aid, a in last.items() if a.status != "firing"]

        def fill(p: Batch) -> None:
            for alert, doc in zip(alerts, docs, strict=True):
                keys = [
                    self.k.alert(alert.alert_id, "incident"),
                    self.k.alert(alert.alert_id, "alert"),
                ]
                self.conn.eval(p, "incident", keys, [alert.status, doc, now, ttl])
            if firing:
                p.hset(self.k.firing, firing)
            if resolved:
                p.hdel(self.k.firing, *resolved)

        return [int(x) for x in (await self.conn.pipe(fill))[: len(alerts)]]

    async def firing_labels(self) -> dict[str, dict[str, str]]:
        raw = await self.conn.redis.hgetall(self.k.firing)
        return {text(k): json.loads(v) for k, v in raw.items()}

    async def incident(self, alert_id: str) -> dict[str, str]:
        return pairs(await self.conn.redis.hgetall(self.k.alert(alert_id, "incident")))

    async def update_incident(self, alert_id: str, fields: dict[str, str]) -> None:
        mapping: dict[Any, Any] = dict(fields)
        await self.conn.redis.hset(self.k.alert(alert_id, "incident"), mapping=mapping)

    async def unfire(self, alert_id: str) -> None:
        await self.conn.redis.hdel(self.k.firing, alert_id)

    async def alert_doc(self, alert_id: str) -> str | None:
        raw = await self.conn.redis.get(self.k.alert(alert_id, "alert"))
        return None if raw is None else text(raw)

    async def holds(self, cell: str, alert_id: str) -> bool:
        return await self.conn.redis.zscore(self.k.cell(cell, "alerts"), alert_id) is not None

    async def held(self, cell: str, limit: int) -> list[tuple[str, str | None, dict[str, str]]]:
        r = self.conn.redis
        ids = [text(i) for i in await r.zrevrange(self.k.cell(cell, "alerts"), 0, limit - 1)]

        def fill(p: Batch) -> None:
            for alert_id in ids:
                p.append(("GET", self.k.alert(alert_id, "alert")))
                p.hgetall(self.k.alert(alert_id, "incident"))

        raw = await self.conn.pipe(fill)
        return [
            (aid, None if raw[2 * i] is None else text(raw[2 * i]), pairs(raw[2 * i + 1]))
            for i, aid in enumerate(ids)
        ]

    async def count_silences(self, cells: Sequence[str]) -> int:
        counts = await self.conn.pipe(
            lambda p: p.extend(("SCARD", self.k.cell(c, "silences")) for c in cells)
        )
        return int(sum(counts))

    async def silences_of(self, cells: Sequence[str], now: float) -> dict[str, list[Silence]]:
        return await self.silences.active_of(cells, now, self.conn.pipes)
