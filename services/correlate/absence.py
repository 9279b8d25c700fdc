"""Absence state: deadline timers in Redis, and the watermark the workers share.

An ``absence`` rule (:class:`~.rules.model.AbsenceRule`) keeps, per group:

* ``…:<gid>:p`` — a hash of the group's pending timers, ``timer id → "A_t,deadline"``;
* ``…:<gid>:b`` — a sorted set of the group's ``missing`` events by event time
  (so an ``expect`` event that arrives after them is not armed: order does not
  matter), trimmed behind the watermark.

and per bucket (a rule and group hash to one of :data:`BUCKETS`):

* ``…:at`` — the armed timers, a sorted set by **due event time** (deadline +
  the rule's lateness); ``…:ad`` — their alert payloads;
* ``…:al`` — the timers taken by a worker, by **lease expiry** (wall clock): a
  worker that dies before sending its alerts leaves them to the next one;
* ``…:f:<alert id>`` — fired: an ``expect`` event replayed later arms nothing.

Every key of a script call shares the bucket's hash tag (one Redis Cluster
slot). Scripts are atomic, so a timer is taken by one worker only; arming,
cancelling and acknowledging are idempotent (a batch may be retried). Every
key expires (wall clock; a key's time to live only grows).

``…:wm`` (its own tag) holds each partition's watermark as its owner last
reported it; the **shared watermark** is the minimum over the partitions that
are not idle (a partition between owners keeps its last value).
Redis errors propagate to the caller.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from services.correlate.alerts import build_alert
from services.correlate.fingerprint import fingerprint
from services.correlate.state import Obs
from shared.models import Alert, NormalizedEvent

#: Timer buckets: a rule and group hash to one (its hash tag, its Cluster slot).
BUCKETS = 16

# KEYS: at, ad, p, b, f. ARGV: 'a', timer id, A_t, deadline, due, payload, ttl
#                         or: 'b', member, B_t, trim_before, ttl
_RECORD_LUA = """
local at, ad, p, b, f = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function grow(k, ttl)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
if ARGV[1] == 'a' then
  local id, a_t, deadline, due, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[7])
  if redis.call('EXISTS', f) == 1 then return 0 end
  if #redis.call('ZRANGEBYSCORE', b, a_t, deadline, 'LIMIT', 0, 1) > 0 then return 0 end
  if redis.call('HEXISTS', p, id) == 0 and redis.call('ZSCORE', at, id) == false then
    redis.call('ZADD', at, due, id)
    redis.call('HSET', ad, id, ARGV[6])
    redis.call('HSET', p, id, a_t .. ',' .. deadline)
  end
  grow(at, ttl) grow(ad, ttl) grow(p, ttl)
  return 1
end
local t, ttl = tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZADD', b, t, ARGV[2])
redis.call('ZREMRANGEBYSCORE', b, '-inf', '(' .. ARGV[4])
grow(b, ttl)
local cancelled = 0
local pending = redis.call('HGETALL', p)
for i = 1, #pending, 2 do
  local id, v = pending[i], pending[i + 1]
  local comma = string.find(v, ',')
  local a_t, deadline = tonumber(string.sub(v, 1, comma - 1)), tonumber(string.sub(v, comma + 1))
  -- a timer already taken by a worker (no longer in at) is firing: too late to cancel
  if a_t <= t and t <= deadline and redis.call('ZREM', at, id) == 1 then
    redis.call('HDEL', ad, id)
    redis.call('HDEL', p, id)
    cancelled = cancelled + 1
  end
