"""shared.resp.GroupCommit: callers' writes share pipelines, one in flight at a time.

Pure coalescing logic: the executor here records the batches it is given (the
Redis side is covered by the notify dispatcher's integration tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.resp import Batch, GroupCommit


class Executor:
    def __init__(self) -> None:
        self.batches: list[list[tuple[object, ...]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, batch: Batch) -> None:
        self.batches.append(list(batch))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail


def setter(key: str) -> Callable[[Batch], None]:
    return lambda p: p.set(key, "v", ex=10)


async def in_flight(key: str) -> tuple[Executor, GroupCommit, asyncio.Task[None]]:
    """A GroupCommit whose executor holds its first pipeline (``key``) until the
    gate opens, and the write of that pipeline."""
    ex = Executor()
    ex.gate.clear()
    gc = GroupCommit(ex)
    task = asyncio.create_task(gc.write(setter(key)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [len(b) for b in ex.batches] == [1]
    return ex, gc, task


async def test_writes_given_while_a_pipeline_is_in_flight_go_together_in_the_next() -> None:
    ex, gc, first = await in_flight("a")
    rest = [asyncio.create_task(gc.write(setter(k))) for k in "bcd"]
    await asyncio.sleep(0)
    assert not first.done() and not any(t.done() for t in rest)
    ex.gate.set()
    await asyncio.gather(first, *rest)
    assert [[c[1] for c in b] for b in ex.batches] == [["a"], ["b", "c", "d"]]
    await gc.write(setter("e"))  # idle again: a new pipeline at once
    assert [c[1] for c in ex.batches[-1]] == ["e"]


async def test_every_caller_of_a_failed_pipeline_gets_its_error() -> None:
    ex = Executor()
    ex.fail = RedisConnectionError("down")
    gc = GroupCommit(ex)
    results = await asyncio.gather(
        *(gc.write(setter(k)) for k in "xy"),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [RedisConnectionError, RedisConnectionError]
    ex.fail = None
    await gc.write(setter("z"))  # the next pipeline goes on
    assert [c[1] for c in ex.batches[-1]] == ["z"]


async def test_a_cancelled_caller_leaves_its_writes_to_be_made() -> None:
    ex = Executor()
    ex.gate.clear()
    gc = GroupCommit(ex)
    task = asyncio.create_task(gc.write(setter("k")))
    other = asyncio.create_task(gc.write(setter("l")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ex.gate.set()
    await other
    assert [c[1] for c in ex.batches[0]] == ["k", "l"]


async def test_close_fails_the_writes_waiting() -> None:
    _, gc, sending = await in_flight("a")
    queued = asyncio.create_task(gc.write(setter("b")))
    await asyncio.sleep(0)
    await gc.close()
    for t in (sending, queued):
        with pytest.raises(RedisConnectionError):
            await t
