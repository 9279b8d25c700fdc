"""What ``vigie bench e2e`` reads: latencies from publication to the cell, per hop.

Contract: from a :class:`~vigie.bench.e2eload.Stream`'s publication times and
the receiver's deliveries, :func:`latencies` gives publication → first
delivery to the right département cell (matches not delivered are absent, not
counted as zero); :func:`stages` splits them per hop from the CreateTime of
the records each service produced; :func:`percentiles` rounds to 0.1 ms and is
empty for no values.
"""

from __future__ import annotations

import math
from typing import Any

from aiokafka import AIOKafkaConsumer

from vigie.bench.e2eload import Stream
from vigie.stack import Pipeline


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def q(p: float) -> float:
        return round(1000 * v[min(len(v) - 1, math.ceil(p * len(v)) - 1)], 1)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": q(1.0)}


def first_deliveries(stream: Stream, deliveries: list[Any]) -> dict[str, float]:
    """Completing event_id -> when its département cell first received it."""
    first: dict[str, float] = {}
    for d in deliveries:
        for a in d.body.get("alerts", []):
            for e in a.get("evidence", []):
                eid = e.get("event_id", "")
                if eid in stream.sent and d.cell == f"dept-{stream.sent[eid][1]}":
                    first[eid] = min(first.get(eid, math.inf), d.received_at)
    return first


async def _record_times(bootstrap: str, topic: str, ids: set[str]) -> dict[str, float]:
    """event_id -> CreateTime (s) of the first record of ``topic`` naming it.

    A record names an event by ``"event_id": "<id>"`` anywhere in its JSON
    (normalised events, and alerts' evidence)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: dict[str, float] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batch:
                return out
            for msgs in batch.values():
                for m in msgs:
                    text = m.value.decode("utf-8", "replace") if m.value else ""
                    for eid in ids:
                        if eid not in out and f'"{eid}"' in text:
                            out[eid] = m.timestamp / 1000
    finally:
        await consumer.stop()


async def stages(pipeline: Pipeline, stream: Stream) -> dict[str, dict[str, float]]:
    """Where the time goes, per hop, for the delivered matches: publication →
    ``vigie.events.v1`` (ingest), → ``vigie.alerts.v1`` (correlate), → the cell
    (notify). From the records' CreateTime, set by each service's producer."""
    assert pipeline.stack is not None and pipeline.receiver is not None
    first = first_deliveries(stream, list(pipeline.receiver.deliveries))
    ids = set(first)
    bootstrap = pipeline.stack.bootstrap
    ingested = await _record_times(bootstrap, pipeline.topics.events, ids)
    alerted = await _record_times(bootstrap, pipeline.topics.alerts, ids)
    hops: dict[str, list[float]] = {"ingest": [], "correlate": [], "notify": []}
    for eid in ids:
        if eid in ingested and eid in alerted:
            hops["ingest"].append(ingested[eid] - stream.sent[eid][0])
            hops["correlate"].append(alerted[eid] - ingested[eid])
            hops["notify"].append(first[eid] - alerted[eid])
    return {hop: percentiles(v) for hop, v in hops.items()}


def latencies(stream: Stream, deliveries: list[Any]) -> list[float]:
    """Publication → the département cell's first delivery holding each completing event."""
    first = first_deliveries(stream, deliveries)
    return [first[e] - stream.sent[e][0] for e in first]
