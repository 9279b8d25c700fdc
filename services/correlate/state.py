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

Every op touches only keys that share one hash tag, and is atomic: a batch's
ops run in order inside a few Lua script calls (each atomic; one per hash slot
on a cluster). Adding an observation that is already there (same agency and
event id) changes nothing: replays are idempotent.

:class:`RedisState` sends a whole batch of ops in one pipelined round trip;
:class:`MemoryState` has the same semantics in pure Python (unit tests only).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import NoScriptError

_dumps = partial(json.dumps, separators=(",", ":"))


def key_slot_of(key: str) -> int:
    """The Redis Cluster slot of ``key`` (its hash tag's)."""
    return int(key_slot(key.encode()))


#: At most this many observations are read back per op (bounds Lua's unpack).
MAX_READ = 500

#: Ops per script call: a batch is sent as calls of at most this many ops, all in
#: one pipelined round trip, so one call never blocks Redis for long.
CALL_MAX_OPS = 256

# One call applies a list of ops, in order. KEYS[i] is op i's first key (window:
# the hash ``...:h``, its sorted set is ``...:z``; geo: the GEO set ``...:g``, with
# ``...:h`` and ``...:z``): every key an op touches shares the hash tag of the
# key declared for it. ARGV[1] is a JSON array of the ops' arguments:
#   window: [0, member, t, pointer, lookback, keep, ttl, neighbours]
#   geo:    [1, member, lon, lat, pointer, retain_until, t, radius, ttl]
# (coordinates and radius as strings: they reach GEOADD/GEOSEARCH unrounded).
# ARGV[3] is the watermark (event time, ms; 0: none yet): state is trimmed
# behind it, never behind a group's own newest observation, so an event read
# early from a partition ahead does not drop what a partition behind still needs.
# ARGV[4]: an op whose observation is already there (a replay) and older than
# this reads nothing back (everything it could complete was decided when it came).
# Returns, per op, the pointers it read back, or 1 for a window holding only the
# op's own observation (or a replayed old one).
_APPLY_LUA = """
local ops = cjson.decode(ARGV[1])
local maxread = tonumber(ARGV[2])
local wm = tonumber(ARGV[3])
local replayed = tonumber(ARGV[4])
local out = {}
for i, op in ipairs(ops) do
  local k1 = KEYS[i]
  local base = string.sub(k1, 1, -2)
  local member = op[2]
  if op[1] == 0 then
    local h, z = k1, base .. 'z'
    local t, look, keep, ttl, k = op[3], op[5], op[6], op[7], op[8]
    local new = redis.call('HSETNX', h, member, op[4]) == 1
    if new then
      redis.call('ZADD', z, t, member)
    end
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
    if (not new and t < replayed) or redis.call('ZCARD', z) == 1 then
      -- the op's own observation only (a new group, most of them): nothing to
      -- trim, nothing else to read; 1 tells the caller so
      out[i] = 1
    else
      local top = redis.call('ZREVRANGE', z, 0, 0, 'WITHSCORES')
      local cutoff = '(' .. tostring(math.min(tonumber(top[2]), wm) - keep)
      local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 1000)
      if #old > 0 then
        redis.call('ZREM', z, unpack(old))
        redis.call('HDEL', h, unpack(old))
      end
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
  else
    local g, h, z = k1, base .. 'h', base .. 'z'
    local lon, lat, retain, now, ttl = op[3], op[4], op[6], op[7], op[9]
    local new = redis.call('HSETNX', h, member, op[5]) == 1
    if new then
      redis.call('GEOADD', g, lon, lat, member)
      redis.call('ZADD', z, retain, member)
    end
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. tostring(math.min(now, wm)),
                           'LIMIT', 0, 1000)
    if #old > 0 then
      redis.call('ZREM', z, unpack(old))
      redis.call('ZREM', g, unpack(old))
      redis.call('HDEL', h, unpack(old))
    end
    redis.call('PEXPIRE', g, ttl)
    redis.call('PEXPIRE', h, ttl)
    redis.call('PEXPIRE', z, ttl)
    if not new and now < replayed then
      out[i] = {}
    else
      local near = redis.call('GEOSEARCH', g, 'FROMLONLAT', lon, lat, 'BYRADIUS', op[8], 'm',
                              'ASC', 'COUNT', maxread)
      local res = {}
      for _, m in ipairs(near) do
        if m ~= member then
          local p = redis.call('HGET', h, m)
          if p then table.insert(res, p) end
        end
      end
      out[i] = res
    end
  end
end
return out
"""

