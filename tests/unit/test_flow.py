"""GroupFlusher: acks released only after the flush that covered them, in order, merged.
A lingering batch (take_batches) grows while events keep coming, and no longer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from shared.flow import GroupFlusher, _grow

ASSIGNED = TP("t", 0)


class _Consumer:
    """Records final acks, as Faust's consumer marks offsets committable."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.tps = {ASSIGNED}

    def assignment(self) -> set[TP]:
        return self.tps

    def ack(self, message: Any) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True


def _app() -> Any:
    return SimpleNamespace(
        consumer=_Consumer(),
        rebalancing=False,
        sensors=SimpleNamespace(on_message_out=lambda tp, offset, msg: None),
    )


def _events(offsets: range, partition: int = 0) -> list[Any]:
    out = []
    for o in offsets:
        msg = ConsumerMessage("t", partition, o, 0.0, 0, None, b"", b"", None)
        msg.incref()  # the stream's own reference (as Faust's conductor does)
        out.append(SimpleNamespace(message=msg))
    return out


def _stream_acks(app: Any, events: list[Any]) -> None:
    """What take_events does when the handler returns."""
    for ev in events:
        ev.message.ack(app.consumer)


async def test_acks_follow_the_flush_and_groups_merge() -> None:
    app = _app()
    flushed: list[list[str]] = []
    gate = asyncio.Event()

    async def flush(group: list[str]) -> None:
        flushed.append(group)
        await gate.wait()

    flusher: GroupFlusher[str] = GroupFlusher(app, flush)
    a, b, c = _events(range(0, 2)), _events(range(2, 4)), _events(range(4, 6))
    await flusher.put(a, "a")
    _stream_acks(app, a)
    await asyncio.sleep(0)  # the flush of "a" starts and waits on the gate
    await flusher.put(b, "b")
    _stream_acks(app, b)
    await flusher.put(c, "c")
    _stream_acks(app, c)
    assert app.consumer.acked == []  # nothing committable before its flush
    assert flusher.held == 6
    gate.set()
    await flusher.drain()
    assert flushed == [["a"], ["b", "c"]]  # what queued meanwhile is one flush, in order
    assert app.consumer.acked == [0, 1, 2, 3, 4, 5]
    assert flusher.held == 0
    await flusher.stop()


async def test_a_failed_flush_keeps_the_acks() -> None:
    app = _app()

    async def flush(group: list[str]) -> None:
        raise RuntimeError("boom")

    flusher: GroupFlusher[str] = GroupFlusher(app, flush)
    evs = _events(range(3))
    await flusher.put(evs, "x")
    _stream_acks(app, evs)
    await flusher.drain()
    assert app.consumer.acked == []
    assert flusher.held == 0
    await flusher.stop()


async def test_revoked_partition_and_rebalance_are_not_acked() -> None:
    app = _app()

    async def flush(group: list[str]) -> None:
        return None

    flusher: GroupFlusher[str] = GroupFlusher(app, flush)
    mine, theirs = _events(range(2)), _events(range(2), partition=1)
    await flusher.put(mine + theirs, "x")
    _stream_acks(app, mine + theirs)
    await flusher.drain()
    assert app.consumer.acked == [0, 1]  # partition 1 is not ours any more
    app.rebalancing = True
    more = _events(range(2, 4))
    await flusher.put(more, "y")
    _stream_acks(app, more)
    await flusher.drain()
    assert app.consumer.acked == [0, 1]
    await flusher.stop()


async def test_put_waits_when_too_much_is_held() -> None:
    app = _app()
    gate = asyncio.Event()

    async def flush(group: list[str]) -> None:
        await gate.wait()

    flusher: GroupFlusher[str] = GroupFlusher(app, flush, max_pending=3)
    await flusher.put(_events(range(2)), "a")
    blocked = asyncio.ensure_future(flusher.put(_events(range(2, 4)), "b"))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # 4 held > 3
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await flusher.drain()
    await flusher.stop()


async def _feed(buf: list[list[Any]], n: int) -> None:
    """Add ``n`` events, one per loop turn, as the stream's drainer does under load."""
    for i in range(n):
        buf[0].append(i)
        await asyncio.sleep(0)


async def test_a_lingering_batch_grows_until_events_stop_coming() -> None:
    buf: list[list[Any]] = [[-1]]
    feeder = asyncio.create_task(_feed(buf, 300))
    # a cap far away: only the pause after the last event ends the linger
    await asyncio.wait_for(_grow(buf, 10_000, 60.0), timeout=30)
    await feeder
    assert len(buf[0]) == 301


async def test_a_lingering_batch_stops_at_max() -> None:
    buf: list[list[Any]] = [[-1]]
    feeder = asyncio.create_task(_feed(buf, 1_000_000))
    try:
        await asyncio.wait_for(_grow(buf, 50, 60.0), timeout=30)
        assert 50 <= len(buf[0]) < 1_000_000
    finally:
        feeder.cancel()


async def test_a_lingering_batch_stops_at_the_cap() -> None:
    buf: list[list[Any]] = [[-1]]
    feeder = asyncio.create_task(_feed(buf, 100_000_000))
    try:
        await asyncio.wait_for(_grow(buf, 10**9, 0.05), timeout=30)
        assert 1 < len(buf[0]) < 100_000_000
    finally:
        feeder.cancel()


async def test_a_lone_event_is_not_held_past_one_step() -> None:
    buf: list[list[Any]] = [[-1]]
    await asyncio.wait_for(_grow(buf, 500, 60.0), timeout=30)
    assert buf[0] == [-1]


async def test_a_batch_does_not_linger_once_the_consumer_has_caught_up() -> None:
    buf: list[list[Any]] = [[-1]]
    # the last event is at the high watermark: the batch goes without a step
    await asyncio.wait_for(_grow(buf, 10**9, 60.0, lambda ev: False), timeout=30)
    assert buf[0] == [-1]
    feeder = asyncio.create_task(_feed(buf, 100_000_000))
    try:
        # behind until the batch's last event is the 200th fed, then caught up
        await asyncio.wait_for(_grow(buf, 10**9, 60.0, lambda ev: ev < 199), timeout=30)
        assert buf[0][-1] >= 199
    finally:
        feeder.cancel()


def test_behind_reads_the_partitions_high_watermark() -> None:
    from shared.flow import _lag_checker

    marks = {ASSIGNED: 10}
    app = SimpleNamespace(consumer=SimpleNamespace(highwater=marks.get))
    behind = _lag_checker(app)
    (at_8,) = _events(range(8, 9))
    (at_9,) = _events(range(9, 10))
    assert behind(at_8) and not behind(at_9)
    marks.clear()  # no watermark yet: counts as behind
    assert behind(at_9)
