"""The notification pipeline on Redis: ingest → group → (silence, inhibit) → nflog → channels.

:class:`Dispatcher` holds no state of its own: groups, timers, the notification
log, incidents, acknowledgements, escalations and silences live in Redis, so
a restart or a second replica neither loses a group nor notifies twice.

* :meth:`Dispatcher.ingest` records an alert (idempotent: a redelivered alert
  changes nothing) in each group its routes reach and schedules the group.
* :meth:`Dispatcher.flush_due` flushes due groups: a due group is *leased*
  atomically (one replica flushes it; a crash frees it when the lease ends).
* A notification is keyed by (group, channel, content state) in the
  notification log, claimed with a Lua ``SET NX``-like script, marked sent
  after delivery, before the receiver's slot is freed. A crash between claim
  and mark frees the claim when it expires: the notification is sent again
  (at most ``per_receiver`` per cell), never lost.
* Delivery tries ``attempts`` times with exponential backoff and full jitter,
  then again at later flushes until ``give_up_s`` after the first try; then
  the notification goes to the DLQ (and is not retried).
* :meth:`Dispatcher.escalate_due` escalates an alert a cell did not
  acknowledge within its timeout to the next cell up, again and again.

Keys updated together share a hash tag (``{g:<group>}``, ``{a:<alert>}``,
``{c:<cell>}``). No key or record holds a clear identifier: alert ids are
fingerprints, labels hold tokens at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import NoScriptError

from services.notify.cells import Cell, Cells, EmailChannel, MatrixChannel, Secrets, WebhookChannel
from services.notify.channels import email as email_channel
from services.notify.channels import webhook
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.http import HttpPool
from services.notify.channels.matrix import MatrixSender
from services.notify.group import Member, content_state, finished, group_id, to_notify
from services.notify.inhibit import inhibited
from services.notify.metrics import NotifyMetrics
from services.notify.redact import POINTER_LABELS, cleared, view
from services.notify.route import Route, Routing
from services.notify.silence import Silence, SilenceStore, silenced
from shared.metrics import children
from shared.models import Alert
from shared.redis import Keys
from shared.resp import (
    Batch,
    GroupCommit,
    Pipelines,
    PoolPipelines,
    pairs,
    pipelines_for,
    text,
    values,
)

log = logging.getLogger("vigie.notify")


Clock = Callable[[], float]
Sink = Callable[[dict[str, Any]], Awaitable[None]]
BatchSink = Callable[[list[dict[str, Any]]], Awaitable[None]]

# Incident bookkeeping for one alert: a firing alert with no open incident opens
# a new one (seq+1); a resolved one closes it. Returns the incident number.
_INCIDENT = """
local state = redis.call('HGET', KEYS[1], 'state')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if ARGV[1] == 'firing' then
  if state ~= 'open' then
    seq = seq + 1
    redis.call('HSET', KEYS[1], 'seq', seq, 'state', 'open', 'opened_at', ARGV[3])
    redis.call('HDEL', KEYS[1], 'acked_by', 'acked_at', 'resolved_by')
  end
else
  if seq == 0 then seq = 1 end
  if state ~= 'resolved' then
    redis.call('HSET', KEYS[1], 'seq', seq, 'state', 'resolved', 'resolved_at', ARGV[3])
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return seq
"""

# Claim a notification: free, failed before, or sent more than repeat_interval
# ago → claimed (returns the first try's time); otherwise returns the current
# state ('sent:<time>' or 'claimed:<time>'). Times come from the caller's clock.
_CLAIM_FN = """
local function claim(key, now, claim_s, repeat_s)
  local v = redis.call('GET', key)
  if v and string.sub(v, 1, 5) == 'sent:' and
     tonumber(now) - tonumber(string.sub(v, 6)) >= tonumber(repeat_s) then
    v = nil
  end
  if not v then
    redis.call('SET', key, 'claimed:' .. now, 'EX', claim_s)
    return now
  end
  if string.sub(v, 1, 7) == 'failed:' then
    local first = string.sub(v, 8)
    redis.call('SET', key, 'claimed:' .. first, 'EX', claim_s)
    return first
  end
  return v
end
"""

# Add or update a group's alerts of one batch (in order), bumping the version for
# each whose content changed. KEYS: the group's alerts and meta hashes, then the
# notification log keys to claim if the group is new (due at once: its
# notification is decided before it is recorded). ARGV: route id, group labels,
# ttl, n, n (alert id, member) pairs, then (with keys to claim) now, claim_s,
# repeat_interval. Returns {1 when the group is new else 0, the group's version,
# and for a new group each claim's answer}.
_GROUP_ADD = (
    _CLAIM_FN
    + """
local new = redis.call('EXISTS', KEYS[2]) == 0
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], 'ver', 1)
  end
