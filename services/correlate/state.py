"""Correlation state: atomic, idempotent, expiring.

Two operations cover every kind:

* :class:`WindowOp` (threshold, distinct, sequence): add one observation to a
  group's event-time window and read back the observations within ``±lookback``
  of it. Keys: a hash ``member → pointer`` and a sorted set ``member → event
  time``, trimmed to ``keep_ms`` behind the newest observation.
* :class:`GeoOp` (proximity, overlap): add one located observation to a rule's
  Redis GEO set and read back the observations within a radius.

A :class:`Claim` marks an alert as raised (and the group as suppressed), so a
replay or a second worker never raises it twice.

Each op is one Lua script over keys that share one hash tag, so it is atomic
and runs unchanged on Redis Cluster. Adding an observation that is already
there (same agency and event id) changes nothing: replays are idempotent.

:class:`RedisState` sends a whole batch of ops in one pipelined round trip;
:class:`MemoryState` has the same semantics in pure Python (unit tests only).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

#: At most this many observations are read back per op (bounds Lua's unpack).
MAX_READ = 500

_WINDOW_LUA = """
local member, t, maxread = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 3 + (i - 1) * 5
  local look, keep, ttl, k = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4],
                             tonumber(ARGV[b + 5])
  if redis.call('HSETNX', h, member, ARGV[b + 1]) == 1 then
    redis.call('ZADD', z, t, member)
  end
  local top = redis.call('ZREVRANGE', z, 0, 0, 'WITHSCORES')
  local cutoff = '(' .. tostring(tonumber(top[2]) - keep)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('ZREM', z, unpack(old))
    redis.call('HDEL', h, unpack(old))
  end
  redis.call('PEXPIRE', h, ttl)
  redis.call('PEXPIRE', z, ttl)
  local ms
  if k > 0 then
    -- only the k neighbours on each side (by event time): a threshold run needs no more
    local r = redis.call('ZRANK', z, member)
    ms = r and redis.call('ZRANGE', z, math.max(0, r - k), r + k) or {}
  else
    ms = redis.call('ZRANGEBYSCORE', z, t - look, t + look, 'LIMIT', 0, maxread)
  end
  if #ms == 0 then out[i] = {} else out[i] = redis.call('HMGET', h, unpack(ms)) end
end
return out
"""

_GEO_LUA = """
local g, h, z = KEYS[1], KEYS[2], KEYS[3]
local lon, lat, retain, now = ARGV[2], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('HSETNX', h, ARGV[1], ARGV[4]) == 1 then
  redis.call('GEOADD', g, lon, lat, ARGV[1])
  redis.call('ZADD', z, retain, ARGV[1])
end
local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. tostring(now), 'LIMIT', 0, 1000)
if #old > 0 then
  redis.call('ZREM', z, unpack(old))
  redis.call('ZREM', g, unpack(old))
  redis.call('HDEL', h, unpack(old))
end
redis.call('PEXPIRE', g, ARGV[8])
redis.call('PEXPIRE', h, ARGV[8])
redis.call('PEXPIRE', z, ARGV[8])
local near = redis.call('GEOSEARCH', g, 'FROMLONLAT', lon, lat, 'BYRADIUS', ARGV[7], 'm',
                        'ASC', 'COUNT', tonumber(ARGV[9]))
local out = {}
for _, m in ipairs(near) do
  if m ~= ARGV[1] then
    local p = redis.call('HGET', h, m)
    if p then table.insert(out, p) end
  end
