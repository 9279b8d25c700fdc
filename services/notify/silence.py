"""Silences: a cell mutes its own notifications matching some labels until a time.

A silence belongs to the cell that created it and mutes only that cell's
notifications (need-to-know: a cell cannot mute another). Silences live in
Redis with an expiry (the key disappears at ``ends_at``); :meth:`SilenceStore.active`
lists the live ones. Matchers use Alertmanager's syntax.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from services.notify.matchers import Matcher, all_match, parse_matchers
from shared.redis import Keys
from shared.resp import Command, Executor, PoolPipelines, text


@dataclass(frozen=True)
class Silence:
    id: str
    cell: str
    matchers: tuple[str, ...]
    starts_at: float
    ends_at: float
    comment: str = ""

    def parsed(self) -> list[Matcher]:
        return parse_matchers(self.matchers)

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.starts_at <= now < self.ends_at and all_match(self.parsed(), labels)

    def to_json(self) -> str:
        return json.dumps(self.__dict__ | {"matchers": list(self.matchers)})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Silence:
        d = json.loads(raw)
        return cls(
            d["id"],
            d["cell"],
            tuple(d["matchers"]),
            d["starts_at"],
            d["ends_at"],
            d.get("comment", ""),
        )


def silenced(silences: list[Silence], labels: Mapping[str, str], now: float) -> str | None:
    """The id of a silence muting ``labels`` at ``now``, or ``None``."""
    for s in silences:
        if s.mutes(labels, now):
            return s.id
    return None


def new_silence(
    cell: str, matchers: list[str], starts_at: float, ends_at: float, comment: str, now: float
) -> Silence:
    """A new silence of ``cell``; ``ValueError`` on bad matchers or an empty period."""
    parse_matchers(matchers)
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if ends_at <= max(starts_at, now):
        raise ValueError("ends_at must be in the future and after starts_at")
    return Silence(uuid.uuid4().hex, cell, tuple(matchers), starts_at, ends_at, comment[:500])


class SilenceStore:
    """Silences of each cell in Redis: one key per silence (with TTL) and an index set."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys
        self._pool = PoolPipelines(redis)

    def _key(self, cell: str, sid: str) -> str:
        return self._k.tagged(f"c:{cell}", "silence", sid)

    def _index(self, cell: str) -> str:
        return self._k.tagged(f"c:{cell}", "silences")

    async def create(
        self,
        cell: str,
        matchers: list[str],
        starts_at: float,
        ends_at: float,
        comment: str,
        now: float,
    ) -> Silence:
        """Store a silence; ``ValueError`` on bad matchers or an empty period."""
        s = new_silence(cell, matchers, starts_at, ends_at, comment, now)
        ttl = max(1, int(ends_at - now) + 1)
        async with self._r.pipeline(transaction=True) as p:
            p.set(self._key(cell, s.id), s.to_json(), ex=ttl)
            p.sadd(self._index(cell), s.id)
            await p.execute()
        return s

    async def expire(self, cell: str, sid: str) -> bool:
        async with self._r.pipeline(transaction=True) as p:
            p.delete(self._key(cell, sid))
            p.srem(self._index(cell), sid)
            deleted, _ = await p.execute()
        return bool(deleted)

    async def active_of(
        self, cells: Sequence[str], now: float, pipes: Executor
    ) -> dict[str, list[Silence]]:
        """Each cell's live silences, in two round trips on ``pipes`` (three
        when some silence expired since: its id leaves the index)."""
        indexes = await pipes.execute([("SMEMBERS", self._index(c)) for c in cells])
        ids = {c: sorted(text(x) for x in got) for c, got in zip(cells, indexes, strict=True)}
        held = [c for c in cells if ids[c]]
        out: dict[str, list[Silence]] = {c: [] for c in cells}
        if not held:
            return out
        raws = await pipes.execute([("MGET", *[self._key(c, i) for i in ids[c]]) for c in held])
        gone: list[Command] = []
        for c, got in zip(held, raws, strict=True):
            dead = []
            for sid, raw in zip(ids[c], got, strict=True):
                if raw is None:
                    dead.append(sid)
                elif (silence := Silence.from_json(raw)).ends_at > now:
                    out[c].append(silence)
            if dead:
                gone.append(("SREM", self._index(c), *dead))
        if gone:
            await pipes.execute(gone)
        return out

    async def active(self, cell: str, now: float) -> list[Silence]:
        """The cell's live silences (see :meth:`active_of`), on the client's pool."""
        return (await self.active_of([cell], now, self._pool))[cell]
