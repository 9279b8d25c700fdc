"""Overlap a service's I/O with its intake: prompt batches, group flushing with held acks.

:func:`take_batches` yields a stream's events in batches without waiting for
a batch to fill (see its docstring); :class:`GroupFlusher` runs the I/O half.


A Faust agent that takes batches (``stream.take_events``) and awaits its
outputs (Redis, produce) before taking the next batch leaves the worker idle
during every round trip, and Faust stops filling the next batch meanwhile.
:class:`GroupFlusher` splits the work in two:

* the agent does the CPU half of a batch (decode, decide) and hands the result
  to :meth:`GroupFlusher.put`, which *holds* the batch's acks (one extra
  reference on each message) and returns at once, so Faust goes on taking
  events;
* one background task runs ``flush`` (the I/O half: Redis, produce with
  delivery awaited) on everything handed over since its last run, in order,
  then releases the acks. While one flush waits on the network, the next
  batches are decided and merge into the next flush, so the round trips per
  event fall as the load rises, and at low load a batch is flushed at once.

Guarantees: a message is acked (its offset becomes committable) only after
the flush that covered it returned, so a crash redelivers whatever was not
flushed (at-least-once, as with awaiting in the agent). Flushes run one at a
time, in the order of ``put``, so outputs keep their order. ``put`` waits
while more than ``max_pending`` events are held (back-pressure). ``flush``
must handle its own errors (dead-letter...); if it raises anyway, the error is
logged and the batch's acks are *not* released (the events are redelivered
after a restart or rebalance), and the consumer commits no offset past them
(Faust alone would skip one: :func:`shared.faust_compat.patch_commit_guard`).
During a rebalance, or for a partition no longer assigned, acks are not
released either: the new owner reads those events again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast

import faust

from shared.faust_compat import drain_passively, remove_processor, stream_out_hooks

log = logging.getLogger(__name__)

W = TypeVar("W")


class GroupFlusher(Generic[W]):
    """Run ``flush`` on the work handed over, one group at a time, then ack its events."""

    def __init__(
        self,
        app: faust.App,
        flush: Callable[[list[W]], Awaitable[None]],
        max_pending: int = 5000,
        name: str = "flush",
    ) -> None:
        self.app = app
        self._flush = flush
        self.max_pending = max_pending
        self.name = name
        self._queue: list[tuple[Sequence[Any], W]] = []
        self._held = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        #: Messages of failed flushes: never acked, held until the worker stops.
        self._failed: list[Any] = []

    @property
    def held(self) -> int:
        """Events handed over whose acks are not released yet."""
        return self._held

    def start(self) -> None:
        """Start the background task (idempotent); call from the agent's loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def put(self, events: Sequence[Any], work: W) -> None:
        """Hold ``events``' acks and queue ``work`` for the next flush.

        Returns at once unless more than ``max_pending`` events are held, then
        waits for room. ``events`` are Faust events (``.message`` is held).
        """
        self.start()
        for ev in events:
            ev.message.incref()
        self._queue.append((events, work))
        self._held += len(events)
        self._idle.clear()
        self._wake.set()
        while self._held > self.max_pending:
            self._room.clear()
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until everything handed over so far has been flushed."""
        while self._queue or self._held:
            self._idle.clear()
            await self._idle.wait()

    async def stop(self) -> None:
        """Flush what is queued, then stop the task."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.drain(), timeout=10.0)
        except TimeoutError:
            log.warning("%s: stopped with %d events unflushed", self.name, self._held)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group, self._queue = self._queue, []
                ok = True
                try:
                    await self._flush([work for _, work in group])
                except asyncio.CancelledError:
                    raise
                except Exception:
                    ok = False
                    log.exception("%s failed: acks held, events will be redelivered", self.name)
                n = sum(len(events) for events, _ in group)
                self._release([ev for events, _ in group for ev in events], ok)
                self._held -= n
                self._room.set()
            self._idle.set()

    def _release(self, events: list[Any], ack: bool) -> None:
        app = self.app
        consumer = app.consumer
        assigned = consumer.assignment() if ack and not app.rebalancing else set()
        on_out = app.sensors.on_message_out
        for ev in events:
            msg = ev.message
            if msg.tp in assigned:
                if msg.ack(consumer):
                    on_out(msg.tp, msg.offset, msg)
            else:
                msg.decref()  # not acked: read again by whoever owns the partition
                if not ack:
                    # kept referenced: the consumer's in-flight set (weak) keeps
                    # seeing it, so no commit passes it (shared.faust_compat)
                    self._failed.append(msg)


#: How long a lingering batch waits for its next event before it goes (seconds).
_STEP = 0.002


