"""Redis pipelines with raw replies: the services' hot path to Redis.

Notify costs a few Redis commands per alert (incident, group, notification
log, marks) and ingest one per event (its dedup mark), sent as one pipeline
per batch. :class:`Pipelines` is a thin layer over redis-py on the service's
client (see :mod:`shared.redis`). On a Redis Cluster it is redis-py's cluster
pipeline (``transaction=False``): split by node (one round trip per node,
sent concurrently), MOVED/ASK redirections and failovers followed by redis-py.
On a single Redis it takes one of its idle redis-py connections (or makes
one as the client's pool would), writes the batch (packed by hiredis) and
reads one reply per command with redis-py's hiredis parser, under one
timeout for the batch (docs/benchmarks.md: what redis-py's own pipeline
costs). No protocol code here: connections, handshakes, packing and parsing
are redis-py's and hiredis'.

:meth:`Pipelines.execute` returns one reply per command, raw RESP2 (bytes,
integers, ``None``, nested lists: ``HGETALL`` is a flat list, see
:func:`pairs`; no redis-py reply callbacks), or raises the first command
error once the whole pipeline ran: ``NoScriptError`` for ``NOSCRIPT``,
``ResponseError`` otherwise (the other commands ran). A lost connection or a
timeout raises ``redis.ConnectionError`` or ``redis.TimeoutError`` (both
``RedisError``) at once: nothing here retries, the caller retries the whole
(idempotent) pipeline with :func:`shared.retry.retry`. On a cluster, every
script call's keys must share one hash slot, and a command with keys of
several slots raises ``RedisClusterException`` before anything is sent.

:class:`GroupCommit` puts many callers' writes (replies unread) in one
pipeline: while one is in flight, the writes given meanwhile go in the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection as Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.redis import raw_twin

__all__ = [
    "Batch",
    "Command",
    "Executor",
    "GroupCommit",
    "Pipelines",
    "PoolPipelines",
    "pairs",
    "pipelines_for",
    "text",
    "values",
]

Command = tuple[Any, ...]


class Executor(Protocol):
    """Runs a pipeline: :class:`Pipelines`, or a test double."""

    async def execute(self, commands: list[Command]) -> list[Any]: ...


class Batch(list[Command]):
    """Commands for one pipeline, queued with redis-py's argument conventions."""

    def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> None:
        self.append(("EVALSHA", sha, len(keys), *keys, *args))

    def zadd(self, key: str, mapping: dict[str, float], nx: bool = False) -> None:
        flat = [x for member, score in mapping.items() for x in (score, member)]
        self.append(("ZADD", key, "NX", *flat) if nx else ("ZADD", key, *flat))

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.append(("HSET", key, *[x for item in mapping.items() for x in item]))

    def hdel(self, key: str, *fields: str) -> None:
        self.append(("HDEL", key, *fields))

    def hgetall(self, key: str) -> None:
        self.append(("HGETALL", key))

    def set(self, key: str, value: str, ex: int) -> None:
        self.append(("SET", key, value, "EX", ex))

    def set_nx_get(self, key: str, value: str, ex: int) -> None:
        """Set ``key`` only if absent; the reply is its previous value, ``None``
        when this call set it (Redis 7.0+, Valkey)."""
        self.append(("SET", key, value, "NX", "GET", "EX", ex))

    def delete(self, *keys: str) -> None:
        self.append(("DEL", *keys))


def values(reply: list[Any] | dict[Any, Any]) -> list[Any]:
    """The values of an ``HGETALL`` reply: a flat list (RESP2) or a mapping
    (RESP3, or a client with reply callbacks)."""
    return list(reply.values()) if isinstance(reply, dict) else reply[1::2]


