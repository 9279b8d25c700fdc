"""Correlate's decisions for one worker, apart from Faust: a batch in, records out.

:class:`CorrelateHandler` takes its engine (rules, state, absence timers),
a ``send(topic, records)`` coroutine (the producer) and ``owned()`` (the
partitions of ``vigie.events.v1`` the worker owns), so it runs the same under
the Faust agent (:mod:`.app`) and in tests.

Per batch (:meth:`~CorrelateHandler.handle`): decode each event (undecodable →
``vigie.events.dlq`` with reason ``bad_normalized_event``), run the engine
(too late → ``vigie.events.late``), send the alerts to ``vigie.alerts.v1``
before the batch is acknowledged. A Redis error retries the whole batch (every
state op is idempotent) ``redis_attempts`` times, then dead-letters its events
with reason ``state_unavailable``; :meth:`~CorrelateHandler.run` never lets an
exception out (it dead-letters the batch with ``internal_error``: Faust would
ack and lose it). :meth:`~CorrelateHandler.fire_absences` publishes the
worker's watermark and sends the absence alerts due by the shared one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from pydantic import ValidationError

from services.correlate.absence import AbsenceStore
from services.correlate.engine import Engine
from services.correlate.eventtime import stream_of
from services.correlate.metrics import CorrelateMetrics
from services.correlate.settings import CorrelateSettings
from services.correlate.state import RedisState
from shared.kafka import Record
from shared.metrics import children
from shared.models import NormalizedEvent
from shared.retry import retry
from shared.topics import AGENCIES, Topics

log = logging.getLogger("vigie.correlate")

validate = NormalizedEvent.model_validate_json

#: ``send(topic, records)``: produce and await delivery.
Send = Callable[[str, list[Record]], Awaitable[object]]


def _source(ev: Any) -> dict[str, Any]:
    return {
        "topic": ev.message.topic,
        "partition": ev.message.partition,
        "offset": ev.message.offset,
    }


def _records(alerts: list[Any]) -> list[Record]:
    return [(a.alert_id.encode(), a.model_dump_json().encode(), None) for a in alerts]


class CorrelateHandler:
    """One worker's correlation: see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        state: RedisState,
        absences: AbsenceStore,
        send: Send,
        owned: Callable[[], list[int]],
        settings: CorrelateSettings,
        metrics: CorrelateMetrics,
        worker: str,
    ) -> None:
        self.engine, self.state, self.absences = engine, state, absences
        self.send, self.owned = send, owned
        self.settings, self.metrics, self.worker = settings, metrics, worker
        self.topics = Topics(settings.topic_prefix)
        self._alert_counter = children(metrics.alerts)
        #: every stream a partition of vigie.events.v1 may carry (see .eventtime)
        self.sources = [(a, i) for a in AGENCIES for i in range(settings.topic_partitions)]

    async def dead_letter(self, evs: list[tuple[Any, str, str]]) -> None:
        """Dead-letter ``(event, reason, message)`` triples in one produce call,
        delivery awaited."""
        records: list[Record] = [
            (
                None,
                json.dumps(
                    {
                        "reason": reason,
                        "message": message,
                        "source": _source(ev),
                        "original": ev.value.decode("utf-8", "replace"),
                    }
                ).encode(),
                None,
            )
            for ev, reason, message in evs
        ]
        await self.send(self.topics.events_dlq, records)

    def _count(self, alerts: list[Any]) -> None:
        for alert in alerts:
            self._alert_counter(alert.rule, alert.severity.value).inc()

    async def run(
        self, batch: list[Any], handle: Callable[[list[Any]], Awaitable[None]] | None = None
    ) -> None:
        """``handle`` the batch (default :meth:`handle`); never raises (see the
        module docstring)."""
        metrics = self.metrics
        started = time.perf_counter()
        try:
            await (handle or self.handle)(batch)
        except Exception as exc:  # never let the loop ack and lose a batch silently
            log.exception("batch failed")
            metrics.failed.labels("internal_error").inc(len(batch))
            try:
                await self.dead_letter([(ev, "internal_error", type(exc).__name__) for ev in batch])
            except Exception:
                log.exception("dead-letter failed")
        metrics.processing.observe(time.perf_counter() - started)
        # counted once handled (alerts sent, late and dead letters written)
        metrics.events.inc(len(batch))
        metrics.batch.observe(len(batch))

    async def handle(self, batch: list[Any]) -> None:
        """Correlate one batch of Faust events; Kafka errors propagate."""
        decoded: list[NormalizedEvent] = []
        raw_of: dict[tuple[str, str], Any] = {}
        invalid: list[tuple[Any, str, str]] = []
        streams: list[Hashable] = []
        for ev in batch:
            try:
                event = validate(ev.value)
            except ValidationError as exc:
                invalid.append((ev, "bad_normalized_event", str(exc.errors()[0]["msg"])))
                continue
            decoded.append(event)
            streams.append(stream_of(ev.message.partition, event.agency, event.source_partition))
            raw_of[(event.agency, event.event_id)] = ev
        if invalid:
            self.metrics.invalid.inc(len(invalid))
            await self.dead_letter(invalid)
        if decoded:
            await self._correlate(decoded, streams, raw_of)

    async def _correlate(
        self,
        decoded: list[NormalizedEvent],
        streams: list[Hashable],
        raw_of: dict[tuple[str, str], Any],
    ) -> None:
        engine, state, metrics, topics = self.engine, self.state, self.metrics, self.topics

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning(
                "correlation failed, retrying",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )

        mine = self.owned()
        engine.watermarks.assign(mine, int(time.time() * 1000), self.sources)
        metrics.partitions.set(len(mine))
        before = state.round_trips
        try:  # Redis down, timeout...: retry the idempotent batch
            outcome = await retry(
                lambda: engine.process(decoded, streams),
                self.settings.redis_attempts,
                base_delay=0.1,
                max_delay=2.0,
                on_error=failed,
            )
        except Exception:
            metrics.redis_round_trips.inc(state.round_trips - before)
            metrics.failed.labels("state_unavailable").inc(len(decoded))
            message = "the state store kept failing"
            await self.dead_letter(
                [(raw_of[(e.agency, e.event_id)], "state_unavailable", message) for e in decoded]
            )
            return
        metrics.redis_round_trips.inc(state.round_trips - before)
        metrics.watermark.set(outcome.watermark / 1000)
        if outcome.late:
            late = [raw_of[(e.agency, e.event_id)] for e in outcome.late]
            await self.send(topics.events_late, [(ev.message.key, ev.value, None) for ev in late])
            metrics.late.inc(len(late))
        if outcome.alerts:
            alerts = [alert for alert, _ in outcome.alerts]
            try:  # delivered before the batch is acked (at least once)
                await self.send(topics.alerts, _records(alerts))
            except Exception:
                # a redelivery of the batch may raise them again
                await state.release([claim for _, claim in outcome.alerts])
                raise
            self._count(alerts)

    async def fire_absences(self) -> None:
        """Publish this worker's watermark; send the absence alerts due by the
        shared one (taken by this worker only), then mark them fired. Redis and
        Kafka errors propagate (the timers wait in Redis)."""
        engine, now = self.engine, int(time.time() * 1000)
        mine = self.owned()
        if mine:  # streams not read yet hold it at 0: nothing fires before they are
            engine.watermarks.assign(mine, now, self.sources)
            await self.absences.publish_watermarks(engine.settled_partitions(now), now)
        shared = await self.absences.shared_watermark(self.settings.topic_partitions)
        if shared <= 0:
            return
        fired = await engine.fire(shared)
        if fired:
            alerts = [alert for alert, *_ in fired]
            await self.send(self.topics.alerts, _records(alerts))  # a crash before ack: resent
            await engine.ack(fired)
            self._count(alerts)