end
redis.call('HSETNX', KEYS[2], 'route', ARGV[1])
redis.call('HSETNX', KEYS[2], 'labels', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local out = {0, redis.call('HGET', KEYS[2], 'ver') or '0'}
if not new then return out end
out[1] = 1
local at = 5 + 2 * n
for k = 3, #KEYS do
  out[#out + 1] = claim(KEYS[k], ARGV[at], ARGV[at + 1], ARGV[at + 2])
end
return out
"""
)

# Take an alert out of a group (resolved by hand); bump the version if it was there.
_GROUP_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'ver', 1)
  return 1
end
return 0
"""

# Lease due members of a schedule: score <= now → score = now + lease.
# Returns {the members leased, the earliest score left} (only the first when empty).
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {due, first[2]}
"""

# Unschedule a group unless someone rescheduled it since (score changed).
_UNSCHEDULE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

# Delete a finished group unless an alert arrived meanwhile (version changed).
_GROUP_DELETE = """
if (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# Claim one notification (see _CLAIM_FN): KEYS[1], ARGV now, claim_s, repeat_interval.
_NFLOG_CLAIM = _CLAIM_FN + "return claim(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\n"


@dataclass(frozen=True)
class DeliveryConfig:
    """How channels are reached and how hard to try."""

    webhook_url: str = "http://127.0.0.1:9095/cells/{cell}"
    webhook_secret: bytes | None = None
    attempts: int = 4
    retry_base_s: float = 0.2
    timeout_s: float = 5.0
    #: Keep retrying a notification at later flushes until this long after its first try.
    give_up_s: float = 3600.0
    #: How soon a failed or busy notification is tried again.
    redeliver_s: float = 5.0
    #: A claim (notification being sent) expires after this long (crashed sender).
    claim_s: float = 30.0
    #: A due group is leased for this long by the replica flushing it.
    lease_s: float = 30.0
    #: Per-receiver concurrent deliveries (per process).
    per_receiver: int = 4
    #: Flush batches in flight at once (per process).
    batches: int = 16
    nflog_ttl_s: int = 7 * 86400
    smtp: email_channel.SmtpConfig | None = None
    matrix_homeserver: str | None = None


@dataclass
class _Job:
    """One group's notification, being flushed."""

    gid: str
    route: Route
    cell: Cell
    n: Notification
    state: str
    alerts: list[tuple[Alert, int]]
    members: list[Member]
    ver: str


@dataclass
class _Adds:
    """A group's updates in one batch: (alert id, member) pairs, flat, in order."""

    route: Route
    labels: str
    members: list[str] = field(default_factory=list)
    alerts: dict[str, tuple[Alert, int]] = field(default_factory=dict)


@dataclass
class _Group:
    """A leased group, read from Redis (or just recorded)."""

    gid: str
    meta: dict[str, str]
    alerts: list[tuple[Alert, int]]


@dataclass
class _Plan:
    """A flush batch, decided: jobs to send (and their claims), timers, drops."""

    now: float
    jobs: list[_Job] = field(default_factory=list)
    reschedule: dict[str, float] = field(default_factory=dict)
    drops: list[tuple[str, str | None, float]] = field(default_factory=list)
    claims: list[tuple[_Job, Any, str]] = field(default_factory=list)
    #: (group, reason) of each alert muted, counted once the plan is kept.
    mutes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Cache:
    at: float = -1.0
    value: Any = None


@dataclass
class Dispatcher:
    redis: aioredis.Redis
    keys: Keys
    routing: Routing
    cells: Cells
    secrets: Secrets
    config: DeliveryConfig
    metrics: NotifyMetrics
    audit: Sink
    dlq: Sink
    clock: Clock = time.time
    #: Writes many audit records at once (else :attr:`audit` is called for each).
    audit_many: BatchSink | None = None
    _http: HttpPool | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _sems: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _firing_cache: _Cache = field(default_factory=_Cache)
    _silence_cache: dict[str, _Cache] = field(default_factory=dict)
    _matrix: MatrixSender | None = None
    _children: dict[int, Any] = field(default_factory=dict)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    #: run() found every flush slot taken (a freed slot wakes it).
    _starved: bool = False
    #: When run() means to look at the schedules next (clock time).
    _wake_at: float = math.inf
    #: run() is reading the schedules; the earliest timer written meanwhile.
    _passing: bool = False
    _noted: float = math.inf
    #: How pipelines reach Redis; default: :func:`~shared.resp.pipelines_for`.
    pipes: Pipelines | PoolPipelines | None = None

    def __post_init__(self) -> None:
        self.silences = SilenceStore(self.redis, self.keys)
        if self.pipes is None:
            self.pipes = pipelines_for(self.redis)
        self._marks = GroupCommit(lambda batch: self._pipe(lambda p: p.extend(batch)))
        self.routes = self.routing.by_id()
        self._incident = self.redis.register_script(_INCIDENT)
        self._group_add = self.redis.register_script(_GROUP_ADD)
        self._claim_due = self.redis.register_script(_CLAIM_DUE)
        self._group_delete = self.redis.register_script(_GROUP_DELETE)
        self._nflog_claim = self.redis.register_script(_NFLOG_CLAIM)
        self._unschedule = self.redis.register_script(_UNSCHEDULE)
        self._group_remove = self.redis.register_script(_GROUP_REMOVE)
        self._scripts = [
            self._incident,
            self._group_add,
            self._claim_due,
            self._group_delete,
            self._nflog_claim,
            self._unschedule,
            self._group_remove,
        ]
        if self.config.matrix_homeserver and self.secrets.matrix_access_token:
            self._matrix = MatrixSender(
                self.config.matrix_homeserver, self.secrets.matrix_access_token
            )

    def apply(self, routing: Routing, cells: Cells) -> None:
        """Use a new routing and cells pair (hot reload) for everything from now on.

        Groups of a route the new routing no longer has are dropped at their next
        flush; flushes in flight finish with the pair they started with.
        """
        self.routing, self.cells = routing, cells
        self.routes = routing.by_id()
        self._silence_cache.clear()

    # keys ---------------------------------------------------------------
    def _gk(self, gid: str, *parts: str) -> str:
        return self.keys.tagged(f"g:{gid}", *parts)

    def _ak(self, alert_id: str, *parts: str) -> str:
        return self.keys.tagged(f"a:{alert_id}", *parts)

    def _ck(self, cell: str, *parts: str) -> str:
        return self.keys.tagged(f"c:{cell}", *parts)

    @property
    def _sched(self) -> str:
        return self.keys.tagged("sched", "groups")

    @property
    def _esc(self) -> str:
        return self.keys.tagged("esc", "due")

    @property
    def _firing(self) -> str:
        return self.keys.tagged("active", "firing")

    async def close(self) -> None:
        """Let the flushes in flight end (within the delivery timeout), then close clients."""
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self.config.timeout_s)
            for task in pending:
                task.cancel()  # their leases bring the groups back
        await self._marks.close()
        if self.pipes is not None:
            await self.pipes.aclose()
        if self._http is not None:
            await self._http.close()
        if self._matrix is not None:
            await self._matrix.close()

    # ingest -------------------------------------------------------------
    async def ingest(self, alert: Alert) -> int:
        """Record one alert (see :meth:`ingest_many`)."""
        return await self.ingest_many([alert])

    async def ingest_many(self, alerts: list[Alert]) -> int:
        """Record alerts in the groups their routes reach; return how many group updates.

        Idempotent (a redelivered alert changes nothing); three Redis round trips
        per batch, about two commands per alert and route. Raises
        ``redis.RedisError`` when Redis fails: the caller retries the batch, and
        nothing half-applied is wrong when retried. Due groups are left to
        :meth:`run` (or :meth:`flush_due`).
        """
        return await self._record(alerts, take=False)

    async def ingest_and_flush(self, alerts: list[Alert]) -> int:
        """:meth:`ingest_many`, then flush at once, in the background, the groups
        these alerts created that have no ``group_wait``.

        Such a group is leased to this replica as it is recorded (the same lease
        :meth:`flush_due` takes), and flushed from the alerts in memory: no
        timer tick, no read back. A crash before the flush ends frees the lease:
        :meth:`run` flushes the group then. When :attr:`DeliveryConfig.batches`
        flushes are already in flight, the groups are scheduled as usual.
        """
        return await self._record(alerts, take=len(self._inflight) < self.config.batches)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        task.add_done_callback(self._freed)

    def _timers_set(self, first: float | None) -> None:
        """Timers were written, the earliest at ``first``: wake run() if it
        sleeps past it (if it is reading the schedules, it will sleep no later)."""
        if first is None:
            return
        if self._passing:
            self._noted = min(self._noted, first)
        elif first < self._wake_at:
            self.wake.set()

    def _freed(self, _task: asyncio.Task[None]) -> None:
        if self._starved:  # due groups wait for a flush slot: run() claims them now
            self.wake.set()

    async def drain(self) -> None:
        """Wait for the flushes in flight (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _record(self, alerts: list[Alert], take: bool) -> int:
        """Record; with ``take``, lease the new groups due now (all firing), claim
        their notifications in the same script call that records them, and send
        them in the background. Returns the group updates."""
        if not alerts:
            return 0
        now = self.clock()
        ttl = self.config.nflog_ttl_s
        docs = [a.model_dump_json() for a in alerts]
        last: dict[str, Alert] = {a.alert_id: a for a in alerts}  # the last status wins
        firing: dict[Any, Any] = {
            aid: json.dumps(a.labels, sort_keys=True)
            for aid, a in last.items()
            if a.status == "firing"
        }
        resolved = [aid for aid, a in last.items() if a.status != "firing"]

        def incidents(p: Batch) -> None:
            for alert, doc in zip(alerts, docs, strict=True):
                self._eval(
                    p,
                    self._incident,
                    [self._ak(alert.alert_id, "incident"), self._ak(alert.alert_id, "alert")],
                    [alert.status, doc, now, ttl],
                )
            if firing:
                p.hset(self._firing, firing)
            if resolved:
                p.hdel(self._firing, *resolved)

        seqs = [int(x) for x in (await self._pipe(incidents))[: len(alerts)]]
        # A group's updates of this batch go in one script call.
        adds: dict[str, _Adds] = {}
        count = 0
        for alert, doc, seq in zip(alerts, docs, seqs, strict=True):
            # the alert's JSON as pydantic wrote it: deterministic for a redelivery
            member = f'{{"alert":{doc},"incident":{seq}}}'
            for route in self.routing.match(alert.labels):
                gid, glabels = group_id(route, alert.labels)
                a = adds.get(gid)
                if a is None:
                    a = adds[gid] = _Adds(route, json.dumps(glabels))
                a.members += (alert.alert_id, member)
                a.alerts[alert.alert_id] = (alert, seq)  # the last status wins
                count += 1
        # With ``take``, the groups due at once (group_wait 0, every alert firing)
        # are decided now, as if new: the script claims their notifications if
        # they are, and they leave at once, leased.
        until = now + self.config.lease_s
        ready = [
            _Group(
                gid,
                {"route": a.route.id, "labels": a.labels},
                sorted(a.alerts.values(), key=lambda x: x[0].alert_id),
            )
            for gid, a in adds.items()
            if take
            and a.route.group_wait <= 0
            and all(x.status == "firing" for x, _ in a.alerts.values())
        ]
        plan = await self._plan(ready) if ready else None
        jobs = {j.gid: j for j in plan.jobs} if plan is not None else {}

        def group_adds(p: Batch) -> None:
            if plan is not None:
                plan.claims.clear()
            for gid, a in adds.items():
                keys = [self._gk(gid, "alerts"), self._gk(gid, "meta")]
                args: list[Any] = [a.route.id, a.labels, ttl, len(a.members) // 2, *a.members]
                job = jobs.get(gid)
                if job is not None and plan is not None:
                    keys += self._claims_of(plan, job)
                    args += [plan.now, int(self.config.claim_s) or 1, job.route.repeat_interval]
                self._eval(p, self._group_add, keys, args)

        results = await self._pipe(group_adds)
        # A new group waits group_wait; an existing one keeps its next tick.
        fresh: dict[str, float] = {}
        known: dict[str, float] = {}
        taken: set[str] = {g.gid for g in ready}
        answers: dict[str, list[Any]] = {}
        for (gid, a), res in zip(adds.items(), results, strict=True):
            if int(res[0]):
                fresh[gid] = until if gid in taken else now + a.route.group_wait
                answers[gid] = res[2:]
                if gid in jobs:
                    jobs[gid].ver = text(res[1])
            else:
                known[gid] = now + a.route.group_wait
                taken.discard(gid)
        if plan is not None:
            self._keep_only(plan, taken)
            self._count_mutes(plan)
            if taken:
                got = {gid: iter(answers[gid]) for gid in taken}
                claimed = [next(got[job.gid]) for job, _, _ in plan.claims]
                self._spawn(self._deliver_plan_safe(plan, claimed, until))

        def schedule(p: Batch) -> None:
            if fresh:
                p.zadd(self._sched, fresh)
            if known:
                p.zadd(self._sched, known, nx=True)

        await self._pipe(schedule)
        # the first flush of a new group (those taken are leased to this replica)
        self._timers_set(min([t for g, t in fresh.items() if g not in taken], default=None))
        return count

    @staticmethod
    def _keep_only(plan: _Plan, gids: set[str]) -> None:
        """Forget what ``plan`` decided for groups not in ``gids`` (not new after all)."""
        plan.jobs = [j for j in plan.jobs if j.gid in gids]
        plan.claims = [c for c in plan.claims if c[0].gid in gids]
        plan.reschedule = {g: t for g, t in plan.reschedule.items() if g in gids}
        plan.drops = [d for d in plan.drops if d[0] in gids]
        plan.mutes = [m for m in plan.mutes if m[0] in gids]

    def _count_mutes(self, plan: _Plan) -> None:
        """Count the mutes of a plan that is kept (not of a guess thrown away)."""
        for _, reason in plan.mutes:
            self._counter(self.metrics.muted, reason).inc()

    def _eval(self, p: Batch, script: Any, keys: list[str], args: list[Any]) -> None:
        """Queue a script by its SHA (see :meth:`_pipe`)."""
        p.evalsha(script.sha, keys, args)

    async def _pipe(self, fill: Callable[[Batch], None]) -> list[Any]:
        """Run a pipeline filled by ``fill`` in one round trip; raw replies
        (bytes, integers, lists: see :mod:`shared.resp`).

        Scripts go by SHA without redis-py's ``SCRIPT EXISTS`` round trip per
        pipeline; when Redis lost them (restarted without persistence, ``SCRIPT
        FLUSH``) they are loaded and the pipeline runs again: every pipeline
        given here is safe to run twice (a lost connection retries it too).
        """
        for attempt in range(2):
            batch = Batch()
            fill(batch)
            if not batch:
                return []
            try:
                assert self.pipes is not None  # set at init
                return await self.pipes.execute(batch)
            except NoScriptError:
                if attempt:
                    raise
            for script in self._scripts:
                await self.redis.script_load(script.script)
        raise AssertionError("unreachable")  # pragma: no cover

    # flush --------------------------------------------------------------
    async def flush_due(self, limit: int = 512) -> int:
        """Flush every due group (leased to this caller, in one batch); return how many.

        A failure leaves the leased groups to be flushed again when the lease ends.
        """
        now = self.clock()
        gids = [text(g) for g in await self._lease_due(self._sched, now, limit)]
        if gids:
            await self._flush_batch_safe(gids, now + self.config.lease_s)
        return len(gids)

    async def _flush_batch_safe(self, gids: list[str], lease: float) -> None:
        try:
            await self._flush_batch(gids, lease)
        except Exception:  # the leases bring these groups back
            log.exception("flush failed", extra={"groups": len(gids)})

    async def _flush_groups_safe(self, groups: list[_Group], lease: float) -> None:
        try:
            await self._flush_groups(groups, lease)
        except Exception:  # the leases bring these groups back
            log.exception("flush failed", extra={"groups": len(groups)})

    async def _firing_labels(self) -> dict[str, dict[str, str]]:
        if not self.routing.inhibit_rules:
            return {}
        now = self.clock()
        if abs(now - self._firing_cache.at) > 0.5:
            raw = await self.redis.hgetall(self._firing)
            self._firing_cache = _Cache(now, {text(k): json.loads(v) for k, v in raw.items()})
        value: dict[str, dict[str, str]] = self._firing_cache.value
        return value

    async def _cells_silences(self, cells: set[str]) -> dict[str, list[Silence]]:
        """Each cell's active silences, read again (together) when older than 0.5 s."""
        now = self.clock()
        out: dict[str, list[Silence]] = {}
        for c in cells:
            hit = self._silence_cache.get(c)
            if hit is not None and abs(now - hit.at) <= 0.5:
                out[c] = hit.value
        stale = sorted(cells - out.keys())
        if stale:
            assert self.pipes is not None  # set at init
            for c, value in (await self.silences.active_of(stale, now, self.pipes)).items():
                self._silence_cache[c] = _Cache(now, value)
                out[c] = value
        return out

    def invalidate_silences(self, cell: str) -> None:
        self._silence_cache.pop(cell, None)

    def _counter(self, metric: Any, *labels: str) -> Any:
        """A labelled child of ``metric``, looked up once (``.labels()`` is not free)."""
        lookup = self._children.get(id(metric))
        if lookup is None:
            lookup = self._children[id(metric)] = children(metric)
        return lookup(*labels)

    def _members(
        self,
        alerts: list[tuple[Alert, int]],
        silences: list[Silence],
        firing: dict[str, dict[str, str]],
        now: float,
        mutes: list[str],
    ) -> list[Member]:
        """The group's members; the reason each muted one is muted goes to ``mutes``."""
        members: list[Member] = []
        for a, incident in alerts:
            muted = False
            if a.status == "firing":
                if silences and silenced(silences, a.labels, now):
                    mutes.append("silenced")
                    muted = True
                elif firing and inhibited(self.routing.inhibit_rules, a.alert_id, a.labels, firing):
                    mutes.append("inhibited")
                    muted = True
            members.append(Member(a.alert_id, a.status, incident, muted))
        return members

    @staticmethod
    def _decode(raws: list[Any]) -> list[tuple[Alert, int]]:
        """A group's members as stored (the values of its hash), sorted by alert
        id (unreadable ones skipped)."""
        out: list[tuple[Alert, int]] = []
        for raw in raws:
            try:
                d = json.loads(raw)
                out.append((Alert.model_validate(d["alert"]), int(d["incident"])))
            except (ValidationError, ValueError, KeyError, TypeError):
                continue
        out.sort(key=lambda x: x[0].alert_id)
        return out

    async def _flush_batch(self, gids: list[str], lease: float) -> None:
        """Read the leased groups (one round trip) and flush them."""

        def read(p: Batch) -> None:
            for gid in gids:
                p.hgetall(self._gk(gid, "meta"))
                p.hgetall(self._gk(gid, "alerts"))

        raw = await self._pipe(read)
        groups = [
            _Group(gid, pairs(raw[2 * i]), self._decode(values(raw[2 * i + 1])))
            for i, gid in enumerate(gids)
        ]
        await self._flush_groups(groups, lease)

    async def _flush_groups(self, groups: list[_Group], lease: float) -> None:
        """Notify each group's receiver if its content changed or repeat_interval passed.

        Round trips are per batch, not per group: claim notifications, send
        (concurrently), write marks and timers, drop finished groups. Audit
        records are written once the batch is done, all at once.
        """
        plan = await self._plan(groups)
        self._count_mutes(plan)
        answers = await self._pipe(lambda p: self._claim_into(p, plan))
        await self._deliver_plan(plan, answers, lease)

    async def _plan(self, groups: list[_Group]) -> _Plan:
        """What to send (one job per group with something to say), reschedule or
        drop. Counts nothing: the caller counts :attr:`_Plan.mutes` if it keeps the plan."""
        plan = _Plan(self.clock())
        now = plan.now
        firing = await self._firing_labels()
        cells = {
            route.receiver
            for g in groups
            if (route := self.routes.get(g.meta.get("route", ""))) is not None
        }
        silences = await self._cells_silences(cells)
        for g in groups:
            route = self.routes.get(g.meta.get("route", ""))
            if route is None or not g.alerts:
                # an emptied group, or a route that a new routing file removed
                plan.drops.append((g.gid, None, 0.0))
                continue
            if self.routing.muted(route, now):
                plan.mutes.append((g.gid, "time_interval"))
                plan.reschedule[g.gid] = now + route.group_interval
                continue
            cell = self.cells[route.receiver]
            mutes: list[str] = []
            members = self._members(g.alerts, silences[cell.id], firing, now, mutes)
            plan.mutes += [(g.gid, reason) for reason in mutes]
            ver = g.meta.get("ver", "0")
            notify = to_notify(members)
            if not notify:
                if finished(members):
                    plan.drops.append((g.gid, ver, now + route.group_interval))
                else:
                    plan.reschedule[g.gid] = now + route.group_interval
                continue
            state = content_state(members)
            keep = {m.alert_id for m in notify}
            chosen = [x for x in g.alerts if x[0].alert_id in keep]
            n = self._notification(route, g.gid, g.meta, cell, chosen, state)
            plan.jobs.append(_Job(g.gid, route, cell, n, state, chosen, members, ver))
        return plan

    def _claims_of(self, plan: _Plan, job: _Job) -> list[str]:
        """The notification log keys of ``job`` (one per channel), added to ``plan.claims``."""
        keys = []
        for ci, ch in enumerate(job.cell.channels):
            key = self.keys.tagged(f"g:{job.gid}", "nflog", job.cell.id, str(ci), job.state)
            plan.claims.append((job, ch, key))
            keys.append(key)
        return keys

    def _claim_into(self, p: Batch, plan: _Plan) -> None:
        """Queue the notification log claims of ``plan`` (one per job and channel)."""
        plan.claims.clear()
        for job in plan.jobs:
            for key in self._claims_of(plan, job):
                self._eval(
                    p,
                    self._nflog_claim,
                    [key],
                    [plan.now, int(self.config.claim_s) or 1, job.route.repeat_interval],
                )

    async def _deliver_plan_safe(self, plan: _Plan, answers: list[Any], lease: float) -> None:
        try:
            await self._deliver_plan(plan, answers, lease)
        except Exception:  # the leases bring these groups back
            log.exception("flush failed", extra={"groups": len(plan.jobs)})

    async def _deliver_plan(self, plan: _Plan, answers: list[Any], lease: float) -> None:
        """Send what was claimed, then write marks, timers and the audit trail."""
        reschedule, drops = plan.reschedule, plan.drops
        records: list[dict[str, Any]] = []
        outcomes = await asyncio.gather(
            *(
                self._send_claimed(
                    job.cell,
                    key,
                    ch,
                    job.n,
                    job.route.repeat_interval,
                    [a for a, _ in job.alerts],
                    text(got),
                    records,
                    job.alerts,
                )
                for (job, ch, key), got in zip(plan.claims, answers, strict=True)
            )
        )
        by_job: dict[str, set[str]] = {}
        for (job, _, _), outcome in zip(plan.claims, outcomes, strict=True):
            by_job.setdefault(job.gid, set()).add(outcome)
        now = self.clock()
        for job in plan.jobs:
            got = by_job.get(job.gid, set())
            if "retry" in got:
                reschedule[job.gid] = now + self.config.redeliver_s
            elif finished(job.members):
                drops.append((job.gid, job.ver, now + job.route.group_interval))
            else:
                reschedule[job.gid] = now + job.route.group_interval

        if reschedule:
            await self._pipe(lambda p: p.zadd(self._sched, reschedule))
            self._timers_set(min(reschedule.values()))
        await self._emit(records)
        if drops:
            await self._drop(drops, lease)

    async def _emit(self, records: list[dict[str, Any]]) -> None:
        """Write audit records: all at once when the sink takes batches."""
        if not records:
            return
        try:
            if self.audit_many is not None:
                await self.audit_many(records)
            else:
                for r in records:
                    await self.audit(r)
        except Exception:  # the deliveries are done and marked: do not redo them
            log.exception("audit records not written", extra={"records": len(records)})

    async def _drop(self, drops: list[tuple[str, str | None, float]], lease: float) -> None:
        """Delete finished groups (unless an alert arrived: version changed) and
        unschedule them (unless someone rescheduled them since)."""

        def delete(p: Batch) -> None:
            for gid, ver, _ in drops:
                if ver is None:
                    p.delete(self._gk(gid, "meta"), self._gk(gid, "alerts"))
                else:
                    self._eval(
                        p,
                        self._group_delete,
                        [self._gk(gid, "alerts"), self._gk(gid, "meta")],
                        [ver],
                    )

        deleted = await self._pipe(delete)
        # kept (an alert joined since): scheduled again, later; the others unscheduled
        kept = {
            gid: later
            for (gid, ver, later), ok in zip(drops, deleted, strict=True)
            if ver is not None and not int(ok)
        }

        def unschedule(p: Batch) -> None:
            for gid, _, _ in drops:
                if gid not in kept:
                    self._eval(p, self._unschedule, [self._sched], [gid, repr(float(lease))])
            if kept:
                p.zadd(self._sched, kept)

        await self._pipe(unschedule)
        self._timers_set(min(kept.values(), default=None))  # run() may sleep past them

    def _notification(
        self,
        route: Route,
        gid: str,
        meta: dict[str, str],
        cell: Cell,
        alerts: list[tuple[Alert, int]],
        state: str,
    ) -> Notification:
        glabels: dict[str, str] = json.loads(meta.get("labels", "{}"))
        if not all(cleared(a, cell) for a, _ in alerts):
            glabels = {k: v for k, v in glabels.items() if k in POINTER_LABELS}
        return Notification(
            receiver=cell.id,
            group_key=f"{route.id}:{gid}",
            group_labels=glabels,
            alerts=[view(a, cell, self.cells, seq) for a, seq in alerts],
            notification_id=hashlib.sha256(f"{gid}:{state}".encode()).hexdigest()[:32],
        )

    @staticmethod
    def _hold(
        cell: Cell,
        alerts: list[tuple[Alert, int]],
        now: float,
        held: dict[str, dict[str, float]],
        timers: dict[str, float],
    ) -> None:
        """The cell now holds these alerts: list them in its API, start its ack timer
        (written by :meth:`_hold_into`)."""
        mine = held.setdefault(cell.id, {})
        for a, seq in alerts:
            mine[a.alert_id] = now
            if cell.escalate_to:
                timers.setdefault(f"{a.alert_id}|{seq}|{cell.id}", now + cell.ack_timeout_s)

    def _hold_into(
        self, p: Batch, held: dict[str, dict[str, float]], timers: dict[str, float]
    ) -> None:
        for cell_id, ids in held.items():
            if ids:
                p.zadd(self._ck(cell_id, "alerts"), ids)
        if timers:
            p.zadd(self._esc, timers, nx=True)

    async def _register(self, cell: Cell, alerts: list[tuple[Alert, int]]) -> None:
        held: dict[str, dict[str, float]] = {}
        timers: dict[str, float] = {}
        self._hold(cell, alerts, self.clock(), held, timers)
        await self._pipe(lambda p: self._hold_into(p, held, timers))

    # delivery -----------------------------------------------------------
    async def _deliver_all(
        self, cell: Cell, n: Notification, tag: str, entry: str, ttl: float, alerts: list[Alert]
    ) -> str:
        """Deliver on every channel of ``cell``: 'delivered', 'retry' or 'done'."""
        records: list[dict[str, Any]] = []
        results = await asyncio.gather(
            *(
                self._deliver(
                    cell,
                    self.keys.tagged(tag, "nflog", cell.id, str(i), entry),
                    ch,
                    n,
                    ttl,
                    alerts,
                    records,
                )
                for i, ch in enumerate(cell.channels)
            )
        )
        await self._emit(records)
        if "retry" in results:
            return "retry"
        return "delivered" if "delivered" in results else "done"

    async def _deliver(
        self,
        cell: Cell,
        key: str,
        channel: Any,
        n: Notification,
        ttl: float,
        alerts: list[Alert],
        records: list[dict[str, Any]],
    ) -> str:
        """Claim, send, record: 'delivered', 'dedup', 'retry' or 'done' (failed for good)."""
        got = await self._nflog_claim(
            keys=[key], args=[self.clock(), int(self.config.claim_s) or 1, ttl]
        )
        return await self._send_claimed(cell, key, channel, n, ttl, alerts, text(got), records)

    async def _send_claimed(
        self,
        cell: Cell,
        key: str,
        channel: Any,
        n: Notification,
        ttl: float,
        alerts: list[Alert],
        got: str,
        records: list[dict[str, Any]],
        holds: list[tuple[Alert, int]] | None = None,
    ) -> str:
        """Act on a claim answer: 'delivered', 'dedup', 'retry' or 'done'.

        Writes the notification log mark of what it did (:meth:`_mark`). A
        delivery's sent mark (and, given ``holds``, the cell's hold of those
        alerts and its ack timers) is written before the receiver's slot is freed,
        so a worker killed at any moment leaves at most ``per_receiver``
        notifications per cell delivered and unmarked: those a restart sends again,
        with the same ``notificationId`` (at-least-once). A failure to write a
        mark raises, like any Redis failure of the flush (the claim then expires
        and the notification is sent again). Audit records go to ``records``: the
        caller writes them once the batch is done."""
        kind = channel.type
        if got.startswith("sent:"):
            self._counter(self.metrics.notifications, cell.id, kind, "deduplicated").inc()
            return "dedup"
        if got.startswith("claimed:"):
            return "retry"  # another replica (or a crashed one) holds it
        first = float(got)
        sem = self._sems.get(cell.id)
        if sem is None:
            sem = self._sems[cell.id] = asyncio.Semaphore(self.config.per_receiver)
        last = ""
        async with sem:
            for attempt in range(self.config.attempts):
                try:
                    await self._send(cell, channel, n)
                except DeliveryError as exc:
                    last = str(exc)
                    if not exc.retryable:
                        first = -1e18  # give up at once
                        break
                    if attempt + 1 < self.config.attempts:
                        self._counter(self.metrics.retries, kind).inc()
                        backoff = self.config.retry_base_s * 2**attempt
                        await asyncio.sleep(random.uniform(0, backoff))  # full jitter
                else:
                    await self._mark(key, f"sent:{self.clock()}", self._keep(ttl), cell, holds)
                    self._delivered(cell, kind, n, alerts, attempt + 1)
                    records.append(
                        {
                            "kind": "delivery",
                            "receiver": cell.id,
                            "channel": kind,
                            "outcome": "delivered",
                            "attempts": attempt + 1,
                            "notification_id": n.notification_id,
                            "notification_kind": n.kind,
                            "alert_ids": [a["fingerprint"] for a in n.alerts],
                        }
                    )
                    return "delivered"
        now = self.clock()
        if now - first < self.config.give_up_s:
            await self._mark(
                key, f"failed:{first}", max(1, int(self.config.give_up_s + self.config.claim_s))
            )
            self._counter(self.metrics.notifications, cell.id, kind, "retrying").inc()
            records.append(
                {
                    "kind": "delivery",
                    "receiver": cell.id,
                    "channel": kind,
                    "outcome": "retrying",
                    "error": last,
                    "notification_id": n.notification_id,
                }
            )
            return "retry"
        self._counter(self.metrics.notifications, cell.id, kind, "failed").inc()
        self._counter(self.metrics.dlq, "delivery_failed").inc()
        await self.dlq(
            {
                "reason": "delivery_failed",
                "receiver": cell.id,
                "channel": kind,
                "message": last,
                "notification_id": n.notification_id,
                "alert_ids": [a["fingerprint"] for a in n.alerts],
            }
        )
        # given up for good, once dead-lettered (a crash before: dead-lettered again)
        await self._mark(key, f"sent:{self.clock()}", self._keep(ttl))
        records.append(
            {
                "kind": "delivery",
                "receiver": cell.id,
                "channel": kind,
                "outcome": "failed",
                "error": last,
                "notification_id": n.notification_id,
            }
        )
        return "done"

    async def _mark(
        self,
        key: str,
        value: str,
        ex: int,
        cell: Cell | None = None,
        holds: list[tuple[Alert, int]] | None = None,
    ) -> None:
        """Write one notification log mark, and the hold of ``holds`` by ``cell``, in
        one round trip shared with the other deliveries finishing meanwhile (both
        idempotent: a redelivered batch writes them again harmlessly)."""
        held: dict[str, dict[str, float]] = {}
        timers: dict[str, float] = {}
        if cell is not None and holds:
            self._hold(cell, holds, self.clock(), held, timers)

        def fill(p: Batch) -> None:
            p.set(key, value, ex=ex)
            self._hold_into(p, held, timers)

        await self._marks.write(fill)
        self._timers_set(min(timers.values(), default=None))

    def _keep(self, ttl: float) -> int:
        """How long Redis keeps a sent mark: its repeat interval, at least a day."""
        return int(max(ttl, 86400.0, self.config.give_up_s))

    def _delivered(
        self, cell: Cell, kind: str, n: Notification, alerts: list[Alert], attempts: int
    ) -> None:
        self._counter(self.metrics.notifications, cell.id, kind, "delivered").inc()
        now = time.time()
        latency = self._counter(self.metrics.latency, kind)
        pipeline = self._counter(self.metrics.pipeline_latency, kind)
        for a in alerts:
            latency.observe(max(0.0, now - a.starts_at.timestamp()))
            if a.trigger_published_ms:
                pipeline.observe(max(0.0, now - a.trigger_published_ms / 1000))

    async def _send(self, cell: Cell, channel: Any, n: Notification) -> None:
        if isinstance(channel, WebhookChannel):
            url = (channel.url or self.config.webhook_url).format(cell=cell.id)
            secret = self.secrets.webhook_secrets.get(cell.id)
            key = secret.encode() if secret else self.config.webhook_secret
            if self._http is None:
                self._http = HttpPool(limit_per_host=32)
            await webhook.deliver(self._http, url, n, key, self.config.timeout_s)
        elif isinstance(channel, EmailChannel):
            if self.config.smtp is None:
                raise DeliveryError("no SMTP server configured", retryable=False)
            await email_channel.deliver(self.config.smtp, n, channel.to)
        elif isinstance(channel, MatrixChannel):
            if self._matrix is None:
                raise DeliveryError("no Matrix homeserver configured", retryable=False)
            await self._matrix.deliver(channel.room_id, n)
        else:  # pragma: no cover - the cells model admits no other type
            raise DeliveryError(f"unknown channel {channel!r}", retryable=False)

    # escalation ---------------------------------------------------------
    async def escalate_due(self, limit: int = 256) -> int:
        """Escalate every unacknowledged alert whose cell's timeout passed."""
        due = await self._lease_due(self._esc, self.clock(), limit)
        await self._escalate_all(due)
        return len(due)

    async def _claim_both(
        self, now: float, groups: bool
    ) -> tuple[list[Any], list[Any], float | None]:
        """Lease due groups (unless not ``groups``) and due escalations in one
        round trip: (groups, escalations, the earliest timer left or None)."""

        def claims(p: Batch) -> None:
            if groups:
                self._claim_into_due(p, self._sched, now, 512)
            self._claim_into_due(p, self._esc, now, 256)

        replies = await self._pipe(claims)
        firsts = [float(r[1]) for r in replies if len(r) > 1]
        due = replies[0][0] if groups else []
        return due, replies[-1][0], min(firsts, default=None)

    async def _escalate_all(self, due: list[Any]) -> None:
        await asyncio.gather(*(self._escalate(text(m)) for m in due))

    async def _lease_due(self, schedule: str, now: float, limit: int) -> list[Any]:
        """Lease ``schedule``'s due members (one round trip) and return them."""
        [reply] = await self._pipe(lambda p: self._claim_into_due(p, schedule, now, limit))
        due: list[Any] = reply[0]
        return due

    def _claim_into_due(self, p: Batch, schedule: str, now: float, limit: int) -> None:
        """Queue the lease of ``schedule``'s due members; the reply is
        ``[members, earliest score left]`` (``[members]`` when none is left)."""
        self._eval(p, self._claim_due, [schedule], [now, now + self.config.lease_s, limit])

    async def _escalate(self, member: str) -> None:
        try:
            alert_id, seq_s, cell_id = member.split("|")
            inc = pairs(await self.redis.hgetall(self._ak(alert_id, "incident")))
            cell = self.cells.by_id.get(cell_id)
            up = self.cells.by_id.get(cell.escalate_to or "") if cell else None
            if (
                up is None
                or inc.get("seq") != seq_s
                or inc.get("state") != "open"
                or inc.get("acked_by")
            ):
                await self.redis.zrem(self._esc, member)
                return
            raw = await self.redis.get(self._ak(alert_id, "alert"))
            if raw is None:
                await self.redis.zrem(self._esc, member)
                return
            alert = Alert.model_validate_json(raw)
            seq = int(seq_s)
            n = Notification(
                receiver=up.id,
                group_key=f"escalation:{alert_id}",
                group_labels={k: v for k, v in alert.labels.items() if k in POINTER_LABELS},
                alerts=[view(alert, up, self.cells, seq)],
                notification_id=hashlib.sha256(
                    f"esc:{alert_id}:{seq}:{up.id}".encode()
                ).hexdigest()[:32],
                kind="escalation",
                extra={"escalatedFrom": cell_id},
            )
            outcome = await self._deliver_all(
                up, n, f"a:{alert_id}", f"esc:{seq}", self.config.nflog_ttl_s, [alert]
            )
            if outcome == "retry":
                await self.redis.zadd(self._esc, {member: self.clock() + self.config.redeliver_s})
                return
            if outcome == "delivered":
                self.metrics.escalations.labels(up.id).inc()
                await self.audit(
                    {
                        "kind": "escalation",
                        "alert_id": alert_id,
                        "incident": seq,
                        "from": cell_id,
                        "to": up.id,
                    }
                )
            await self._register(up, [(alert, seq)])
            await self.redis.zrem(self._esc, member)
        except Exception:  # the lease retries it
            log.exception("escalation failed")

    # API actions ----------------------------------------------------------
    async def holds(self, cell: str, alert_id: str) -> bool:
        return await self.redis.zscore(self._ck(cell, "alerts"), alert_id) is not None

    async def acknowledge(self, cell: str, alert_id: str) -> dict[str, Any] | None:
        """Acknowledge the open incident of ``alert_id``; ``None`` if the cell does not hold it."""
        if not await self.holds(cell, alert_id):
            return None
        key = self._ak(alert_id, "incident")
        now = self.clock()
        inc = pairs(await self.redis.hgetall(key))
        if inc.get("state") == "open" and not inc.get("acked_by"):
            await self.redis.hset(key, mapping={"acked_by": cell, "acked_at": str(now)})
            self.metrics.acks.labels(cell).inc()
            await self.audit(
                {
                    "kind": "acknowledgement",
                    "alert_id": alert_id,
                    "cell": cell,
                    "incident": int(inc.get("seq", "1")),
                }
            )
            inc.update(acked_by=cell, acked_at=str(now))
        return inc

    async def resolve(self, cell: str, alert_id: str) -> dict[str, Any] | None:
        """Close the incident by hand; ``None`` if not held by the cell.

        Stops escalation and takes the alert out of its groups: their later
        notifications (group_interval, repeat_interval) no longer carry it, and a
        group it leaves empty is dropped. A later firing of the alert is a new
        incident and joins its groups again.
        """
        if not await self.holds(cell, alert_id):
            return None
        key = self._ak(alert_id, "incident")
        inc = pairs(await self.redis.hgetall(key))
        if inc.get("state") == "open":
            await self.redis.hset(
                key,
                mapping={
                    "state": "resolved",
                    "resolved_by": cell,
                    "resolved_at": str(self.clock()),
                },
            )
            await self.redis.hdel(self._firing, alert_id)
            await self._ungroup(alert_id)
            await self.audit(
                {
                    "kind": "resolution",
                    "alert_id": alert_id,
                    "cell": cell,
                    "incident": int(inc.get("seq", "1")),
                }
            )
            inc.update(state="resolved", resolved_by=cell)
        return inc

    async def _ungroup(self, alert_id: str) -> None:
        """Remove the alert from the groups its labels route it to."""
        raw = await self.redis.get(self._ak(alert_id, "alert"))
        if raw is None:
            return
        labels = Alert.model_validate_json(raw).labels
        gids = [group_id(route, labels)[0] for route in self.routing.match(labels)]

        def remove(p: Batch) -> None:
            for gid in gids:
                self._eval(
                    p,
                    self._group_remove,
                    [self._gk(gid, "alerts"), self._gk(gid, "meta")],
                    [alert_id],
                )

        await self._pipe(remove)

    async def list_alerts(self, cell_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The cell's own alerts (newest first), as the cell may see them."""
        cell = self.cells[cell_id]
        ids = [
            text(i) for i in await self.redis.zrevrange(self._ck(cell_id, "alerts"), 0, limit - 1)
        ]
        out = []
        for alert_id in ids:
            async with self.redis.pipeline(transaction=False) as p:
                p.get(self._ak(alert_id, "alert"))
                p.hgetall(self._ak(alert_id, "incident"))
                raw, inc_raw = await p.execute()
            if raw is None:
                continue
            inc = pairs(inc_raw)
            alert = Alert.model_validate_json(raw)
            v = view(alert, cell, self.cells, int(inc.get("seq", "1")))
            v["state"] = inc.get("state", "open")
            v["acknowledgedBy"] = inc.get("acked_by")
            out.append(v)
        return out

    async def count_silences(self) -> int:
        async with self.redis.pipeline(transaction=False) as p:
            for cid in self.cells.by_id:
                p.scard(self._ck(cid, "silences"))
            counts = await p.execute()
        return int(sum(counts))

    # loop -------------------------------------------------------------------
    async def run(self, idle_s: float = 0.5) -> None:
        """Flush due groups and escalate due alerts until cancelled.

        Each pass leases what is due on both schedules and reads their earliest
        timer (one round trip), then sleeps until that timer, ``idle_s`` at
        most (timers another replica set, leases that ended), or until woken:
        this replica scheduled a group earlier than that, or a flush slot freed
        while due groups waited for one. Redis errors are logged and retried.
        """
        last_gauge = 0.0
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # a library swallowed our cancellation (asyncio.wait_for in 3.11): stop anyway
                raise asyncio.CancelledError
            self.wake.clear()
            self._passing, self._noted = True, math.inf
            now = self.clock()
            wake_at = now + idle_s
            claimed = False
            try:
                # Batches run side by side, so a hanging receiver holds up only its batch.
                room = len(self._inflight) < self.config.batches
                self._starved = not room
                due, late, first = await self._claim_both(now, room)
                if first is not None:
                    wake_at = min(wake_at, first)
                if due:
                    gids = [text(g) for g in due]
                    self._spawn(self._flush_batch_safe(gids, now + self.config.lease_s))
                if late:
                    await self._escalate_all(late)
                claimed = bool(due or late)
                if time.monotonic() - last_gauge > 15:
                    last_gauge = time.monotonic()
                    self.metrics.silences.set(await self.count_silences())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flush loop error")
                await asyncio.sleep(1.0)
            self._passing = False
            if claimed:
                continue  # more may be due (limits)
            wake_at = self._wake_at = min(wake_at, self._noted)
            delay = wake_at - self.clock()
            if delay > 0 and not self.wake.is_set():
                # asyncio.timeout, not wait_for: wait_for may swallow a cancellation
                # that lands as the event fires (Python 3.11), and the loop never ends
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