def text(reply: Any) -> str:
    """A reply as ``str``: bytes decoded (raw replies, redis-py), anything
    else as ``str()`` gives it (a client that decodes its replies, an integer)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def pairs(reply: list[Any] | dict[Any, Any]) -> dict[str, str]:
    """An ``HGETALL`` reply (see :func:`values`) as a str → str mapping."""
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    it = iter(reply)
    return {text(k): text(v) for k, v in zip(it, it, strict=True)}


class Pipelines:
    """Pipelines on the server(s) of a redis-py client (see the module docstring)."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        """``client``: from :func:`shared.redis.create_redis`. The pipelines have
        their own connections (made as the client's pool makes them: same
        address, credentials, database, TLS); close them with :meth:`aclose`."""
        self.client = raw_twin(client)
        #: A single Redis: connected redis-py connections, free for the next batch.
        self._idle: list[Connection] = []
        self._timeout: float | None = None
        if isinstance(self.client, aioredis.Redis):
            pool = self.client.connection_pool
            # the batch's timeout covers writes and reads: none per socket operation
            # (redis-py wraps each write in a wait_for task when it has one)
            kwargs = {**pool.connection_kwargs, "socket_timeout": None}
            self._make = partial(pool.connection_class, **kwargs)
            self._timeout = pool.connection_kwargs.get("socket_timeout")
            # at most as many connections as the client's pool: callers wait beyond
            self._slots = asyncio.Semaphore(getattr(pool, "max_connections", 32))

    @classmethod
    def for_client(cls, client: aioredis.Redis | RedisCluster) -> Pipelines:
        """Pipelines to the server(s) ``client`` talks to."""
        return cls(client)

    async def execute(self, commands: list[Command]) -> list[Any]:
        """Run ``commands`` in order, in one round trip per node; their raw replies."""
        if not commands:
            return []
        if isinstance(self.client, RedisCluster):
            async with self.client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute())
        async with self._slots:
            replies = await self._on_one_connection(commands)
        return _raise_first(commands, replies)

    async def _on_one_connection(self, commands: list[Command]) -> list[Any]:
        """A single Redis: what redis-py's pipeline does (a connection, the commands
        packed in one write, one reply read per command) without its layers (see
        the module docstring): an idle connection of ours instead of a checkout
        from the blocking pool (its lock, condition and checks cost a third of a
        small batch), one timeout for the batch instead of one per reply.

        A timeout or a cancellation closes the connection (its late replies are
        nobody's); a lost connection closes every idle one too (the server
        restarted, or dropped them all: the next batch connects afresh)."""
        conn = self._idle.pop() if self._idle else self._make()
        replies: list[Any] = []
        try:
            async with asyncio.timeout(self._timeout):
                await conn.connect()  # type: ignore[no-untyped-call]  # no-op when connected
                # one bytes string: redis-py's pack_commands re-chunks it in Python
                packed = [chunk for command in commands for chunk in conn.pack_command(*command)]
                await conn.send_packed_command(b"".join(packed))
                for _ in commands:
                    try:  # no timeout per reply: the batch's covers them all
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # read on: the other replies follow
                        replies.append(exc)
        except TimeoutError:
            await conn.disconnect()
            raise RedisTimeoutError("Timeout reading from Redis") from None
        except RedisConnectionError:
            await conn.disconnect()
            await self._close_idle()
            raise
        except BaseException:
            await conn.disconnect()
            raise
        self._idle.append(conn)
        return replies

    async def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()

    async def aclose(self) -> None:
        """Close the pipelines' connections; batches still running fail."""
        await self._close_idle()
        if isinstance(self.client, RedisCluster):
            await self.client.aclose()


#: The name notify and its tests used for redis-py's pool path; one path now.
PoolPipelines = Pipelines


def _raise_first(commands: list[Command], replies: list[Any]) -> list[Any]:
    """``replies``, or the first command error among them, worded as redis-py's
    pipelines word it (``NoScriptError`` stays a ``NoScriptError``)."""
    for i, reply in enumerate(replies):
        if isinstance(reply, ResponseError):
            name = " ".join(str(a) for a in commands[i][:2])[:80]
            msg = reply.args[0] if reply.args else type(reply).__name__
            reply.args = (f"Command # {i + 1} ({name}) of pipeline caused error: {msg}",)
            raise reply
    return replies


class GroupCommit:
    """Writes whose replies nobody reads (``SET``, ``ZADD``), many callers' in one
    pipeline: while a pipeline is in flight, what callers give waits and goes in
    the next one (one round trip for every write of a burst, whatever its size).

    :meth:`write` returns once Redis has run its commands, or raises what their
    pipeline raised (every caller of that pipeline gets the error). ``execute``
    runs one batch (a retrying, NOSCRIPT-reloading executor is the caller's
    choice). :meth:`close` fails the writes not yet sent with ``ConnectionError``.
    """

    def __init__(self, execute: Callable[[Batch], Awaitable[object]]) -> None:
        self._execute = execute
        self._next: tuple[Batch, asyncio.Future[None]] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def write(self, fill: Callable[[Batch], None]) -> None:
        """Queue the commands ``fill`` adds; wait until Redis has run them."""
        if self._next is None:
            self._next = (Batch(), asyncio.get_running_loop().create_future())
        batch, done = self._next
        fill(batch)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(done)  # a cancelled caller leaves its writes to the others

    async def _drain(self) -> None:
        try:
            while self._next is not None:
                batch, done = self._next
                self._next = None
                try:
                    await self._execute(batch)
                except asyncio.CancelledError:
                    _fail(done, RedisConnectionError("GroupCommit closed"))
                    raise
                except Exception as exc:
                    _fail(done, exc)
                else:
                    done.set_result(None)
        finally:
            self._writer = None

    async def close(self) -> None:
        """Stop writing; callers still waiting get ``ConnectionError``."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._next is not None:
            _, done = self._next
            self._next = None
            _fail(done, RedisConnectionError("GroupCommit closed"))


def _fail(done: asyncio.Future[None], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)
        done.exception()  # retrieved, even if every caller gave up waiting


def pipelines_for(client: aioredis.Redis | RedisCluster) -> Pipelines:
    """Pipelines to the server(s) ``client`` talks to."""
    return Pipelines(client)
