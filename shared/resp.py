"""Redis pipelines on one shared connection: the services' hot path to Redis.

Notify costs a few Redis commands per alert (incident, group, notification
log, marks) and ingest one per event (its dedup mark), sent as one pipeline
per batch. redis-py spends most of its
time per command around the bytes: a pooled connection per pipeline, an
encoder call per argument, and per reply a read with its own timeout. Here a
pipeline is packed by hiredis (C) in one call per command, written in one
``write`` and its replies parsed by hiredis as they arrive; callers share one
connection (RESP answers in order, so each caller takes its own count of
replies from the head of a queue) and none waits for a connection.

:class:`Pipelines` behaves like ``redis.asyncio`` pipelines with
``transaction=False`` for what the services use:

* :meth:`Pipelines.execute` returns one reply per command, raw RESP2 (bytes,
  integers, ``None``, nested lists: ``HGETALL`` is a flat list, see
  :func:`pairs`), or
  raises the first command error: ``NoScriptError`` for ``NOSCRIPT``,
  ``ResponseError`` otherwise (the other commands of the pipeline ran).
* A lost connection or a timeout raises ``redis.ConnectionError`` or
  ``redis.TimeoutError`` (both ``RedisError``) after ``retries`` new tries on
  a new connection with :func:`shared.retry.retry`'s capped exponential
  backoff: callers give only pipelines that are safe to run twice. A timeout
  closes the connection (late replies must not be taken by the next caller).
* A caller cancelled while it waits leaves its replies to be read and dropped.

:class:`GroupCommit` puts many callers' writes (replies unread) in one
pipeline: while one is in flight, the writes given meanwhile go in the next.

Only plain TCP ``redis://`` clients get the shared connection; for TLS or
Unix sockets :func:`pipelines_for` gives the same interface on the client's
own pool (redis-py pipelines, replies left raw).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.retry import retry

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
    """Runs a pipeline: :class:`Pipelines` or :class:`PoolPipelines`."""

    async def execute(self, commands: list[Command]) -> list[Any]: ...


@dataclass
class _Waiter:
    count: int
    future: asyncio.Future[list[Any]]
    replies: list[Any] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    """One connection: requests written in order, replies handed out in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[_Waiter] = deque()
        self.closed = False
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise hiredis.ProtocolError("a reply nobody asked for")
                head = self.waiting[0]
                head.replies.append(reply)
                if len(head.replies) == head.count:
                    self.waiting.popleft()
                    if not head.future.done():  # else cancelled: its replies are dropped
                        head.future.set_result(head.replies)
        except hiredis.ProtocolError as exc:
            self.close(RedisConnectionError(f"Redis protocol error: {exc}"))

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(RedisConnectionError("Connection closed by server."))

    def request(self, data: bytes, count: int) -> asyncio.Future[list[Any]]:
        if self.closed:  # lost before the caller's turn (it waited for the connect)
            raise RedisConnectionError(f"Connection closed: {self.lost}")
        assert self.transport is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiter(count, future))
        self.transport.write(data)
        return future

    def close(self, exc: Exception) -> None:
        """Close and fail every caller still waiting with ``exc``."""
        if not self.closed:
            self.closed = True
            self.lost = exc
            if self.transport is not None:
                self.transport.abort()
        while self.waiting:
            w = self.waiting.popleft()
            if not w.future.done():
                w.future.set_exception(exc)


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
    """The values of an ``HGETALL`` reply: a flat list (RESP2, :class:`Pipelines`)
    or a mapping (RESP3, which redis-py may speak in :class:`PoolPipelines`)."""
    return list(reply.values()) if isinstance(reply, dict) else reply[1::2]