# Claims, in order: KEYS[2i-1] the "fired" key, KEYS[2i] the suppression key;
# ARGV[1] a JSON array of [t, suppress_ms, ttl, retry], ARGV[2] the claimer's
# token, which a fired key holds. Returns 1 (claimed) or 0 each. A claim retried
# (retry 1) after a call that failed is claimed again if its fired key holds the
# token: that call set it (on a cluster, other nodes' calls ran when one failed).
_CLAIM_LUA = """
local claims = cjson.decode(ARGV[1])
local token = ARGV[2]
local out = {}
for i, c in ipairs(claims) do
  local fired, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local t, s, ttl = c[1], c[2], c[3]
  out[i] = 1
  if redis.call('EXISTS', fired) == 1 then
    out[i] = 0
    if c[4] == 1 and redis.call('GET', fired) == token then out[i] = 1 end
  else
    if s > 0 then
      local last = redis.call('GET', skey)
      if last and math.abs(tonumber(last) - t) < s then
        out[i] = 0
      else
        redis.call('SET', skey, string.format('%d', t), 'PX', ttl)
      end
    end
    if out[i] == 1 then redis.call('SET', fired, token, 'PX', ttl) end
  end
end
return out
"""


@dataclass(slots=True)
class Obs:
    """One observation (a pointer plus what the kinds need), stored as JSON.

    Never modified once built (not frozen only because a frozen dataclass pays
    ``object.__setattr__`` per field, several µs per observation).
    """

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
    #: ``agency|event_id``: the observation's name in its window (set at creation).
    member: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.member = f"{self.agency}|{self.event_id}"

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
        """The observation a pointer stores. Parsed with orjson (what ``json.loads``
        gives, faster), except where the two differ on JSON that ``json.dumps``
        may write: a lone surrogate (orjson refuses it) or an integer beyond 64
        bits (orjson makes it a float) is parsed again by ``json.loads``.
        Raises ``ValueError`` on invalid JSON, ``KeyError`` on a missing field."""
        try:
            d: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            d = json.loads(raw)
        else:
            if float in {d.get("t").__class__, d.get("s").__class__, d.get("f").__class__}:
                d = json.loads(raw)
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Obs:
        """The observation of a parsed pointer; raises ``KeyError`` on a missing field."""
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


# Ops and claims are never modified once built (plain slots dataclasses: cheaper
# to build than frozen ones, and a batch builds thousands).


@dataclass(slots=True)
class WindowOp:
    hash_key: str
    zset_key: str
    obs: Obs
    lookback_ms: int
    keep_ms: int
    ttl_ms: int
    #: When > 0, read back only this many neighbours on each side (by event time).
    neighbours: int = 0
    #: ``obs`` as stored (JSON); empty: ``obs.to_json()``.
    pointer: str = ""
    #: The op's arguments for the apply script, as JSON (what ``op_json``
    #: would write); empty: encoded when sent.
    args: str = ""


@dataclass(slots=True)
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
    #: ``obs`` as stored (JSON); empty: ``obs.to_json()``.
    pointer: str = ""
    #: The op's arguments for the apply script, as JSON (what ``op_json``
    #: would write); empty: encoded when sent.
    args: str = ""


Op = WindowOp | GeoOp


@dataclass(slots=True)
class Claim:
    fired_key: str
    suppress_key: str
    t: int
    suppress_ms: int
    ttl_ms: int
    alert_id: str = ""


#: Called with (op index, observations read back) as each op's answer arrives.
Sink = Callable[[int, list[Obs]], None]


class State(Protocol):
    async def apply(
        self, ops: list[Op], sink: Sink | None = None, watermark: int = 0, replayed: int = 0
    ) -> list[list[Obs]]:
        """Apply ``ops`` in order; the observations each one read back (also handed
        to ``sink`` as they arrive, so the caller can work while the rest runs).
        State is trimmed behind ``watermark`` (event time, ms; 0: nothing trimmed);
        an op whose observation is already stored and older than ``replayed``
        reads back only itself (a replay of history decides nothing again)."""

    async def claim(self, claims: list[Claim]) -> list[bool]:
        """Mark alerts raised; False for each already raised or suppressed."""

    async def release(self, claims: list[Claim]) -> None:
        """Forget claims whose alerts could not be sent (they may be raised again)."""


def _args(op: Op) -> list[Any]:
    """An op's arguments for the apply script (see ``_APPLY_LUA``)."""
    o = op.obs
    pointer = op.pointer or o.to_json()
    if isinstance(op, WindowOp):
        return [0, o.member, o.t, pointer, op.lookback_ms, op.keep_ms, op.ttl_ms, op.neighbours]
    return [
        1,
        o.member,
        repr(op.lon),
        repr(op.lat),
        pointer,
        op.retain_until,
        o.t,
        repr(op.radius_m),
        op.ttl_ms,
    ]


