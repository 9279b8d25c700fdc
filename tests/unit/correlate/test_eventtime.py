"""Per-partition watermarks and what the engine calls too late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.correlate.engine import Engine
from services.correlate.eventtime import Watermarks
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.correlate.state import MemoryState
from shared.models import NormalizedEvent
from shared.redis import Keys

DAY = 86_400_000
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_watermark_is_the_minimum_over_active_streams() -> None:
    w = Watermarks(idle_ms=1000)
    w.assign([0, 1], now=0, sources=[("police", 0), ("douane", 0)])
    assert w.streams() == 4
    w.observe((0, "police", 0), 500, now=10)
    assert w.current(now=20) == 0  # three streams have no event time yet
    for stream in [(0, "douane", 0), (1, "police", 0), (1, "douane", 0)]:
        w.observe(stream, 300, now=30)
    assert w.current(now=40) == 300
    w.observe((1, "police", 0), 900, now=50)
    assert w.current(now=60) == 300
    # only (0, police, 0) and (1, police, 0) stay active: the quiet ones stop counting
    w.observe((0, "police", 0), 950, now=1020)
    w.observe((1, "police", 0), 960, now=1020)
    assert w.current(now=1040) == 950
    # every stream idle: the highest
    assert w.current(now=5000) == 960
    w.observe((1, "douane", 0), 200, now=5001)  # an old event: never lowers a high mark
    assert w.current(now=5002) == 300
    w.assign([0], now=5003)  # partition 1 revoked: its streams no longer count
    assert w.streams() == 2
    w.assign([0, 1], now=5004)  # owned again: what its streams had is kept
    assert w.streams() == 4 and w.current(now=5005) == 300


def test_per_partition_watermarks_and_idleness() -> None:
    w = Watermarks(idle_ms=1000)
    w.assign([0, 1], now=0, sources=[("police", 0)])
    w.observe((0, "police", 0), 700, now=1)
    assert w.by_partition(now=2) == {0: (700, False), 1: (0, False)}
    w.observe((1, "police", 0), 300, now=3)
    assert w.by_partition(now=1002) == {0: (700, True), 1: (300, False)}


def test_a_stream_never_seen_stops_counting_after_the_idle_timeout() -> None:
    w = Watermarks(idle_ms=1000)
    w.assign([0], now=0, sources=[("police", 0), ("douane", 0), ("marine", 0)])
    w.observe((0, "police", 0), 700, now=1)
    w.observe((0, "douane", 0), 400, now=2)
    assert w.current(now=999) == 0
    assert w.current(now=1001) == 400  # marine: no event, no longer waited for


def test_one_partition_carrying_two_agencies_one_after_the_other() -> None:
    """A backfill read at full speed: partition 0 holds customs' 40 days, then
    police's; police's first events are not behind the watermark."""
    w = Watermarks(idle_ms=10_000)
    w.assign([0], now=0, sources=[("police", 0), ("douane", 0)])
    for day in range(40):
        w.observe((0, "douane", 0), day, now=1)
    assert w.current(now=2) == 0
    w.observe((0, "police", 0), 0, now=3)
    assert w.current(now=4) == 0


def _ev(eid: str, agency: str, at: datetime, phone: str) -> NormalizedEvent:
    return NormalizedEvent.model_validate(
        {
            "event_id": eid,
            "agency": agency,
            "type": "seizure",
            "occurred_at": at.isoformat(),
            "entities": [{"kind": "phone", "token": phone}],
            "case_ref": f"c-{eid}",
            "contact": "unit",
        }
    )


async def test_a_partition_ahead_does_not_make_another_partitions_events_late() -> None:
    """Partition 0 read up to day 200 before partition 1's day-0 events: the
    watermark is partition 1's, so they correlate (once a worker watermark
    across partitions would have called them late)."""
    e = Engine(load_dir(DEFAULT_DIR), MemoryState(), Keys("u"), 7 * DAY, clock=lambda: 0)
    e.watermarks.assign([0, 1], 0, [("police", -1), ("douane", -1)])
    ahead = [_ev(f"a{i}", "police", T0 + timedelta(days=i), f"x{i}") for i in range(0, 201, 20)]
    assert not (await e.process(ahead, [(0, "police", -1)] * len(ahead))).late
    behind = [
        _ev("p1", "police", T0, "shared"),
        _ev("d1", "douane", T0 + timedelta(days=1), "shared"),
    ]
    outcome = await e.process(behind, [(1, "police", -1), (1, "douane", -1)])
    assert not outcome.late
    assert [a.rule for a, _ in outcome.alerts] == ["target_deconfliction"]
    # on one partition, the same day-0 report would be too late (200 > 180 + 7 days)
    e2 = Engine(load_dir(DEFAULT_DIR), MemoryState(), Keys("v"), 7 * DAY, clock=lambda: 0)
    await e2.process(ahead)
    assert [x.event_id for x in (await e2.process(behind[:1])).late] == ["p1"]
