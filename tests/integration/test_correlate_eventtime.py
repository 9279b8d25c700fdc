"""Event time on the real broker and Redis: history replayed as if live.

The same generated history (40 days, every agency, plus one report filed 30
days after the fact) is published twice, to two pipelines that share nothing
but the pseudonymisation key: once at full speed (all partitions at once,
interleaved as the broker delivers them) and once paced in order. Both must
raise exactly the same alert ids, none of their events late; the late report
still raises its 90-day target-deconfliction alert.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from tests.kafkautil import consume_all
from vigie.replay import parse_lines, publish
from vigie.scenario.generate import generate
from vigie.stack import Pipeline

PHONE = "+33 6 98 76 54 32"


def _history() -> list[str]:
    """The generated events in time order, then a police report on a phone that
    customs seized 3 days before it, published 30 days after it happened."""
    scenario = generate(7, days=40, start=datetime(2026, 9, 1, tzinfo=UTC))
    seized = {
        "event_id": "d-late-ctx",
        "agency": "douane",
        "type": "seizure",
        "occurred_at": "2026-09-07T10:00:00+00:00",
        "location": {"department": "59"},
        "entities": [{"kind": "phone", "value": PHONE}],
        "case_ref": "DNRED-LATE",
    }
    report = {
        "event_id": "p-late-report",
        "agency": "police",
        "type": "arrest",
        "occurred_at": "2026-09-10T06:00:00+00:00",
        "location": {"department": "59"},
        "entities": [{"kind": "phone", "value": PHONE}],
        "case_ref": "PJ-LATE",
    }
    events = sorted(
        [*scenario.events, seized],
        key=lambda e: datetime.fromisoformat(e["occurred_at"]),
    )
    return [json.dumps(e) for e in [*events, report]]


async def _counter(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def _run(pipeline: Pipeline, lines: list[str], rate: float | None) -> tuple[set[str], int]:
    """Publish, wait until correlate has handled every event; the alert ids and
    the number of late events."""
    assert pipeline.stack is not None
    bootstrap, topics = pipeline.stack.bootstrap, pipeline.topics
    good, bad = parse_lines(lines, topics)
    assert not bad
    await publish(bootstrap, good, rate)
    port = pipeline.services["correlate"].port
    deadline = time.monotonic() + 120
    while await _counter(port, "vigie_correlate_events_total") < len(good):
        assert time.monotonic() < deadline, "correlate did not handle every event"
        await asyncio.sleep(0.5)
    raised = int(await _counter(port, "vigie_correlate_alerts_total"))
    late = int(await _counter(port, "vigie_correlate_late_total"))
    records = await consume_all(bootstrap, topics.alerts, expect=raised)
    alerts = [json.loads(r.value) for r in records]
    ids = {a["alert_id"] for a in alerts}
    assert len(ids) == len(alerts) == raised  # each once
    late_report = [
        a
        for a in alerts
        if a["rule"] == "target_deconfliction"
        and {e["event_id"] for e in a["evidence"]} == {"d-late-ctx", "p-late-report"}
    ]
    assert len(late_report) == 1, "the report filed 30 days late was not correlated"
    return ids, late


async def test_unpaced_and_paced_history_raise_the_same_alerts(
    make_pipeline: Callable[..., Pipeline], topic_prefix: str, redis_prefix: str
) -> None:
    lines = _history()
    key = {"VIGIE_PSEUDO_KEY": secrets.token_hex(32)}  # same tokens, same alert ids
    fast = make_pipeline(
        topic_prefix=topic_prefix + "fast.", redis_prefix=redis_prefix + "f", extra_env=key
    )
    fast_ids, fast_late = await _run(fast, lines, None)
    paced = make_pipeline(
        topic_prefix=topic_prefix + "paced.", redis_prefix=redis_prefix + "p", extra_env=key
    )
    paced_ids, paced_late = await _run(paced, lines, 400.0)
    assert fast_late == paced_late == 0
    assert len(fast_ids) >= 10
    assert fast_ids == paced_ids, (sorted(fast_ids - paced_ids), sorted(paced_ids - fast_ids))