def op_json(op: Op) -> str:
    """The op's arguments for the apply script, as JSON."""
    return op.args or _dumps(_args(op))


def _first_key(op: Op) -> str:
    return op.hash_key if isinstance(op, WindowOp) else op.geo_key


def plan_calls(ops: list[Op], slot: Callable[[str], int] | None = None) -> list[list[int]]:
    """The script calls for ``ops``, as lists of op indexes: at most
    :data:`CALL_MAX_OPS` each, ops kept in order. With ``slot`` (a cluster
    client's key → slot), a call holds the ops of one slot only."""
    if slot is None:
        groups = [list(range(len(ops)))]
    else:
        by_slot: dict[int, list[int]] = {}
        for i, op in enumerate(ops):
            by_slot.setdefault(slot(_first_key(op)), []).append(i)
        groups = list(by_slot.values())
    return [g[i : i + CALL_MAX_OPS] for g in groups for i in range(0, len(g), CALL_MAX_OPS)]


class RedisState:
    """The state in Redis: one pipelined round trip per :meth:`apply`/:meth:`claim`.

    A batch's ops go in a few script calls (:func:`plan_calls`; one per hash
    slot on a cluster), all sent in one pipeline. ``naive=True`` sends one round
    trip per op instead, through the same script (the benchmark's baseline).
    Redis errors propagate; every op is idempotent, so the caller may retry the
    whole batch.
    """

    #: Decoded pointers kept (a pointer read back often is decoded once).
    CACHE_MAX = 50_000

    def __init__(self, redis: aioredis.Redis, naive: bool = False) -> None:
        self.redis = redis
        self.naive = naive
        self.round_trips = 0
        self._apply = redis.register_script(_APPLY_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._slot: Callable[[str], int] | None = (
            key_slot_of if isinstance(redis, aioredis.RedisCluster) else None
        )
        self._obs: dict[bytes, Obs] = {}
        #: What this state's fired keys hold (see ``_CLAIM_LUA``).
        self._token = uuid.uuid4().hex
        #: Fired keys of claim() calls that raised: maybe set, their alerts unsent.
        self._unanswered: set[str] = set()

    async def _run(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run ``script`` once per (keys, args) in one round trip (reloading it once if
        the server lost it)."""
        self.round_trips += 1
        for attempt in (1, 2):
            try:
                if len(calls) == 1:
                    keys, args = calls[0]
                    return [await self.redis.evalsha(script.sha, len(keys), *keys, *args)]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    return list(await pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
                script.sha = await self.redis.script_load(script.script)
                self.round_trips += 1
        raise AssertionError("unreachable")

    def _decode(self, op: Op, raw: list[bytes | None]) -> list[Obs]:
        """The observations a script read back as pointers (its answer 1, a
        window holding only the op's own observation, is handled by the caller).
        A window read back as one observation holds the op's own: not decoded."""
        if isinstance(op, WindowOp) and len(raw) == 1:
            return [op.obs]
        cache = self._obs
        out = []
        for r in raw:
            if r is None:
                continue
            o = cache.get(r)
            if o is None:
                if len(cache) >= self.CACHE_MAX:
                    cache.clear()
                o = cache[r] = Obs.from_json(r)
            out.append(o)
        return out

    async def _stream(
        self,
        script: Any,
        calls: Callable[[], Iterable[tuple[list[str], list[Any]]]],
        each: Callable[[int, Any], None],
    ) -> None:
        """Run ``script`` once per (keys, args) that ``calls()`` yields, pipelined on one
        connection: each call is written as soon as it is encoded (Redis starts on
        it while the next is encoded), every call before the first answer is read,
        and ``each(k, answer)`` runs as answer ``k`` arrives, while Redis works on the
        next calls. One round trip (plus loading the script once if the server
        lost it)."""
        self.round_trips += 1
        pool = self.redis.connection_pool
        for attempt in (1, 2):
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            read = sent = 0
            try:
                for keys, args in calls():
                    # str/int arguments: packed by hiredis (shared.redis._Connection)
                    await conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                    sent += 1
                for k in range(sent):
                    answer = await conn.read_response()
                    read += 1
                    each(k, answer)
                return
            except NoScriptError:
                await conn.disconnect()  # answers left unread: the connection is unusable
                if attempt == 2 or read:
                    raise
                script.sha = await self.redis.script_load(script.script)
                self.round_trips += 1
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)

    async def _calls(
        self,
        script: Any,
        calls: Callable[[], Iterable[tuple[list[str], list[Any]]]],
        each: Callable[[int, Any], None],
    ) -> None:
        """:meth:`_stream`, or on a cluster client (which routes each call to its
        node) :meth:`_run`, with ``each(k, answer)`` per call."""
        if self._slot is None:
            await self._stream(script, calls, each)
        else:
            for k, res in enumerate(await self._run(script, list(calls()))):
                each(k, res)

    async def apply(
        self, ops: list[Op], sink: Sink | None = None, watermark: int = 0, replayed: int = 0
    ) -> list[list[Obs]]:
        if not ops:
            return []
        out: list[list[Obs]] = [[] for _ in ops]
        decode = self._decode
        # the naive baseline: one round trip per rule, group and event
        plan = [[i] for i in range(len(ops))] if self.naive else plan_calls(ops, self._slot)
        # a cluster's calls go by slot, out of op order: the sink waits for them all
        streamed = sink if self._slot is None else None

        def answered(k: int, res: list[Any]) -> None:
            for i, raw in zip(plan[k], res, strict=True):
                op = ops[i]
                # most windows hold only the op's own observation (the script says 1)
                out[i] = seen = [op.obs] if raw.__class__ is int else decode(op, raw)
                if streamed is not None:
                    streamed(i, seen)

        def call(idx: list[int]) -> tuple[list[str], list[Any]]:
            chunk = [ops[i] for i in idx]
            return [_first_key(op) for op in chunk], [
                f"[{','.join([op_json(op) for op in chunk])}]",
                MAX_READ,
                watermark,
                replayed,
            ]

        if self.naive:
            for k, idx in enumerate(plan):
                answered(k, (await self._run(self._apply, [call(idx)]))[0])
        else:
            await self._calls(self._apply, lambda: map(call, plan), answered)
        if sink is not None and streamed is None:
            for i, seen in enumerate(out):
                sink(i, seen)
        return out

    async def claim(self, claims: list[Claim]) -> list[bool]:
        if not claims:
            return []
        keys = [k for c in claims for k in (c.fired_key, c.suppress_key)]
        if self._slot is None:
            plan = [list(range(len(claims)))]
        else:
            by_slot: dict[int, list[int]] = {}
            for i, c in enumerate(claims):
                by_slot.setdefault(self._slot(c.fired_key), []).append(i)
            plan = list(by_slot.values())
        retry = self._unanswered
        calls = [
            (
                [k for i in idx for k in keys[2 * i : 2 * i + 2]],
                [
                    _dumps(
                        [
                            [c.t, c.suppress_ms, c.ttl_ms, int(c.fired_key in retry)]
                            for c in (claims[i] for i in idx)
                        ]
                    ),
                    self._token,
                ],
            )
            for idx in plan
        ]
        fired = [False] * len(claims)

        def answered(k: int, res: list[int]) -> None:
            for i, r in zip(plan[k], res, strict=True):
                fired[i] = bool(r)

        try:
            await self._calls(self._claim, lambda: calls, answered)
        except Exception:
            # some calls may have run (another node's failed): the caller retries
            # the batch, and these claims, if set, are still its own
            if len(retry) > self.CACHE_MAX:
                retry.clear()
            retry.update(c.fired_key for c in claims)
            raise
        retry.difference_update(c.fired_key for c in claims)
        return fired

    async def release(self, claims: list[Claim]) -> None:
        for c in claims:  # one key at a time: the keys may be on different slots
            await self.redis.delete(c.fired_key)


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

    async def apply(
        self, ops: list[Op], sink: Sink | None = None, watermark: int = 0, replayed: int = 0
    ) -> list[list[Obs]]:
        if ops:
            self.round_trips += 1
        out: list[list[Obs]] = []
        for op in ops:
            if isinstance(op, WindowOp):
                w = self.windows.setdefault(op.hash_key, {})
                if op.obs.member in w and op.obs.t < replayed:
                    out.append([op.obs])
                    continue
                w.setdefault(op.obs.member, op.obs)
                newest = min(max(o.t for o in w.values()), watermark)
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
                if op.obs.member in g and op.obs.t < replayed:
                    out.append([])
                    continue
                g.setdefault(op.obs.member, (op.obs, op.lat, op.lon, op.retain_until))
                for m in [m for m, v in g.items() if v[3] < min(op.obs.t, watermark)]:
                    del g[m]
                found = [
                    (distance_m(op.lat, op.lon, la, lo), o)
                    for o, la, lo, _ in g.values()
                    if o.member != op.obs.member
                ]
                out.append([o for d, o in sorted(found, key=lambda x: x[0]) if d <= op.radius_m])
        if sink is not None:
            for i, seen in enumerate(out):
                sink(i, seen)
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
