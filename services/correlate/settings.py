"""Correlate settings (prefix ``VIGIE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from shared.settings import Settings


class CorrelateSettings(Settings):
    #: How long (seconds, event time) a rule's state is kept after its window
    #: has passed the watermark: an event older than the watermark by more than a
    #: rule's window plus this is too late for that rule; one too late for every
    #: rule that takes it goes to ``vigie.events.late`` (docs/rules.md, "Event time").
    allowed_lateness_s: Annotated[int, Field(ge=0)] = 7 * 86400
    #: A partition with no event for this long (wall clock) no longer holds the
    #: watermark back (Flink's idleness timeout).
    idle_partition_s: Annotated[float, Field(gt=0)] = 30.0
    #: How often (seconds) a worker publishes its watermark and fires the absence
    #: timers due by the watermark the workers share.
    absence_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: The rules directory (YAML); empty: the default pack shipped with Vigie.
    rules_dir: Path | None = None
    #: How often (seconds) the rules directory is checked for changes (SIGHUP: at once).
    rules_reload_s: Annotated[float, Field(gt=0)] = 5.0
    #: Events correlated together (one Redis round trip for all their rules).
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = 1000
    #: While the consumer is behind the broker, a batch lingers as long as
    #: events keep arriving (it goes after 2 ms without one, or once the
    #: consumer has caught up), at most this long (seconds) after its first
    #: event; after a quiet spell, an event goes at once (0: never linger).
    batch_within_s: Annotated[float, Field(ge=0, le=5)] = 0.005
    #: Attempts on a Redis error before a batch is dead-lettered.
    redis_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    #: ``batched`` (production); ``naive`` (one Redis round trip per rule and event)
    #: and ``noop`` (decode only) exist for ``vigie bench correlate``.
    engine_mode: Literal["batched", "naive", "noop"] = "batched"
