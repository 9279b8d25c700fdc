"""hiredis packing gives redis-py's bytes, and refuses what redis-py refuses."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import DataError

from shared.redis import _Connection, create_redis

CASES = [
    ("PING",),
    ("SET", "vigie:{g}:k", "é-value", "EX", 60),
    ("SCRIPT LOAD", "return 1"),
    (b"EVALSHA", "abc", 2, "k1", b"k2", 3.5, "x" * 10_000, b"\x00\xff"),
    # str/bytes/int only: packed without the encoder
    ("EVALSHA", "abc", 2, "vigie:{t}:k1", "vigie:{t}:k2", '[[0,"é"]]', 500, -7, b"\x00"),
]


@pytest.mark.parametrize("args", CASES)
def test_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    ours = b"".join(_Connection().pack_command(*args))
    theirs = b"".join(aioredis.Connection().pack_command(*args))
    assert ours == theirs


def test_refused_types_still_raise() -> None:
    with pytest.raises(DataError):
        _Connection().pack_command("SET", "k", None)
    with pytest.raises(DataError):
        _Connection().pack_command("SET", "k", True)


def test_tcp_clients_use_it() -> None:
    client = create_redis("redis://127.0.0.1:1/0")
    assert client.connection_pool.connection_class is _Connection
    tls = create_redis("rediss://127.0.0.1:1/0")
    assert tls.connection_pool.connection_class is not _Connection
