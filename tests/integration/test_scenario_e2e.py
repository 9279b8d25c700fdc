"""The checked-in scenario through the three services, checked against its expectations.

Real broker, real Redis, the services as processes, the local webhook
receiver. Expectations are asserted exactly (no missing, no extra, no
duplicate notification per cell) for the rules the correlate code in this
tree evaluates (:func:`vigie.scenario.check.running_rules`); the test also
checks that no clear identifier reaches a cell.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.notifystack import drained
from vigie.replay import parse_lines, publish
from vigie.scenario.check import compare, running_rules
from vigie.scenario.generate import read_jsonl
from vigie.stack import Pipeline

SCENARIO = Path(__file__).parents[2] / "scenarios" / "small"


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # a Redis, a Redis Cluster
async def test_scenario_reaches_exactly_the_expected_cells(
    make_pipeline: Callable[..., Pipeline], redis_sync: redis.Redis
) -> None:
    rules = running_rules()
    expected = read_jsonl(SCENARIO / "expected_notifications.jsonl")
    alerts = read_jsonl(SCENARIO / "expected_alerts.jsonl")
    checked = [n for n in expected if n["rule"] in rules]
    assert checked, f"no expectation for the running rules {sorted(rules)}"

    # a quiet stream stops holding event time back after 2 s (default 30 s), so the
    # absence rules' deadlines pass soon after the last event
    pipeline = make_pipeline(extra_env={"VIGIE_IDLE_PARTITION_S": "2"})
    assert pipeline.stack is not None and pipeline.receiver is not None
    text = (SCENARIO / "events.jsonl").read_text().splitlines()
    lines, bad = parse_lines(text, pipeline.topics)
    assert not bad
    # at full speed: correlate's event time is per stream (docs/rules.md), so
    # however the partitions interleave, nothing is late
    await publish(pipeline.stack.bootstrap, lines)

    receiver = pipeline.receiver
    want = {(n["cell"], n["rule"], n["department"]) for n in checked}

    def arrived(r: object) -> bool:
        got = set(compare(checked, receiver.deliveries, rules).missing)
        return not got & want

    assert await asyncio.to_thread(receiver.wait_for, arrived, 40), compare(
        checked, receiver.deliveries, rules
    ).missing
    await drained(pipeline, redis_sync)  # anything extra or duplicated is there now
    outcome = compare(expected, receiver.deliveries, rules)
    assert outcome.ok, (outcome.missing, outcome.extra, outcome.duplicated)
    assert outcome.matched == len({(n["cell"], n["rule"], n["department"]) for n in checked})

    # the evidence points at the events that form each match, unless the cell's
    # clearance is below the alert's handling: then it gets a pointer only
    by_key = {(a["rule"], a["department"]): set(a["event_ids"]) for a in alerts}
    redacted = 0
    for d in receiver.deliveries:
        for a in d.body["alerts"]:
            key = (a["labels"]["rule"], a["labels"].get("department", ""))
            if a.get("redacted"):
                redacted += 1
                assert a["evidence"] == [], key
                continue
            evidence = {e["event_id"] for e in a["evidence"]}
            assert by_key[key] <= evidence, (key, by_key[key], evidence)
    assert redacted, "the scenario has secret events: some cell must get a redacted alert"

    # no clear identifier reaches a cell: phones, plates, IBANs, IMO numbers, names
    sent = b"".join(json.dumps(d.body).encode() for d in receiver.deliveries)
    for ev in read_jsonl(SCENARIO / "events.jsonl"):
        for ent in ev.get("entities", []):
            assert ent["value"].encode() not in sent, ent["kind"]
