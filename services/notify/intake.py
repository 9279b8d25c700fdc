"""The alerts notify reads, batch by batch: decode, record, dead-letter what cannot be.

:meth:`Intake.handle` never raises (but when cancelled): an alert that is not
valid JSON of the alert schema goes to ``vigie.notifications.dlq`` with
``reason: bad_alert`` (and the field at fault); a batch the store still
refuses after bounded retries goes there with ``state_unavailable``; an
unexpected error with ``internal_error`` (never a batch lost silently).
Each outcome is counted in ``vigie_notify_alerts_total`` and ``dlq_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from services.notify.metrics import NotifyMetrics
from services.notify.stages.base import Sink
from shared.models import Alert
from shared.retry import retry

log = logging.getLogger("vigie.notify")

#: How a batch is recorded (``NotifyHandler.ingest_and_flush``).
Record = Callable[[list[Alert]], Awaitable[int]]


class Intake:
    """``record`` is tried ``attempts`` times on ``redis.RedisError``, waiting
    ``base_delay`` doubled each time (``max_delay`` at most)."""

    def __init__(
        self,
        record: Record,
        metrics: NotifyMetrics,
        dlq: Sink,
        attempts: int = 8,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
    ) -> None:
        self.record = record
        self.metrics = metrics
        self.dlq = dlq
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay

    async def handle(self, batch: list[bytes]) -> None:
        """Record a batch of raw alerts (see the module)."""
        try:
            await self._handle(batch)
        except Exception:  # never lose a batch silently
            log.exception("unexpected error on a batch of alerts")
            self.metrics.dlq.labels("internal_error").inc(len(batch))
            for value in batch:
                await self.dlq({"reason": "internal_error", "original": _text(value)})

    def decode(self, raw: bytes, bad: list[dict[str, Any]]) -> Alert | None:
        """The alert, or ``None`` with its dead-letter record added to ``bad``."""
        try:
            return Alert.model_validate_json(raw)
        except ValidationError as exc:
            self.metrics.alerts.labels("bad_alert").inc()
            self.metrics.dlq.labels("bad_alert").inc()
            err = exc.errors()[0]
            bad.append(
                {
                    "reason": "bad_alert",
                    "message": str(err["msg"]),
                    "field": ".".join(str(x) for x in err["loc"]),
                    "original": _text(raw),
                }
            )
            return None

    async def _handle(self, batch: list[bytes]) -> None:
        bad: list[dict[str, Any]] = []
        alerts = [a for a in (self.decode(bytes(v), bad) for v in batch) if a is not None]
        for record in bad:
            await self.dlq(record)

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning(
                "redis error while recording alerts",
                extra={"error": type(exc).__name__, "attempt": attempt},
            )

        try:
            await retry(
                lambda: self.record(alerts),
                self.attempts,
                base_delay=self.base_delay,
                max_delay=self.max_delay,
                retry_on=(RedisError,),
                on_error=failed,
            )
        except RedisError:
            pass
        else:
            self.metrics.alerts.labels("recorded").inc(len(alerts))
            return
        self.metrics.alerts.labels("state_unavailable").inc(len(alerts))
        self.metrics.dlq.labels("state_unavailable").inc(len(alerts))
        for a in alerts:
            await self.dlq(
                {
                    "reason": "state_unavailable",
                    "alert_id": a.alert_id,
                    "original": a.model_dump_json(),
                }
            )


def _text(raw: bytes) -> str:
    """A record's bytes for a dead-letter record (64 KiB at most)."""
    return bytes(raw).decode("utf-8", "replace")[:65536]
