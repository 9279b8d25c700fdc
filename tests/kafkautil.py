"""Helpers for tests that read or write topics directly (real broker).

Reads end on facts, never after a quiet period: :func:`consume_all` reads up to
the topic's end offsets (high watermarks), and :func:`wait_caught_up` waits
until a service's consumer group has committed everything written to its input
topics — after which whatever that service writes for those inputs is on the
broker, so "nothing more came" can be asserted without waiting for time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.topics import Topics
from tests.waiting import until

#: The topics each service consumes (its consumer group is ``<prefix>vigie-<name>``).
INPUTS: dict[str, Callable[[Topics], list[str]]] = {
    "ingest": lambda t: t.all_inbound,
    "correlate": lambda t: [t.events],
    "notify": lambda t: [t.alerts],
}


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Write ``values`` in order; each is acknowledged by every in-sync replica
    (so it is below the high watermark, visible to readers, once this returns)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=key, headers=headers)
    finally:
        await producer.stop()


@asynccontextmanager
async def _reader(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    # a producer waits for a new topic's metadata (a consumer would not refresh it)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return [TopicPartition(t, p) for t in topics for p in await producer.partitions_for(t)]
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The end offset (high watermark) of every partition of ``topics`` now."""
    tps = await _partitions(bootstrap, topics)
    async with _reader(bootstrap) as consumer:
        return dict(await consumer.end_offsets(tps))


async def consume_all(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 20.0,
) -> list[Any]:
    """Every record of ``topic`` from the start. With ``expect``, waits until at
    least ``expect`` records were read, then reads on up to the end offsets the
    topic has at that moment (so an extra record already written is returned,
    and a test comparing counts fails); without it, reads up to the end offsets
    of the call. Records written later are not waited for: wait first for the
    fact that their writer is done (:func:`wait_caught_up`). After ``timeout``
    seconds returns what it read (the caller's count assertion then fails)."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    tps = await _partitions(bootstrap, [topic])
    async with _reader(bootstrap) as consumer:
        ends = dict(await consumer.end_offsets(tps))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        waiting = expect is not None
        while time.monotonic() < deadline:
            if waiting and len(records) >= (expect or 0):
                ends, waiting = await consumer.end_offsets(list(ends)), False
            if not waiting and all([await consumer.position(tp) >= n for tp, n in ends.items()]):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    return records


async def committed(bootstrap: str, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The offsets consumer group ``group`` has committed on ``topics`` (-1: none).
    Read by a consumer of that group that joins nothing (no subscription)."""
    tps = await _partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offsets = {tp: await consumer.committed(tp) for tp in tps}
        return {tp: -1 if n is None else n for tp, n in offsets.items()}
    finally:
        await consumer.stop()


async def wait_caught_up(
    bootstrap: str, group: str, topics: Iterable[str], timeout: float = 60.0
) -> None:
    """Wait until consumer group ``group`` (a service: ``<prefix>vigie-<name>``)
    has committed, on every partition of ``topics``, the end offset it has at
    the call: the service has processed all that was written before. Faust
    flushes its producer before it commits, so the records the service wrote
    for those inputs are on the broker by then."""
    topics = list(topics)
    ends = {tp: n for tp, n in (await end_offsets(bootstrap, topics)).items() if n > 0}

    async def caught_up() -> bool:
        done = await committed(bootstrap, group, topics)
        return all(done[tp] >= n for tp, n in ends.items())

    await until(caught_up, timeout, f"group {group} committed {sorted(topics)} up to {ends}")


async def wait_services_caught_up(
    bootstrap: str,
    topics: Topics,
    services: Iterable[str] = ("ingest", "correlate"),
    timeout: float = 60.0,
) -> None:
    """:func:`wait_caught_up` for each of ``services`` in turn (list upstream
    first): once it returns, each has processed everything written to its input
    topics before (its own upstream's output included), and written its output."""
    for name in services:
        group = f"{topics.prefix}vigie-{name}"
        await wait_caught_up(bootstrap, group, INPUTS[name](topics), timeout)