end
return out
"""

_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local s = tonumber(ARGV[2])
if s > 0 then
  local last = redis.call('GET', KEYS[2])
  if last and math.abs(tonumber(last) - tonumber(ARGV[1])) < s then return 0 end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Obs:
    """One observation (a pointer plus what the kinds need), stored as JSON."""

    agency: str
    event_id: str
    t: int
    type: str
    case_ref: str | None = None
    contact: str | None = None
    handling: str = "restricted"
    department: str | None = None
    value: str | None = None
    role: str | None = None
    start: int | None = None
    end: int | None = None

    @property
    def member(self) -> str:
        return f"{self.agency}|{self.event_id}"

    def to_json(self) -> str:
        d = {
            "a": self.agency,
            "e": self.event_id,
            "t": self.t,
            "y": self.type,
            "c": self.case_ref,
            "p": self.contact,
            "h": self.handling,
            "d": self.department,
            "v": self.value,
            "r": self.role,
            "s": self.start,
            "f": self.end,
        }
        return json.dumps({k: v for k, v in d.items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Obs:
        d: dict[str, Any] = json.loads(raw)
        return cls(
            d["a"],
            d["e"],
            int(d["t"]),
            d["y"],
            d.get("c"),
            d.get("p"),
            d.get("h", "restricted"),
            d.get("d"),
            d.get("v"),
            d.get("r"),
            d.get("s"),
            d.get("f"),
        )


@dataclass(frozen=True, slots=True)
class WindowOp:
    hash_key: str
    zset_key: str
    obs: Obs
    lookback_ms: int
    keep_ms: int
    ttl_ms: int
    #: When > 0, read back only this many neighbours on each side (by event time).
    neighbours: int = 0


@dataclass(frozen=True, slots=True)
class GeoOp:
    geo_key: str
    hash_key: str
    zset_key: str
    obs: Obs
    lon: float
    lat: float
    retain_until: int
    radius_m: float
    ttl_ms: int


Op = WindowOp | GeoOp


@dataclass(frozen=True, slots=True)
class Claim:
    fired_key: str
    suppress_key: str
    t: int
    suppress_ms: int
    ttl_ms: int


class State(Protocol):
    async def apply(self, ops: list[Op]) -> list[list[Obs]]:
        """Apply ``ops`` in order; the observations each one read back."""

    async def claim(self, claims: list[Claim]) -> list[bool]:
        """Mark alerts raised; False for each already raised or suppressed."""

    async def release(self, claims: list[Claim]) -> None:
        """Forget claims whose alerts could not be sent (they may be raised again)."""


def _tag_of(key: str) -> str:
    return key[key.index("{") : key.index("}") + 1] if "{" in key else key


def _calls(ops: list[Op]) -> list[list[Op]]:
    """Ops grouped into script calls: consecutive window ops of the same event whose
    keys share a hash tag go together (one Lua call, one slot on a cluster)."""
    calls: list[list[Op]] = []
    for op in ops:
        prev = calls[-1][0] if calls else None
        if (
            isinstance(op, WindowOp)
            and isinstance(prev, WindowOp)
            and prev.obs.member == op.obs.member
            and _tag_of(prev.hash_key) == _tag_of(op.hash_key)
        ):
            calls[-1].append(op)
        else:
            calls.append([op])
    return calls


def _decode(op: Op, raw: list[bytes]) -> list[Obs]:
    """The observations a script read back. A window that holds only one
    observation holds the op's own (the same event): skip decoding it."""
    if isinstance(op, WindowOp) and len(raw) == 1:
        return [op.obs]
    return [Obs.from_json(r) for r in raw]


