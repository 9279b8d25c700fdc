"""Redis plumbing: a client factory, reachability check and key naming.

``VIGIE_REDIS_URL`` names a single Redis (``redis://``, ``rediss://`` for TLS,
``unix://``) or a Redis Cluster: ``redis+cluster://host:port`` (``rediss+cluster://``
for TLS), the address of any one node; the client discovers the others and
follows the slot map (MOVED/ASK, failover: redis-py's ``RedisCluster``).

On a single Redis every client uses a ``BlockingConnectionPool``: under load
callers wait for a connection instead of failing. Close clients with ``await
client.aclose()``. Do not share one client between event loops (Faust's web
thread has its own).

Clients speak RESP2 (unless the URL asks ``?protocol=3``): the raw replies of
:mod:`shared.resp` keep one shape. Clients never retry by themselves (redis-py's
``Retry`` with 0 retries): a failed command raises at once, and the service
retries the whole idempotent batch with :func:`shared.retry.retry`, the one
retry policy (no retries inside retries). On a cluster, the error also makes
the client refresh its slot map before the next command, so the retry reaches
the promoted replica.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError


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


#: ``VIGIE_REDIS_URL`` schemes that name a Redis Cluster, and the plain scheme of each.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_seed(url: str) -> str | None:
    """The plain ``redis://`` (or ``rediss://``) URL of a cluster URL's node;
    ``None`` when ``url`` names a single Redis."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def is_cluster(client: object) -> bool:
    """Whether ``client`` (from :func:`create_redis`) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


#: How to make a raw twin of each cluster client :func:`create_redis` made
#: (see :func:`raw_twin`).
_TWINS: weakref.WeakKeyDictionary[RedisCluster, Callable[[], RedisCluster]] = (
    weakref.WeakKeyDictionary()
)

#: Reply callbacks a raw cluster client keeps: redis-py's own topology and
#: command-table reads need them parsed.
_MACHINERY = ("CLUSTER", "COMMAND")


def _cluster(seed: str, pool_size: int, timeout: float, raw: bool) -> RedisCluster:
    client = RedisCluster.from_url(
        seed,
        max_connections=pool_size,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=0),
        protocol=2,
    )
    if raw:
        callbacks = client.response_callbacks  # shared with every node the client adds
        for name in [n for n in callbacks if not n.upper().startswith(_MACHINERY)]:
            del callbacks[name]
    else:
        _TWINS[client] = lambda: _cluster(seed, pool_size, timeout, raw=True)
    return client


def create_redis(url: str, pool_size: int = 32, timeout: float = 5.0) -> aioredis.Redis:
    """A client for ``url`` that never retries (see the module docstring).

    A single Redis: a client on a blocking pool of ``pool_size`` connections;
    plain TCP URLs use :class:`_Connection` (hiredis packing), TLS and Unix
    socket URLs redis-py's own connection classes. A cluster URL: a
    ``RedisCluster`` (redis-py's connections; up to ``pool_size`` per node,
    beyond which a command raises ``MaxConnectionsError``), typed as
    ``Redis`` for the services, which use only commands both clients have
    (:func:`is_cluster` tells them apart). Raises ``ValueError`` on a URL
    redis-py cannot parse; connects lazily, on the first command."""
    seed = cluster_seed(url)
    if seed is not None:
        return cast(aioredis.Redis, _cluster(seed, pool_size, timeout, raw=False))
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), retries=0),
        protocol=2,
    )
    if pool.connection_class is aioredis.Connection:
        pool.connection_class = _Connection
    return aioredis.Redis(connection_pool=pool)


def raw_twin(client: aioredis.Redis | RedisCluster) -> aioredis.Redis | RedisCluster:
    """A client to the same server(s) whose replies are left raw (bytes, integers,
    flat lists: no redis-py reply callbacks). On a single Redis it shares
    ``client``'s pool (nothing to close); on a cluster it is a new cluster client
    with its own connections (close it). Raises ``ValueError`` for a cluster
    client that :func:`create_redis` did not make."""
    if isinstance(client, RedisCluster):
        make = _TWINS.get(client)
        if make is None:
            raise ValueError("a raw cluster client needs a client made by create_redis()")
        return make()
    twin = aioredis.Redis(connection_pool=client.connection_pool)
    twin.response_callbacks.clear()
    return twin


async def check_redis(url: str, timeout: float = 3.0) -> None:
    """Return when Redis (every node of a cluster) answers PING, else raise
    :class:`RedisUnreachable`."""
    client: aioredis.Redis | None = None
    try:
        client = create_redis(url, pool_size=2, timeout=timeout)
        await asyncio.wait_for(client.ping(), timeout)
    except (TimeoutError, RedisError, RedisClusterException, OSError, ValueError) as exc:
        raise RedisUnreachable(
            f"cannot reach Redis at {redact_url(url)}: {exc.__class__.__name__}"
        ) from None
    finally:
        if client is not None:
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