async def _grow(
    buf: list[list[Any]],
    max_: int,
    linger: float,
    behind: Callable[[Any], bool] = lambda event: True,
) -> None:
    """Let the batch in ``buf[0]`` grow while the worker is behind and events keep coming.

    Returns at once when ``behind(last event)`` is false (the consumer has
    caught up with its partition: nothing more is waiting on the broker, so
    lingering would only add latency); otherwise after ``linger`` seconds at
    most, when the batch holds ``max_`` events, or after a step of ``_STEP``
    in which no event arrived. Plain sleeps, cancelled with the agent on stop.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + linger
    while len(buf[0]) < max_ and behind(buf[0][-1]):
        now = loop.time()
        if now >= deadline:
            return
        had = len(buf[0])
        await asyncio.sleep(min(_STEP, deadline - now))
        if len(buf[0]) == had:
            return


def _lag_checker(app: Any) -> Callable[[Any], bool]:
    """``behind(event)``: is the broker's high watermark of the event's partition
    (as of the last fetch) past the event? Unknown (no consumer, no watermark
    yet, an error) counts as behind: the batch then lingers as it would anyway."""

    def behind(event: Any) -> bool:
        msg = getattr(event, "message", None)
        if msg is None:
            return True
        try:
            high = app.consumer.highwater(msg.tp)
        except Exception:
            return True
        return high is None or high > msg.offset + 1

    return behind


async def take_batches(
    stream: faust.StreamT[Any], max_: int, linger: float = 0.0
) -> AsyncIterator[list[Any]]:
    """Batches of events from ``stream``, as soon as there are any.

    Faust's ``take_events(max, within)`` waits ``within`` seconds whenever the
    batch does not fill, so at low rates every event waits the whole window
    (and an idle worker wakes up every ``within``), and it stops buffering
    while a batch is processed. Here, once a batch has its first event:

    * after a quiet spell (the stream was empty for longer than ``linger``)
      or with ``linger`` 0, the batch goes at once: a lone event is not held;
    * when the consumer has caught up (the partition's high watermark, as of
      the last fetch, is right after the batch's last event), it goes at once:
      nothing more is waiting on the broker;
    * otherwise (a backlog) it lingers while events keep coming, in steps of
      ``_STEP`` (2 ms): it goes when the consumer catches up, after the first
      step that brought nothing, at ``max_`` events, or ``linger`` seconds
      after its first event, whichever comes first.

    At most ``max_`` events are buffered (beyond, the stream waits); while a
    batch is processed, the next one keeps filling. Lingering only while events
    keep arriving from a backlog costs a busy worker nothing (it is delivering
    them meanwhile) and lets batches grow from a handful of events to dozens or
    hundreds, so each batch's fixed cost (the loop, the acks, the caller's
    round trips) is shared by many events.

    A batch's events are acked when the consumer of the generator resumes it
    (processing done) — not when the generator is closed while a batch is
    out (cancelled mid-processing: that batch is read again), unlike
    ``take_events``, which acks it then. Built on the
    same Faust internals as ``take_events`` (faust-streaming 0.15: processors,
    passive draining), exercised by every service's integration tests.
    """
    s = cast(Any, stream)
    buf: list[list[Any]] = [[]]  # the batch being filled
    ready = asyncio.Event()  # at least one event buffered
    room = asyncio.Event()
    room.set()

    async def add_to_buffer(value: Any) -> Any:
        event = s.current_event
        if event is None:
            raise RuntimeError("take_batches found current_event is None")
        filling = buf[0]
        filling.append(event)
        ready.set()
        if len(filling) >= max_:
            room.clear()
            await s.wait(room)  # never more than max_ in a batch
        return value

    behind = _lag_checker(s.app)
    on_event_out, on_message_out = stream_out_hooks(s)
    enable_acks = s.enable_acks
    s.enable_acks = False  # acked here, once processed
    s.add_processor(add_to_buffer)
    drain_passively(s)
    try:
        loop = asyncio.get_running_loop()
        idle = float("inf")  # how long the stream was empty before this batch
        while not s.should_stop:
            if not buf[0]:
                # nothing to take: wait for the first event. A plain wait (mode's
                # stop-aware wait_for_stopped costs a task per call, ~10 % of a
                # busy worker); stopping cancels the agent, and this with it.
                ready.clear()
                started = loop.time()
                await ready.wait()
                idle = loop.time() - started
                continue
            if linger > 0 and len(buf[0]) < max_ and idle < linger:
                await _grow(buf, max_, linger, behind)
            batch, buf[0] = buf[0], []
            idle = 0.0
            ready.clear()
            room.set()
            # Closed here (the agent cancelled or stopped while it processed the
            # batch): the batch is *not* acked, so it is read again (Faust's
            # take_events acks it on close, and the offsets are committed).
            yield batch
            # Resumed: the batch is processed. Stream.ack's body, without a
            # coroutine per event.
            for event in batch:
                last = event.ack()
                msg = event.message
                on_event_out(msg.tp, msg.offset, s, event)
                if last:
                    on_message_out(msg.tp, msg.offset, msg)
    finally:
        s.enable_acks = enable_acks
        remove_processor(s, add_to_buffer)
