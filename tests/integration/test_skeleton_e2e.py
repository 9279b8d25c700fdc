"""The walking skeleton end to end: agency topics in, the cells' webhook out.

Real broker (Tansu, and a 3-node Apache Kafka cluster), real Redis, the three
services as separate processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import redis

from tests.kafkautil import consume_all
from tests.notifystack import drained
from vigie.demo import EXPECTED_CELLS, bundled_scenario
from vigie.replay import parse_lines, publish
from vigie.stack import Pipeline


def _demo_lines(pipeline: Pipeline):  # type: ignore[no-untyped-def]
    lines, bad = parse_lines(bundled_scenario().read_text().splitlines(), pipeline.topics)
    assert not bad
    # send one event to the wrong agency's topic
    return [
        ln
        if b'"dip-2026-0003"' not in ln.value
        else type(ln)(ln.number, pipeline.topics.inbound("diplomatie"), ln.key, ln.value)
        for ln in lines
    ]


def _rules(delivery) -> set[str]:  # type: ignore[no-untyped-def]
    return {a["labels"]["rule"] for a in delivery.body["alerts"]}


@pytest.mark.brokers
async def test_demo_scenario_reaches_the_right_cells_once(
    make_pipeline: Callable[..., Pipeline], redis_sync: redis.Redis
) -> None:
    pipeline = make_pipeline()
    assert pipeline.stack is not None and pipeline.receiver is not None
    lines = _demo_lines(pipeline)
    await publish(pipeline.stack.bootstrap, lines)

    receiver = pipeline.receiver
    assert await asyncio.to_thread(
        receiver.wait_for, lambda r: set(r.by_cell()) >= EXPECTED_CELLS, 30
    ), f"cells notified: {sorted(receiver.by_cell())}"
    await drained(pipeline, redis_sync)
    by_cell = receiver.by_cell()
    assert set(by_cell) == EXPECTED_CELLS
    # other rules of the default pack fire too (maritime tip then seizure in 76):
    # this test is about the cross-agency target alert, one per cell
    by_cell = {
        cell: [d for d in ds if _rules(d) == {"target_deconfliction"}]
        for cell, ds in by_cell.items()
    }
    for cell, deliveries in by_cell.items():
        assert len(deliveries) == 1, cell
        (alert,) = deliveries[0].body["alerts"]
        assert alert["labels"]["rule"] == "target_deconfliction"
        assert deliveries[0].body["version"] == "4"
    # the phone, written two ways by two agencies, was recognised as one
    assert "douane, police" in by_cell["dept-13"][0].body["alerts"][0]["annotations"]["summary"]

    dlq = await consume_all(pipeline.stack.bootstrap, pipeline.topics.events_dlq, expect=2)
    reasons = sorted(json.loads(r.value)["reason"] for r in dlq)
    assert reasons == ["agency_mismatch", "schema"]
    events = await consume_all(pipeline.stack.bootstrap, pipeline.topics.events, expect=6)
    assert len(events) == 6
    # no clear identifier past ingest
    blob = b"".join(r.value for r in events)
    for clear in (b"12 34 56 78", b"+33612345678", b"9074729", b"AB-123-CD", b"AB123CD"):
        assert clear not in blob

    # replaying everything changes nothing: duplicates dropped, no new notification
    delivered = sum(len(v) for v in receiver.by_cell().values())
    await publish(pipeline.stack.bootstrap, lines)
    await drained(pipeline, redis_sync)
    assert sum(len(v) for v in receiver.by_cell().values()) == delivered
    events = await consume_all(pipeline.stack.bootstrap, pipeline.topics.events)
    assert len(events) == 6
