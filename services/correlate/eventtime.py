"""Event time: watermarks per input stream, as Flink computes them.

An agency publishes roughly in event-time order within one partition of its
topic, and ingest keeps that order, but merges 8 agencies' partitions into
each partition of ``vigie.events.v1``: read at full speed (a backfill, a
replay), one partition of ``vigie.events.v1`` holds one agency's 40 days, then
another's. So the unit whose event time only moves forward is the *stream*:
one partition of ``vigie.events.v1`` and one source partition (agency topic
and partition, ``NormalizedEvent.source_partition``; events without it form
one stream per agency), see :func:`stream_of`. A stream's high mark is the
highest event time read from it; the worker's **watermark is the minimum
over its active streams**, so a stream that is behind holds it back instead
of making its events late.

* The streams a worker expects (each of its partitions with every agency and
  inbound partition) start with "no event time yet" when assigned: they hold the
  watermark at 0 (nothing is late) until they send something or stay quiet
  for ``idle_ms``.
* A stream with no event for ``idle_ms`` (wall clock) stops counting (Flink's
  idleness timeout), so a quiet agency does not stall everyone; when every
  stream is idle the watermark is the highest high mark (a finished replay,
  a quiet night: event time still reaches the last event).

The watermark decides what is *too late* (:meth:`~.engine.Engine.process`),
what state is trimmed, and, shared through Redis (:mod:`.absence`), when an
absence's deadline has passed. Pure: the wall clock is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

#: (partition of vigie.events.v1, agency, source partition or -1)
Stream = tuple[int, str, int]


def stream_of(partition: int, agency: str, source_partition: int | None) -> Stream:
    """The stream of an event read from ``partition`` of vigie.events.v1."""
    return (partition, agency, -1 if source_partition is None else source_partition)


def _partition(stream: Hashable) -> int:
    """A stream's partition (a bare int stream: itself, as in tests and fixtures)."""
    return int(stream[0] if isinstance(stream, tuple) else stream)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Mark:
    #: the highest event time read (ms); -1: none yet
    high: int
    #: when it last sent an event (or was assigned), wall clock ms
    seen: int


class Watermarks:
    """High event times per stream and the worker's watermark over them.

    Not thread-safe (one per worker loop).
    """

    def __init__(self, idle_ms: int) -> None:
        self.idle_ms = idle_ms
        self._marks: dict[Hashable, _Mark] = {}
        #: the partitions owned (None: every stream counts, as in tests and fixtures)
        self._owned: set[int] | None = None
        self._known: set[int] = set()

    def _counted(self) -> list[tuple[Hashable, _Mark]]:
        owned = self._owned
        if owned is None:
            return list(self._marks.items())
        return [(k, m) for k, m in self._marks.items() if _partition(k) in owned]

    def assign(
        self, partitions: Iterable[int], now: int, sources: Iterable[tuple[str, int]] = ()
    ) -> None:
        """The partitions this worker owns now; only their streams count. A
        partition never owned before expects a stream per ``sources`` entry
        (agency, inbound partition), none of which has an event time yet. A
        partition revoked and owned again keeps what its streams had (a consumer
        whose assignment flickers does not start its partitions over)."""
        owned = set(partitions)
        if not owned:  # a rebalance in progress (or a flicker): keep counting as before
            return
        expected = list(sources)
        for p in owned - self._known:
            for agency, src in expected or [("", -1)]:
                self._marks.setdefault((p, agency, src), _Mark(-1, now))
        self._known |= owned
        self._owned = owned

    def observe(self, stream: Hashable, t: int, now: int) -> None:
        """An event of time ``t`` (ms) read from ``stream`` at wall time ``now``."""
        mark = self._marks.get(stream)
        if mark is None:
            self._marks[stream] = _Mark(t, now)
            return
        mark.seen = now
        if t > mark.high:
            mark.high = t

    def current(self, now: int) -> int:
        """The watermark (ms): the lowest high mark over the streams active
        within ``idle_ms``; the highest of all when every one is idle; 0 while
        an active stream has no event time yet (or there is no stream)."""
        marks = [m for _, m in self._counted()]
        if not marks:
            return 0
        idle = self.idle_ms
        active = [m.high for m in marks if now - m.seen < idle]
        if not active:
            return max(0, max(m.high for m in marks))
        return max(0, min(active))

    def by_partition(self, now: int) -> dict[int, tuple[int, bool]]:
        """Per partition of vigie.events.v1: (its watermark, whether every one of
        its streams is idle), computed as :meth:`current` over its streams."""
        idle = self.idle_ms
        parts: dict[int, list[_Mark]] = {}
        for key, mark in self._counted():
            parts.setdefault(_partition(key), []).append(mark)
        out: dict[int, tuple[int, bool]] = {}
        for p, marks in parts.items():
            active = [m.high for m in marks if now - m.seen < idle]
            if active:
                out[p] = (max(0, min(active)), False)
            else:
                out[p] = (max(0, max(m.high for m in marks)), True)
        return out

    def streams(self) -> int:
        """How many streams count (those of the partitions owned)."""
        return len(self._counted())
