"""Publish inbound events from a JSON Lines file to ``agency.<agency>.events``.

Each line is one JSON object; its ``agency`` field picks the topic (or
``topic`` forces one topic for every line, e.g. to test the dead-letter path).
A malformed line is reported with its number, skipped and counted; the caller
exits non-zero at the end when any line was bad. A large file is read a chunk
at a time (:func:`stream_lines`), and a :class:`Checkpoint` records the last
line the broker acknowledged, so an interrupted replay resumes after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    lines: Iterable[str], topics: Topics, force_topic: str | None = None, first: int = 1
) -> tuple[list[Line], list[tuple[int, str]]]:
    """Split a JSONL stream into publishable lines and (line number, reason)
    errors; ``first``: the number of the first line."""
    good: list[Line] = []
    bad: list[tuple[int, str]] = []
    for number, text in enumerate(lines, start=first):
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
    lines: Iterable[Line],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    options: Mapping[str, Any] | None = None,
    idempotence: bool = False,
    delivered: Callable[[int], None] | None = None,
) -> int:
    """Send every line, at ``rate`` lines/s when given; return how many were sent.
    ``delivered(n)``: every line up to number ``n`` is acknowledged by the broker
    (called every 1,000 lines and at the end: a checkpoint).

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
                if delivered is not None:
                    delivered(line.number)
        await asyncio.gather(*pending)
        await producer.flush()
        if delivered is not None and sent and pending:
            delivered(line.number)
    finally:
        await producer.stop()
    return sent


def read_file(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def count_lines(path: Path) -> int:
    """Lines in a file, read in 1 MiB blocks (a million-line file in well under a second)."""
    n = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return n


def stream_lines(
    path: Path,
    topics: Topics,
    force_topic: str | None,
    bad: list[tuple[int, str]],
    after: int = 0,
    chunk: int = 10_000,
) -> Iterator[Line]:
    """The publishable lines of a large file, parsed ``chunk`` lines at a time
    (never the whole file in memory), skipping lines numbered ``after`` or less;
    bad lines are appended to ``bad``. Raises ``OSError``/``UnicodeDecodeError``."""
    with path.open(encoding="utf-8") as f:
        number = 0
        block: list[str] = []
        for text in f:
            number += 1
            if number <= after:
                continue
            block.append(text)
            if len(block) >= chunk:
                good, wrong = parse_lines(block, topics, force_topic, number - len(block) + 1)
                bad += wrong
                yield from good
                block = []
        good, wrong = parse_lines(block, topics, force_topic, number - len(block) + 1)
        bad += wrong
        yield from good


@dataclass(frozen=True)
class Checkpoint:
    """Where a replay of ``source`` got to: every line up to ``line`` delivered.

    Stored as JSON beside nothing else (written to a temporary file, then
    renamed: a crash leaves the previous checkpoint). A checkpoint of another
    file (path or size differ) is refused with ``ValueError``."""

    path: Path
    source: Path

    def _identity(self) -> dict[str, Any]:
        return {"file": str(self.source.resolve()), "size": self.source.stat().st_size}

    def load(self) -> int:
        """The last line delivered (0: none, or no checkpoint yet)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except ValueError:
            raise ValueError(f"{self.path}: not a replay checkpoint") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("line"), int):
            raise ValueError(f"{self.path}: not a replay checkpoint")
        if {k: doc.get(k) for k in ("file", "size")} != self._identity():
            raise ValueError(f"{self.path}: a checkpoint of another file ({doc.get('file')})")
        return int(doc["line"])

    def save(self, line: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({**self._identity(), "line": line}), encoding="utf-8")
        os.replace(tmp, self.path)