end
return cancelled
"""

# KEYS: at, ad, al. ARGV: watermark, now (wall ms), lease ms, limit.
# Returns [id, payload, ...]: the timers due by the watermark, and those whose
# lease expired (their worker died), now leased to the caller.
_TAKE_LUA = """
local at, ad, al = KEYS[1], KEYS[2], KEYS[3]
local now, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', at, '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', al, '-inf', '(' .. now, 'LIMIT', 0, limit)) do
  table.insert(ids, id)
end
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', at, id)
  local payload = redis.call('HGET', ad, id)
  if payload then
    redis.call('ZADD', al, now + lease, id)
    table.insert(out, id)
    table.insert(out, payload)
  else
    redis.call('ZREM', al, id)
  end
end
if #out > 0 then redis.call('PEXPIRE', al, math.max(redis.call('PTTL', ad), lease)) end
return out
"""

# KEYS: ad, al, then per timer its p and f. ARGV: fired ttl, then the timer ids.
_ACK_LUA = """
local ad, al, ttl = KEYS[1], KEYS[2], tonumber(ARGV[1])
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', al, id)
  redis.call('HDEL', ad, id)
  redis.call('HDEL', KEYS[2 * i - 1], id)
  redis.call('SET', KEYS[2 * i], '1', 'PX', ttl)
end
return #ARGV - 1
"""


def bucket_of(rule: str, group: str) -> int:
    """The bucket of a rule's group (stable across processes)."""
    digest = hashlib.blake2b(f"{rule}\x1f{group}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(slots=True)
class AbsenceOp:
    """Arm (``role`` ``"a"``) or feed (``"b"``) one group of an absence rule."""

    role: str
    #: the bucket's tag and the group's key prefix ``<prefix>:{<tag>}:<gid>:``
    tag: str
    head: str
    #: ``"a"``: the timer id (= the alert id); ``"b"``: the event's member
    name: str
    t: int
    deadline: int = 0
    due: int = 0
    payload: str = ""
    #: ``"b"``: missing events older than this are dropped
    trim_before: int = 0
    ttl_ms: int = 0


@dataclass(slots=True)
class Taken:
    """A due timer this worker holds (until :meth:`AbsenceStore.ack`)."""

    tag: str
    timer_id: str
    payload: str


class AbsenceStore:
    """The absence keys under ``prefix`` (already including the service's ``:corr``)."""

    #: How long a worker holds the timers it took before another may take them (ms).
    LEASE_MS = 30_000

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._record = redis.register_script(_RECORD_LUA)
        self._take = redis.register_script(_TAKE_LUA)
        self._ack = redis.register_script(_ACK_LUA)
        self._loaded = False

    async def _run(self, calls: list[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        """EVALSHA each (script, keys, args) in one pipelined round trip; the
        scripts are loaded first (once, and again if the server lost them)."""
        for attempt in (1, 2):
            if not self._loaded:
                for script in (self._record, self._take, self._ack):
                    script.sha = await self.redis.script_load(script.script)
                self._loaded = True
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for script, keys, args in calls:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    return list(await pipe.execute())
            except NoScriptError:
                self._loaded = False
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def key(self, tag: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + tag + "}", *parts))

    @staticmethod
    def tag(bucket: int) -> str:
        return f"abs{bucket}"

    async def record(self, ops: list[AbsenceOp]) -> list[int]:
        """Arm and feed, in order, in one pipelined round trip; per op 1/0 (armed
        or not) for ``"a"``, the number of timers cancelled for ``"b"``."""
        if not ops:
            return []
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for op in ops:
            keys = [
                self.key(op.tag, "at"),
                self.key(op.tag, "ad"),
                op.head + "p",
                op.head + "b",
                self.key(op.tag, "f", op.name),
            ]
            if op.role == "a":
                args: list[Any] = ["a", op.name, op.t, op.deadline, op.due, op.payload]
            else:
                args = ["b", op.name, op.t, op.trim_before]
            calls.append((self._record, keys, [*args, op.ttl_ms]))
        return [int(x) for x in await self._run(calls)]

    async def take(self, watermark: int, now: int, limit: int = 500) -> list[Taken]:
        """Lease every timer due by ``watermark`` (and those whose lease expired),
        one round trip over all buckets."""
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for b in range(BUCKETS):
            tag = self.tag(b)
            keys = [self.key(tag, "at"), self.key(tag, "ad"), self.key(tag, "al")]
            calls.append((self._take, keys, [watermark, now, self.LEASE_MS, limit]))
        answers = await self._run(calls)
        out: list[Taken] = []
        for b, flat in enumerate(answers):
            for i in range(0, len(flat), 2):
                out.append(Taken(self.tag(b), _text(flat[i]), _text(flat[i + 1])))
        return out

    async def ack(self, done: list[tuple[Taken, str, int]]) -> None:
        """Mark taken timers fired: ``(taken, group key prefix, fired ttl ms)``."""
        by_tag: dict[str, list[tuple[Taken, str, int]]] = {}
        for item in done:
            by_tag.setdefault(item[0].tag, []).append(item)
        if not by_tag:
            return
        calls: list[tuple[Any, list[str], list[Any]]] = []
        for tag, items in by_tag.items():
            keys = [self.key(tag, "ad"), self.key(tag, "al")]
            for taken, head, _ in items:
                # no group known (an unreadable payload): a key of the same slot
                keys += [
                    (head or self.key(tag, "-", "")) + "p",
                    self.key(tag, "f", taken.timer_id),
                ]
            ttl = max(x[2] for x in items)
            args: list[Any] = [ttl, *(x[0].timer_id for x in items)]
            calls.append((self._ack, keys, args))
        await self._run(calls)

    # -- the shared watermark -------------------------------------------------------------
    async def publish_watermarks(self, marks: dict[int, tuple[int, bool]], now: int) -> None:
        """The watermark of each partition this worker owns (and whether it is idle)."""
        if marks:
            values = {str(p): f"{wm},{int(idle)},{now}" for p, (wm, idle) in marks.items()}
            key = self.key("wm", "wm")
            await self.redis.hset(key, mapping=values)  # type: ignore[arg-type]
            await self.redis.pexpire(key, 7 * 86_400_000)  # a deployment gone: forgotten

    async def shared_watermark(self, partitions: int) -> int:
        """The minimum over the ``partitions`` of vigie.events.v1 that are not idle
        (the highest when all are): each as its owner last reported it, so a
        partition between two owners (a rebalance, a dead worker) keeps holding
        event time where it was; a partition nobody has reported holds it at 0."""
        raw = await self.redis.hgetall(self.key("wm", "wm"))
        marks: dict[int, tuple[int, bool]] = {}
        for field, value in raw.items():
            wm, idle, _ = _text(value).split(",")
            marks[int(_text(field))] = (int(wm), idle == "1")
        if any(p not in marks for p in range(partitions)):
            return 0
        active = [wm for p, (wm, idle) in marks.items() if p < partitions and not idle]
        every = [wm for p, (wm, _) in marks.items() if p < partitions]
        return min(active) if active else max(every, default=0)


def base_time(event: NormalizedEvent, after: str | None, t: int) -> int:
    """When an absence's window starts: the time ``details[after]`` names
    (ISO 8601, UTC when naive), else the event time ``t``."""
    raw = event.details.get(after) if after else None
    if not isinstance(raw, str):
        return t
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        return t
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def absence_op(
    rule: Any,
    role: str,
    group: str,
    gid: str,
    event: NormalizedEvent,
    t: int,
    watermark: int,
    lateness_ms: int,
    pointer: str,
    prefix: str,
) -> AbsenceOp:
    """The op of one event on one group of an absence rule (``role`` ``"a"``:
    it arms a timer; ``"b"``: it cancels those it falls within)."""
    tag = AbsenceStore.tag(bucket_of(rule.id, group))
    head = f"{prefix}:{{{tag}}}:{gid}:"
    keep = 2 * rule.window + lateness_ms + (rule.lateness or 0)
    if role == "b":
        member = f"{event.agency}|{event.event_id}"
        return AbsenceOp("b", tag, head, member, t, trim_before=watermark - keep, ttl_ms=keep)
    deadline = base_time(event, rule.after, t) + rule.window
    due = deadline + (rule.lateness or 0)
    alert_id = fingerprint(rule.id, group, f"{event.agency}|{event.event_id}")
    payload = json.dumps({"r": rule.id, "g": group, "h": head, "d": deadline, "o": pointer})
    ttl = keep + max(0, due - t)
    return AbsenceOp("a", tag, head, alert_id, t, deadline, due, payload, ttl_ms=ttl)


def absence_alert(rule: Any, taken: Taken, now: int, version: str) -> tuple[Alert, str, int]:
    """The alert of a due timer, its group's key prefix and its fired mark's time
    to live. Raises ``ValueError``/``KeyError`` on a payload it cannot read."""
    p = json.loads(taken.payload)
    obs = Obs.from_json(p["o"])
    deadline = int(p["d"])
    when = datetime.fromtimestamp(deadline / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    alert = build_alert(
        rule,
        str(p["g"]),
        taken.timer_id,
        [obs],
        department=obs.department,
        starts_ms=deadline,
        lag_ms=now - deadline,
        published_ms=None,
        now=now,
        version=version,
        summary=f"{rule.title}: {obs.agency} ({obs.type}), nothing by {when}",
    )
    return alert, str(p["h"]), 2 * rule.window + (rule.lateness or 0) + 7 * 86_400_000


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x
