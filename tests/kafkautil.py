"""Helpers for tests that read or write topics directly (real broker)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=key, headers=headers)
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 20.0,
    settle: float = 1.0,
) -> list[Any]:
    """Every record of ``topic`` from the start; waits for ``expect`` records (or
    ``timeout``), then ``settle`` seconds more to catch extras."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if expect is not None and len(records) >= expect and settle_until is None:
                settle_until = now + settle
            if now > deadline or (settle_until is not None and now > settle_until):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
