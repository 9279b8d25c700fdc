"""Ingest's decisions for a batch, with its store and senders as arguments.

:class:`IngestHandler` has the two halves of a batch that
:class:`~shared.flow.GroupFlusher` runs: :meth:`~IngestHandler.decide` (CPU
only: :func:`.pipeline.process` on every message) and
:meth:`~IngestHandler.flush` (I/O: one dedup round trip, the events to
``vigie.events.v1``, the refusals to ``vigie.events.dlq``). It knows neither
Faust nor Redis: the dedup store (``mark(items) -> [Seen]``) and the sender
(``send(topic, records)``) are given, so tests run it on in-memory fakes.

Failure behaviour, per flush:

* dedup or the events' publication still failing after ``retries`` attempts:
  the messages concerned are dead-lettered with reason ``internal_error``;
* the dead-letter send still failing after ``retries`` attempts: the messages
  are counted in ``vigie_ingest_dead_letter_failed_total`` (an alert) and
  :class:`DeadLetterFailed` is raised, so the flusher does not ack the batch:
  the consumer never commits past those messages, which are read again after
  a restart or rebalance (not lost).

Every message is counted once as consumed, then once as published, rejected
(by reason), duplicate, or dead-letter-failed: the counters reconcile.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from services.ingest.deadletter import encode
from services.ingest.dedup import Seen
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import Accepted, Refused, Source, TokenCache, process
from services.ingest.settings import IngestSettings
from services.ingest.validate import Rejection
from shared.kafka import Record
from shared.metrics import children
from shared.retry import retry
from shared.topics import Topics

log = logging.getLogger("vigie.ingest")


class Dedup(Protocol):
    """The dedup store: one verdict per ``(agency, event_id, coordinates)``."""

    def mark(self, items: list[tuple[str, str, str]]) -> Awaitable[list[Seen]]: ...


class Sender(Protocol):
    """Publishes records to a topic and returns once the broker has them all."""

    def send(self, topic: str, records: Iterable[Record]) -> Awaitable[int]: ...


class DeadLetterFailed(RuntimeError):
    """Dead-letter records could not be sent: the batch must not be acked."""


def headers_of(msg: Any) -> list[tuple[str, bytes]] | None:
    """A Kafka message's headers as ``(name, bytes)`` pairs (``None`` when none)."""
    raw = msg.headers
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v or b"")) for k, v in items]


def _key_of(msg: Any) -> bytes | None:
    key = getattr(msg, "key", None)
    return key if isinstance(key, bytes) else None


class Out(NamedTuple):
    """An accepted message, ready to publish."""

    label: str
    key: bytes
    body: bytes
    dedup: tuple[str, str, str]
    raw: bytes | None
    source: Source
    headers: list[tuple[str, bytes]] | None
    now: datetime
    msg_key: bytes | None

    def refuse(self, rejection: Rejection) -> Refused:
        """This message's dead-letter record for ``rejection``."""
        return Refused.of(self.raw, self.source, rejection, self.now, self.headers, self.msg_key)


class Decided(NamedTuple):
    """What a batch's CPU half decided: (label, out) accepted, (label, record) refused."""

    accepted: list[Out]
    refused: list[tuple[str, Refused]]


def refuse_all(
    batch: Sequence[Any], topics: Topics, now: datetime, why: str
) -> list[tuple[str, Refused]]:
    """(agency label, dead-letter record) for every message of a batch that could
    not be decided (a bug): reason ``internal_error``, original bytes, key and
    headers kept, so nothing is dropped silently."""
    rej = Rejection("internal_error", why)
    out = []
    for ev in batch:
        msg = ev.message
        agency = topics.agency_of(msg.topic)
        source = Source(msg.topic, msg.partition, msg.offset, None, agency)
        raw = ev.value if isinstance(ev.value, bytes) else None
        refused = Refused.of(raw, source, rej, now, headers_of(msg), _key_of(msg))
        out.append((agency or "unknown", refused))
    return out