class RedisState:
    """The state in Redis: one pipelined round trip per :meth:`apply`/:meth:`claim`.

    ``naive=True`` sends one round trip per op instead (the benchmark's
    baseline). Redis errors propagate; every op is idempotent, so the caller
    may retry the whole batch.
    """

    def __init__(self, redis: aioredis.Redis, naive: bool = False) -> None:
        self.redis = redis
        self.naive = naive
        self.round_trips = 0
        self._window = redis.register_script(_WINDOW_LUA)
        self._geo = redis.register_script(_GEO_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)

    async def _queue(self, ops: list[Op], client: Any) -> Any:
        """One script call: a geo op, or window ops of one event under one hash tag."""
        op = ops[0]
        if isinstance(op, WindowOp):
            keys: list[str] = []
            args: list[Any] = [op.obs.member, op.obs.t, MAX_READ]
            for w in ops:
                assert isinstance(w, WindowOp)
                keys += [w.hash_key, w.zset_key]
                args += [w.obs.to_json(), w.lookback_ms, w.keep_ms, w.ttl_ms, w.neighbours]
            return await self._window(keys=keys, args=args, client=client)
        assert isinstance(op, GeoOp)
        return await self._geo(
            keys=[op.geo_key, op.hash_key, op.zset_key],
            args=[
                op.obs.member,
                op.lon,
                op.lat,
                op.obs.to_json(),
                op.retain_until,
                op.obs.t,
                op.radius_m,
                op.ttl_ms,
                MAX_READ,
            ],
            client=client,
        )

    async def apply(self, ops: list[Op]) -> list[list[Obs]]:
        if not ops:
            return []
        calls = [[op] for op in ops] if self.naive else _calls(ops)
        results: list[Any] = []
        if self.naive:  # the benchmark's baseline: one round trip per rule, group and event
            for call in calls:
                self.round_trips += 1
                results.append(await self._queue(call, self.redis))
        else:
            self.round_trips += 1
            async with self.redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    await self._queue(call, pipe)
                results = await pipe.execute()
        flat: list[list[bytes]] = []
        for call, res in zip(calls, results, strict=True):
            flat += res if isinstance(call[0], WindowOp) else [res]
        return [_decode(op, res) for op, res in zip(ops, flat, strict=True)]

    async def claim(self, claims: list[Claim]) -> list[bool]:
        if not claims:
            return []
        self.round_trips += 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in claims:
                await self._claim(
                    keys=[c.fired_key, c.suppress_key],
                    args=[c.t, c.suppress_ms, c.ttl_ms],
                    client=pipe,
                )
            results = await pipe.execute()
        return [bool(r) for r in results]

    async def release(self, claims: list[Claim]) -> None:
        if claims:
            await self.redis.delete(*[c.fired_key for c in claims])


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (the haversine Redis GEO uses), in metres."""
    r = 6372797.560856  # Redis' earth radius
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


class MemoryState:
    """The same semantics as :class:`RedisState`, in memory (unit tests only;
    no expiry by wall clock, trimming by event time as in the scripts)."""

    def __init__(self) -> None:
        self.windows: dict[str, dict[str, Obs]] = {}
        self.geo: dict[str, dict[str, tuple[Obs, float, float, int]]] = {}
        self.fired: set[str] = set()
        self.suppressed: dict[str, int] = {}
        self.round_trips = 0

    async def apply(self, ops: list[Op]) -> list[list[Obs]]:
        if ops:
            self.round_trips += 1
        out: list[list[Obs]] = []
        for op in ops:
            if isinstance(op, WindowOp):
                w = self.windows.setdefault(op.hash_key, {})
                w.setdefault(op.obs.member, op.obs)
                newest = max(o.t for o in w.values())
                for m in [m for m, o in w.items() if o.t < newest - op.keep_ms]:
                    del w[m]
                if op.neighbours:
                    ranked = sorted(w.values(), key=lambda o: (o.t, o.member))
                    r = next((i for i, o in enumerate(ranked) if o.member == op.obs.member), None)
                    k = op.neighbours
                    out.append([] if r is None else ranked[max(0, r - k) : r + k + 1])
                    continue
                near = sorted(
                    (o for o in w.values() if abs(o.t - op.obs.t) <= op.lookback_ms),
                    key=lambda o: (o.t, o.member),
                )
                out.append(near[:500])
            else:
                g = self.geo.setdefault(op.geo_key, {})
                g.setdefault(op.obs.member, (op.obs, op.lat, op.lon, op.retain_until))
                for m in [m for m, v in g.items() if v[3] < op.obs.t]:
                    del g[m]
                found = [
                    (distance_m(op.lat, op.lon, la, lo), o)
                    for o, la, lo, _ in g.values()
                    if o.member != op.obs.member
                ]
                out.append([o for d, o in sorted(found, key=lambda x: x[0]) if d <= op.radius_m])
        return out

    async def claim(self, claims: list[Claim]) -> list[bool]:
        if claims:
            self.round_trips += 1
        res = []
        for c in claims:
            if c.fired_key in self.fired:
                res.append(False)
                continue
            if c.suppress_ms > 0:
                last = self.suppressed.get(c.suppress_key)
                if last is not None and abs(last - c.t) < c.suppress_ms:
                    res.append(False)
                    continue
                self.suppressed[c.suppress_key] = c.t
            self.fired.add(c.fired_key)
            res.append(True)
        return res

    async def release(self, claims: list[Claim]) -> None:
        for c in claims:
            self.fired.discard(c.fired_key)
