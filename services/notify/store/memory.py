"""Notify's store in memory: the :class:`~services.notify.store.base.NotifyStore`
contract without Redis, for fast tests of the handler's decisions.

Same semantics as the Redis store (the Lua scripts are mirrored here; one
contract suite, ``tests/integration/test_notify_store.py``, runs on both),
for one process: nothing survives it. Expiries (claims, marks, silences)
follow ``clock``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from services.notify.silence import Silence, new_silence
from services.notify.store.base import Added, Claim, Due, GroupAdd, Held, Timers
from shared.models import Alert


class MemorySilences:
    """Silences by cell, dropped once ended."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.by_cell: dict[str, dict[str, Silence]] = {}

    async def create(
        self,
        cell: str,
        matchers: list[str],
        starts_at: float,
        ends_at: float,
        comment: str,
        now: float,
    ) -> Silence:
        s = new_silence(cell, matchers, starts_at, ends_at, comment, now)
        self.by_cell.setdefault(cell, {})[s.id] = s
        return s

    async def expire(self, cell: str, sid: str) -> bool:
        return self.by_cell.get(cell, {}).pop(sid, None) is not None

    async def active(self, cell: str, now: float) -> list[Silence]:
        return [s for s in self.by_cell.get(cell, {}).values() if s.ends_at > now]


