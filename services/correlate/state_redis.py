"""Correlation state in Redis: :class:`RedisState`.

Sends a whole batch of ops (or claims) in one pipelined round trip, as a few
calls of the Lua scripts in :mod:`state_lua` (one per hash slot on a cluster),
reloading a script once if the server lost it, and decodes the pointers read
back (with a bounded cache). Redis errors propagate; every op is idempotent, so
the caller may retry the whole batch, and a claim retried after a failed call
is recognised by this state's token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from services.correlate.state_lua import _APPLY_LUA, _CLAIM_LUA
from services.correlate.state_ops import (
    MAX_READ,
    Claim,
    Obs,
    Op,
    Sink,
    WindowOp,
    _dumps,
    _first_key,
    key_slot_of,
    op_json,
    plan_calls,
)


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
