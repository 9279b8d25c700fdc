"""Redis plumbing: a client factory, reachability check and key naming.

Every client uses a ``BlockingConnectionPool``: under load callers wait for a
connection instead of failing. Close clients with ``await client.aclose()``.
Do not share one client between event loops (Faust's web thread has its own).
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError


class RedisUnreachable(ConnectionError):
    """Redis did not answer; the message is one line naming the address."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


#: Argument types hiredis packs exactly as redis-py's encoder does (``bool`` is
#: not among them: the encoder refuses it; floats are written differently).
_PLAIN = frozenset((str, bytes, int))


class _Connection(aioredis.Connection):
    """redis-py's TCP connection, with commands packed by hiredis (C) instead of Python.

    Same bytes on the wire (arguments go through the connection's encoder
    first, so types it refuses still raise ``DataError``); a few µs less per
    command, which matters for the services' pipelines of hundreds of commands.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        if set(map(type, args)) <= _PLAIN:
            # str, bytes and int only (the services' keys, JSON and counts):
            # hiredis writes them as the encoder would, with no Python per argument
            return [hiredis.pack_command(args)]  # type: ignore[no-untyped-call]
        encode = self.encoder.encode
        packed: bytes = hiredis.pack_command(tuple(encode(a) for a in args))  # type: ignore[no-untyped-call]
        return [packed]


def create_redis(url: str, pool_size: int = 32, timeout: float = 5.0) -> aioredis.Redis:
    """A client on a blocking pool, retrying transient connection errors with backoff.

    Plain TCP URLs use :class:`_Connection` (hiredis packing); TLS and Unix
    socket URLs keep redis-py's own connection classes."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    if pool.connection_class is aioredis.Connection:
        pool.connection_class = _Connection
    return aioredis.Redis(connection_pool=pool)


async def check_redis(url: str, timeout: float = 3.0) -> None:
    """Return when Redis answers PING, else raise :class:`RedisUnreachable`."""
    client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except (TimeoutError, RedisError, OSError) as exc:
        raise RedisUnreachable(
            f"cannot reach Redis at {redact_url(url)}: {exc.__class__.__name__}"
        ) from None
    finally:
        await client.aclose()


class Keys:
    """Key names under a prefix.

    ``Keys("vigie").k("dedup", "police", "e1")`` gives ``vigie:dedup:police:e1``.

    Keys updated by one atomic script must share a hash tag (``{...}``) so the
    same script runs on Redis Cluster; :meth:`tagged` builds such keys.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def tagged(self, tag: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + tag + "}", *parts))
