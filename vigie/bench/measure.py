"""What the benches read off the processes they measure: CPU time, and when to
poll a worker's ``/metrics`` next."""

from __future__ import annotations

import os
from pathlib import Path

#: Polling /metrics: at least this often near the start and the end of a pass...
POLL_MIN_S = 0.1
#: ... and at most this far apart in between (serving /metrics costs the worker CPU).
POLL_MAX_S = 1.0


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of these processes so far (all threads; Linux
    ``/proc``). A process that is gone counts 0."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def next_poll(first: tuple[float, ...] | None, now: float, count: float, n: int) -> float:
    """Seconds until the next poll of a worker's /metrics, on its way to ``n`` events.

    ``first`` is (time, count, ...) of the first poll that saw an event. The
    figures are read between that poll and the first that sees all ``n``: only
    those two polls enter them, so the ones in between can be sparse. Each poll
    costs the worker CPU (Faust's and the service's registries rendered): every
    100 ms, serving /metrics was ~3-4 % of a busy worker's py-spy samples, a
    cost of the measurement, not of the service. So: every ``POLL_MIN_S`` until
    the first event, then half the time the current rate says is left (between
    ``POLL_MIN_S`` and ``POLL_MAX_S``): the last event is still seen within
    ``POLL_MIN_S`` or so.
    """
    if first is None or count <= first[1] or now <= first[0]:
        return POLL_MIN_S
    rate = (count - first[1]) / (now - first[0])
    return min(POLL_MAX_S, max(POLL_MIN_S, (n - count) / rate / 2))
