"""The run loop: flush due groups and escalate due alerts until cancelled.

Each pass leases what is due on both schedules and reads their earliest
timer (one round trip), then sleeps until that timer, ``idle_s`` at most
(timers another replica set, leases that ended), or until woken: this
replica wrote a timer earlier than that (:meth:`Flusher.timers_set`), or a
flush slot freed while due groups waited for one. Flush batches run side by
side (at most ``batches``), so a hanging receiver holds up only its batch.
Store errors are logged and the pass is tried again a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from services.notify.store.base import Due

log = logging.getLogger("vigie.notify")

#: How often the active silences gauge is refreshed.
GAUGE_S = 15.0


class Work(Protocol):
    """What a pass does (the handler)."""

    async def due(self, now: float, groups: bool) -> Due: ...
    async def flush_leased(self, gids: list[str], now: float) -> None: ...
    async def escalate_all(self, members: list[str]) -> None: ...
    async def gauge(self) -> None: ...


class Flusher:
    """Background flushes in flight, and the wake-ups of :meth:`run`."""

    def __init__(self, batches: int, clock: Any) -> None:
        self.batches = batches
        self.clock = clock
        self.wake = asyncio.Event()
        self.inflight: set[asyncio.Task[None]] = set()
        #: run() found every flush slot taken (a freed slot wakes it).
        self.starved = False
        #: When run() means to look at the schedules next (clock time).
        self.wake_at = math.inf
        #: run() is reading the schedules; the earliest timer written meanwhile.
        self.passing = False
        self.noted = math.inf

    @property
    def room(self) -> bool:
        """A flush slot is free."""
        return len(self.inflight) < self.batches

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` (a flush) in the background, in a slot."""
        task = asyncio.create_task(coro)
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        task.add_done_callback(self._freed)

    def timers_set(self, first: float | None) -> None:
        """Timers were written, the earliest at ``first``: wake run() if it
        sleeps past it (if it is reading the schedules, it will sleep no later)."""
        if first is None:
            return
        if self.passing:
            self.noted = min(self.noted, first)
        elif first < self.wake_at:
            self.wake.set()

    def _freed(self, _task: asyncio.Task[None]) -> None:
        if self.starved:  # due groups wait for a flush slot: run() claims them now
            self.wake.set()

    async def drain(self) -> None:
        """Wait for the flushes in flight (tests, shutdown)."""
        while self.inflight:
            await asyncio.gather(*self.inflight, return_exceptions=True)

    async def close(self, timeout: float) -> None:
        """Let the flushes in flight end within ``timeout``, then cancel them
        (their leases bring the groups back)."""
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=timeout)
            for task in pending:
                task.cancel()

    async def run(self, work: Work, idle_s: float = 0.5) -> None:
        """Pass and sleep until cancelled (see the module)."""
        last_gauge = 0.0
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # a library swallowed our cancellation (asyncio.wait_for in 3.11): stop anyway
                raise asyncio.CancelledError
            self.wake.clear()
            self.passing, self.noted = True, math.inf
            wake_at, claimed = await self._pass(work, idle_s)
            if time.monotonic() - last_gauge > GAUGE_S:
                last_gauge = time.monotonic()
                try:
                    await work.gauge()
                except Exception:  # a gauge is not worth stopping for
                    log.warning("active silences gauge not refreshed", exc_info=True)
            self.passing = False
            if claimed:
                continue  # more may be due (limits)
            await self._sleep(min(wake_at, self.noted))

    async def _pass(self, work: Work, idle_s: float) -> tuple[float, bool]:
        """Lease and act on what is due: (when to look again, whether anything was)."""
        now = self.clock()
        wake_at = now + idle_s
        try:
            room = self.room
            self.starved = not room
            due = await work.due(now, room)
            if due.first is not None:
                wake_at = min(wake_at, due.first)
            if due.groups:
                self.spawn(work.flush_leased(due.groups, now))
            if due.escalations:
                await work.escalate_all(due.escalations)
            return wake_at, bool(due.groups or due.escalations)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("flush loop error")
            await asyncio.sleep(1.0)
            return wake_at, False

    async def _sleep(self, wake_at: float) -> None:
        self.wake_at = wake_at
        delay = wake_at - self.clock()
        if delay > 0 and not self.wake.is_set():
            # asyncio.timeout, not wait_for: wait_for may swallow a cancellation
            # that lands as the event fires (Python 3.11), and the loop never ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()