class IngestHandler:
    """Decide and flush ingest's batches (see the module docstring)."""

    def __init__(
        self,
        settings: IngestSettings,
        pseudo: TokenCache,
        dedup: Dedup,
        sender: Sender,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.pseudo = pseudo
        self.dedup = dedup
        self.sender = sender
        self.metrics = metrics
        self.topics = Topics(settings.topic_prefix)
        #: The dead-letter topic's size cap (bytes); lowered to the broker's
        #: ``max.message.bytes`` for the topic when the worker learns it.
        self.dlq_cap = settings.dlq_max_bytes
        self._tolerance = timedelta(seconds=settings.future_tolerance_s)
        self._agency_of: dict[str, tuple[str | None, str]] = {}
        self._consumed = children(metrics.consumed)
        self._published = children(metrics.published)
        self._duplicates = children(metrics.duplicates)
        self._rejected = children(metrics.rejected)
        self._dl_failed = children(metrics.dead_letter_failed)

    def _label(self, topic: str) -> tuple[str | None, str]:
        known = self._agency_of.get(topic)
        if known is None:
            agency = self.topics.agency_of(topic)
            known = self._agency_of[topic] = (agency, agency or "unknown")
        return known

    def decide(self, batch: Sequence[Any]) -> Decided:
        """The CPU half: :func:`.pipeline.process` on each event (``.message``,
        ``.value``). Never raises: a bug dead-letters the whole batch."""
        now = datetime.now(UTC)
        try:
            return self._decide(batch, now)
        except Exception as exc:  # a bug: keep the worker alive, dead-letter the batch
            log.exception("batch failed", extra={"n": len(batch)})
            refused = refuse_all(batch, self.topics, now, f"{type(exc).__name__} while deciding")
            for label, n in Counter(label for label, _ in refused).items():
                self._consumed(label).inc(n)
            return Decided([], refused)

    def _decide(self, batch: Sequence[Any], now: datetime) -> Decided:
        decided = Decided([], [])
        observe = self.metrics.processing.observe
        per_label: Counter[str] = Counter()
        s, clock = self.settings, time.perf_counter
        for ev in batch:
            msg, started = ev.message, clock()
            agency, label = self._label(msg.topic)
            ts = int(msg.timestamp * 1000) if msg.timestamp else None
            source = Source(msg.topic, msg.partition, msg.offset, ts, agency)
            headers, raw = headers_of(msg), ev.value
            outcome = process(
                raw, source, self.pseudo, now, s.max_message_bytes, self._tolerance, headers
            )
            key = _key_of(msg)
            if isinstance(outcome, Accepted):
                coords = f"{msg.topic}/{msg.partition}/{msg.offset}"
                dedup = (outcome.agency, outcome.event_id, coords)
                decided.accepted.append(
                    Out(label, outcome.key, outcome.body, dedup, raw, source, headers, now, key)
                )
            else:
                decided.refused.append((label, dataclasses.replace(outcome, key=key)))
            per_label[label] += 1
            observe(clock() - started)
        for label, n in per_label.items():
            self._consumed(label).inc(n)
        return decided

    async def flush(self, group: list[Decided]) -> None:
        """The I/O half for every batch decided since the last flush. Raises
        :class:`DeadLetterFailed` when the dead letters cannot be sent."""
        accepted = [o for d in group for o in d.accepted]
        refused = [r for d in group for r in d.refused]
        if accepted:
            refused += await self._publish(accepted)
        await self.dead_letter(refused)

    async def _publish(self, accepted: list[Out]) -> list[tuple[str, Refused]]:
        """Dedup then publish; what cannot be is returned as ``internal_error``."""
        attempts = self.settings.retries
        items = [o.dedup for o in accepted]
        try:
            verdicts = await retry(lambda: self.dedup.mark(items), attempts)
        except Exception as exc:
            log.error("dedup unavailable", extra={"error": type(exc).__name__, "n": len(items)})
            return _internal(accepted, f"deduplication unavailable: {type(exc).__name__}")
        fresh = []
        for out, seen in zip(accepted, verdicts, strict=True):
            if seen is Seen.DUPLICATE:
                self._duplicates(out.label).inc()
            else:
                fresh.append(out)
        records: list[Record] = [(o.key, o.body, None) for o in fresh]
        try:
            await retry(lambda: self.sender.send(self.topics.events, records), attempts)
        except Exception as exc:
            return _internal(fresh, f"publish failed: {type(exc).__name__}")
        for label, n in Counter(o.label for o in fresh).items():
            self._published(label).inc(n)
        return []

    async def dead_letter(self, refused: list[tuple[str, Refused]]) -> None:
        """Send the dead-letter records (one produce batch), count and log them.
        Raises :class:`DeadLetterFailed` after ``retries`` failed attempts."""
        if not refused:
            return
        records = [encode(r, self.dlq_cap) for _, r in refused]
        try:
            await retry(
                lambda: self.sender.send(self.topics.events_dlq, records), self.settings.retries
            )
        except Exception as exc:
            for label, r in refused:
                self._dl_failed(label).inc()
                log.error(
                    "dead-letter send failed: not acked, will be read again",
                    extra={"reason": r.reason, "source": r.record["source"]},
                )
            raise DeadLetterFailed(f"dead-letter send failed: {type(exc).__name__}") from exc
        for label, r in refused:
            self._rejected(label, r.reason).inc()
            log.info(
                "rejected",
                extra={
                    "reason": r.reason,
                    "field": r.record["field"],
                    "source": r.record["source"],
                },
            )


def _internal(outs: list[Out], why: str) -> list[tuple[str, Refused]]:
    rej = Rejection("internal_error", why)
    return [(o.label, o.refuse(rej)) for o in outs]