class MemoryStore:
    """:class:`~services.notify.store.base.NotifyStore` in dicts, on ``clock``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.silences = MemorySilences(clock)
        self.incidents: dict[str, dict[str, str]] = {}
        self.docs: dict[str, str] = {}
        self.firing: dict[str, str] = {}
        self.groups: dict[str, dict[str, str]] = {}  # gid -> alert id -> member JSON
        self.metas: dict[str, dict[str, str]] = {}
        self.groups_due: dict[str, float] = {}
        self.escalations_due: dict[str, float] = {}
        self.nflog: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self.cell_alerts: dict[str, dict[str, float]] = {}

    # incidents ------------------------------------------------------------
    async def record_incidents(
        self, alerts: Sequence[Alert], docs: Sequence[str], now: float, ttl: int
    ) -> list[int]:
        seqs = [self._incident(a, doc, now) for a, doc in zip(alerts, docs, strict=True)]
        for a in {a.alert_id: a for a in alerts}.values():  # the last status wins
            if a.status == "firing":
                self.firing[a.alert_id] = json.dumps(a.labels, sort_keys=True)
            else:
                self.firing.pop(a.alert_id, None)
        return seqs

    def _incident(self, a: Alert, doc: str, now: float) -> int:
        """``incident.lua``."""
        inc = self.incidents.setdefault(a.alert_id, {})
        seq = int(inc.get("seq", "0"))
        if a.status == "firing":
            if inc.get("state") != "open":
                seq += 1
                inc.update(seq=str(seq), state="open", opened_at=str(now))
                for f in ("acked_by", "acked_at", "resolved_by"):
                    inc.pop(f, None)
        else:
            seq = seq or 1
            if inc.get("state") != "resolved":
                inc.update(seq=str(seq), state="resolved", resolved_at=str(now))
        self.docs[a.alert_id] = doc
        return seq

    async def firing_labels(self) -> dict[str, dict[str, str]]:
        return {k: json.loads(v) for k, v in self.firing.items()}

    async def incident(self, alert_id: str) -> dict[str, str]:
        return dict(self.incidents.get(alert_id, {}))

    async def update_incident(self, alert_id: str, fields: dict[str, str]) -> None:
        self.incidents.setdefault(alert_id, {}).update(fields)

    async def unfire(self, alert_id: str) -> None:
        self.firing.pop(alert_id, None)

    async def alert_doc(self, alert_id: str) -> str | None:
        return self.docs.get(alert_id)

    async def holds(self, cell: str, alert_id: str) -> bool:
        return alert_id in self.cell_alerts.get(cell, {})

    async def held(self, cell: str, limit: int) -> list[tuple[str, str | None, dict[str, str]]]:
        mine = self.cell_alerts.get(cell, {})
        ids = sorted(mine, key=lambda a: (mine[a], a), reverse=True)[:limit]
        return [(a, self.docs.get(a), dict(self.incidents.get(a, {}))) for a in ids]

    async def hold(self, held: Held, timers: Timers) -> None:
        for cell, ids in held.items():
            self.cell_alerts.setdefault(cell, {}).update(ids)
        for member, at in timers.items():
            self.escalations_due.setdefault(member, at)

    async def count_silences(self, cells: Sequence[str]) -> int:
        return sum(len(self.silences.by_cell.get(c, {})) for c in cells)

    async def silences_of(self, cells: Sequence[str], now: float) -> dict[str, list[Silence]]:
        return {c: await self.silences.active(c, now) for c in cells}

    # groups ---------------------------------------------------------------
    async def add_to_groups(self, adds: Sequence[GroupAdd], ttl: int) -> list[Added]:
        return [self._add(a) for a in adds]

    def _add(self, a: GroupAdd) -> Added:
        """``group_add.lua``."""
        new = a.gid not in self.metas
        alerts = self.groups.setdefault(a.gid, {})
        meta = self.metas.setdefault(a.gid, {})
        for aid, member in zip(a.members[::2], a.members[1::2], strict=True):
            if alerts.get(aid) != member:
                alerts[aid] = member
                meta["ver"] = str(int(meta.get("ver", "0")) + 1)
        meta.setdefault("route", a.route)
        meta.setdefault("labels", a.labels)
        claims = [self._claim(c) for c in a.claims] if new else []
        return Added(new, meta.get("ver", "0"), claims)

    async def read_groups(self, gids: Sequence[str]) -> list[tuple[dict[str, str], list[Any]]]:
        return [(dict(self.metas.get(g, {})), list(self.groups.get(g, {}).values())) for g in gids]

    async def delete_groups(self, drops: Sequence[tuple[str, str | None]]) -> list[bool]:
        out = []
        for gid, ver in drops:
            if ver is not None and self.metas.get(gid, {}).get("ver", "0") != ver:
                out.append(False)
                continue
            self.metas.pop(gid, None)
            self.groups.pop(gid, None)
            out.append(True)
        return out

    async def remove_from_groups(self, gids: Sequence[str], alert_id: str) -> None:
        for gid in gids:
            if self.groups.get(gid, {}).pop(alert_id, None) is not None:
                meta = self.metas.setdefault(gid, {})
                meta["ver"] = str(int(meta.get("ver", "0")) + 1)

    # schedules ------------------------------------------------------------
    async def schedule(self, fresh: Timers, known: Timers) -> None:
        self.groups_due.update(fresh)
        for gid, at in known.items():
            self.groups_due.setdefault(gid, at)

    async def lease_due(self, now: float, until: float, groups: int, escalations: int) -> Due:
        asked = [(self.groups_due, groups), (self.escalations_due, escalations)]
        leased = [_lease(sched, now, until, limit) if limit else [] for sched, limit in asked]
        left = [min(s.values()) for s, limit in asked if limit and s]
        return Due(leased[0], leased[1], min(left, default=None))

    async def unschedule(self, gids: Sequence[str], lease: float, kept: Timers) -> None:
        for gid in gids:
            if self.groups_due.get(gid) == float(lease):
                del self.groups_due[gid]
        self.groups_due.update(kept)

    async def escalation_done(self, member: str) -> None:
        self.escalations_due.pop(member, None)

    async def escalation_retry(self, member: str, at: float) -> None:
        self.escalations_due[member] = at

    # notification log -------------------------------------------------------
    def nflog_key(self, tag: str, cell: str, channel: int, entry: str) -> str:
        return f"{{{tag}}}:nflog:{cell}:{channel}:{entry}"

    async def claim(self, claims: Sequence[Claim]) -> list[str]:
        return [self._claim(c) for c in claims]

    def _claim(self, c: Claim) -> str:
        """``claim_fn.lua``."""
        v = self._get(c.key)
        if v is not None and v.startswith("sent:") and c.now - float(v[5:]) >= c.repeat_s:
            v = None
        if v is None:
            self._set(c.key, f"claimed:{c.now}", c.claim_s)
            return str(c.now)
        if v.startswith("failed:"):
            self._set(c.key, f"claimed:{v[7:]}", c.claim_s)
            return v[7:]
        return v

    def _get(self, key: str) -> str | None:
        hit = self.nflog.get(key)
        if hit is None or hit[1] <= self.clock():
            return None
        return hit[0]

    def _set(self, key: str, value: str, ex: int) -> None:
        self.nflog[key] = (value, self.clock() + ex)

    async def mark(self, key: str, value: str, ex: int, held: Held, timers: Timers) -> None:
        self._set(key, value, ex)
        await self.hold(held, timers)

    async def close(self) -> None:
        """Nothing to close."""


def _lease(schedule: dict[str, float], now: float, until: float, limit: int) -> list[str]:
    """``claim_due.lua``: due members (by time, then name), leased until ``until``."""
    due = sorted((at, m) for m, at in schedule.items() if at <= now)[:limit]
    for _, m in due:
        schedule[m] = until
    return [m for _, m in due]
