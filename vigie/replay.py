"""Publish inbound events from a JSON Lines file to ``agency.<agency>.events``.

Each line is one JSON object; its ``agency`` field picks the topic (or
``topic`` forces one topic for every line, e.g. to test the dead-letter path).
A malformed line is reported with its number, skipped and counted; the caller
exits non-zero at the end when any line was bad.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.kafka import unreachable
from shared.topics import AGENCIES, Topics


@dataclass
class ReplayResult:
    sent: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Line:
    number: int
    topic: str
    key: bytes | None
    value: bytes


def parse_lines(
    lines: Iterable[str], topics: Topics, force_topic: str | None = None
) -> tuple[list[Line], list[tuple[int, str]]]:
    """Split a JSONL stream into publishable lines and (line number, reason) errors."""
    good: list[Line] = []
    bad: list[tuple[int, str]] = []
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            bad.append((number, f"not JSON ({getattr(exc, 'msg', exc)})"))
            continue
        if not isinstance(obj, dict):
            bad.append((number, "not a JSON object"))
            continue
        if force_topic:
            topic = force_topic
        else:
            agency = obj.get("agency")
            if agency not in AGENCIES:
                bad.append((number, f"unknown agency {agency!r}"))
                continue
            topic = topics.inbound(agency)
        key = str(obj.get("event_id", "")).encode() or None
        good.append(Line(number, topic, key, text.encode()))
    return good, bad


async def publish(
    bootstrap: str,
    lines: list[Line],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    options: Mapping[str, Any] | None = None,
    idempotence: bool = False,
) -> int:
    """Send every line, at ``rate`` lines/s when given; return how many were sent.

    ``acks=all``; ``idempotence``: no duplicate from the producer's own retries
    (Apache Kafka; Tansu refuses it). ``options``: the client's security
    arguments (:func:`shared.kafkaauth.client_options`). Raises
    :class:`BrokerUnreachable` when the broker does not answer or refuses the
    credentials, and the broker's error when a record cannot be delivered
    (e.g. ``TopicAuthorizationFailedError``).
    """
    options = options or {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        request_timeout_ms=10_000,
        acks="all",
        enable_idempotence=idempotence,
        **options,
    )
    try:
        await asyncio.wait_for(producer.start(), 10)
    except (TimeoutError, KafkaError, OSError) as exc:
        await producer.stop()
        raise unreachable(bootstrap, exc, options) from None
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        for line in lines:
            if rate:
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(line.topic, line.value, key=line.key))
            sent += 1
            if progress is not None:
                progress(1)
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def read_file(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()