def text(reply: Any) -> str:
    """A reply as ``str``: bytes decoded (:class:`Pipelines`, redis-py), anything
    else as ``str()`` gives it (a client that decodes its replies, an integer)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def pairs(reply: list[Any] | dict[Any, Any]) -> dict[str, str]:
    """An ``HGETALL`` reply (see :func:`values`) as a str → str mapping."""
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    it = iter(reply)
    return {text(k): text(v) for k, v in zip(it, it, strict=True)}


def _unless_refused(_attempt: int, exc: BaseException) -> None:
    """A refused login (an ``AuthenticationError`` is a ``ConnectionError``) is
    not retried: the same credentials would be refused again."""
    if isinstance(exc, AuthenticationError):
        raise exc


def _error(reply: hiredis.ReplyError, index: int) -> Exception:
    msg = str(reply)
    if msg.startswith("NOSCRIPT"):
        return NoScriptError(msg)
    return ResponseError(f"Command # {index + 1} of pipeline caused error: {msg}")


class Pipelines:
    """Pipelines on one connection to ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries = retries
        self._conn: _Conn | None = None
        self._connecting: asyncio.Future[_Conn] | None = None

    @classmethod
    def for_client(cls, client: aioredis.Redis) -> Pipelines | None:
        """Pipelines to the server ``client`` talks to; ``None`` unless plain TCP."""
        pool = client.connection_pool
        kind = pool.connection_class
        if not issubclass(kind, Connection) or issubclass(kind, SSLConnection):
            return None
        kw = pool.connection_kwargs
        if kw.get("protocol") not in (None, 2, "2") or kw.get("decode_responses"):
            return None
        return cls(
            host=str(kw.get("host", "localhost")),
            port=int(kw.get("port", 6379)),
            db=int(kw.get("db", 0) or 0),
            username=kw.get("username"),
            password=kw.get("password"),
            timeout=float(kw.get("socket_timeout") or 5.0),
            connect_timeout=float(kw.get("socket_connect_timeout") or 5.0),
        )

    async def execute(self, commands: list[Command]) -> list[Any]:
        """Run ``commands`` in order, in one round trip; their replies (see module)."""
        if not commands:
            return []
        data = b"".join([hiredis.pack_command(c) for c in commands])
        replies = await retry(
            lambda: self._run(data, len(commands)),
            self.retries + 1,
            retry_on=(RedisConnectionError, RedisTimeoutError),
            on_error=_unless_refused,
        )
        for i, reply in enumerate(replies):
            if isinstance(reply, hiredis.ReplyError):
                raise _error(reply, i)
        return replies

    async def _run(self, data: bytes, count: int) -> list[Any]:
        conn = await self._connection()
        future = conn.request(data, count)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            conn.close(RedisTimeoutError("Timeout reading from Redis"))
            raise RedisTimeoutError("Timeout reading from Redis") from None

    async def _connection(self) -> _Conn:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:  # one connect for every caller waiting
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Future[_Conn]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Conn, self.host, self.port)
                hello: list[Command] = []
                if self.password is not None:
                    hello.append(
                        ("AUTH", self.username, self.password)
                        if self.username
                        else ("AUTH", self.password)
                    )
                if self.db:
                    hello.append(("SELECT", self.db))
                if hello:
                    data = b"".join([hiredis.pack_command(c) for c in hello])
                    for reply in await conn.request(data, len(hello)):
                        if isinstance(reply, hiredis.ReplyError):
                            conn.close(RedisConnectionError(str(reply)))
                            raise AuthenticationError(str(reply))
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout connecting to {self.host}:{self.port}") from None
        except OSError as exc:
            raise RedisConnectionError(
                f"Error connecting to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        return conn

    async def aclose(self) -> None:
        """Close the connection; callers still waiting get ``ConnectionError``."""
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.close(RedisConnectionError("Pipelines closed"))
            self._conn = None


class PoolPipelines:
    """:meth:`Pipelines.execute` on a redis-py client's pool (TLS, Unix sockets):
    the same raw replies (no response callbacks) and errors."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = aioredis.Redis(connection_pool=client.connection_pool)
        self.client.response_callbacks.clear()

    async def execute(self, commands: list[Command]) -> list[Any]:
        if not commands:
            return []
        async with self.client.pipeline(transaction=False) as p:
            for c in commands:
                p.execute_command(*c)
            return list(await p.execute())

    async def aclose(self) -> None:
        """Nothing to close: the pool is the client's."""


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


def pipelines_for(client: aioredis.Redis) -> Pipelines | PoolPipelines:
    """The fastest pipelines to the server ``client`` talks to."""
    return Pipelines.for_client(client) or PoolPipelines(client)
