"""SIGHUP reloads the rules of a running correlate worker (real broker, real Redis).

The worker polls its rules directory only once an hour here, so only the
signal can explain a reload. A new rule file and SIGHUP: the
``vigie_correlate_rules_version_info`` metric shows the new set's version (the
digest ``load_dir`` computes for the directory), and the next alert of the new
rule carries it. A bad file and SIGHUP: the reload is counted as rejected and
the previous rules stay active (the version stays, the rule still fires).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx

from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.topics import Topics
from tests.kafkautil import consume_all, produce, wait_services_caught_up
from vigie.stack import ServiceProcess

NEW_RULE = """
id: arrests_pair
title: Two arrests in one département
kind: threshold
severity: info
filter: {types: [arrest]}
group_by: [department]
count: 2
window: 1d
"""


def _arrests(dept: str, day: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"arr-{dept}-{i}",
                "agency": "police",
                "type": "arrest",
                "occurred_at": f"2026-11-{day:02d}T0{i}:00:00+00:00",
                "location": {"department": dept},
                "case_ref": f"PJ-{dept}-{i}",
            }
        ).encode()
        for i in range(2)
    ]


async def _metrics(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text


def _version(text: str) -> str | None:
    m = re.search(r'^vigie_correlate_rules_version_info\{version="([^"]+)"\} 1\.0$', text, re.M)
    return m.group(1) if m else None


def _value(text: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def _until(port: int, check: object, what: str, limit: float = 60.0) -> str:
    """Poll /metrics until ``check(text)`` holds (the limit only guards a hang)."""
    deadline = time.monotonic() + limit
    while True:
        text = await _metrics(port)
        if check(text):  # type: ignore[operator]
            return text
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def _alerts(bootstrap: str, topics: Topics, n: int) -> list[dict[str, object]]:
    """The alerts once correlate has handled every event and there are ``n``
    (only arrests are produced here)."""
    await wait_services_caught_up(bootstrap, topics, ["correlate"])
    records = await consume_all(bootstrap, topics.alerts, expect=n, timeout=60.0)
    return [json.loads(r.value) for r in records]


async def test_sighup_reloads_rules_and_a_bad_file_keeps_the_previous_ones(
    stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str
) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules_dir)
    topics = Topics(topic_prefix)
    await ensure_topics(stack.bootstrap, topics.all(), partitions=1)
    port = free_port()
    env = dict(os.environ)
    env.update(stack.env())
    env.update(
        {
            "VIGIE_WEB_PORT": str(port),
            "VIGIE_WEB_HOST": "127.0.0.1",
            "VIGIE_TOPIC_PREFIX": topics.prefix,
            "VIGIE_REDIS_PREFIX": redis_prefix,
            "VIGIE_TOPIC_PARTITIONS": "1",
            "VIGIE_BROKER_SESSION_TIMEOUT": "6",
            "VIGIE_RULES_DIR": str(rules_dir),
            "VIGIE_RULES_RELOAD_S": "3600",  # no polling during the test: only SIGHUP
            "VIGIE_DATA_DIR": str(tmp_path / "data"),
        }
    )
    worker = ServiceProcess("correlate", env, port, tmp_path / "correlate.log")
    worker.start()
    try:
        assert worker.proc is not None
        deadline = time.monotonic() + 60
        while not worker.ready():
            assert worker.running, worker.tail()
            assert time.monotonic() < deadline, worker.tail()
            await asyncio.sleep(0.2)
        before = _version(await _metrics(port))
        assert before == load_dir(DEFAULT_DIR).version

        # a new rule, then SIGHUP
        (rules_dir / "zz_new.yaml").write_text(NEW_RULE)
        expected = load_dir(rules_dir).version
        assert expected != before
        worker.proc.send_signal(signal.SIGHUP)
        text = await _until(port, lambda t: _version(t) == expected, "SIGHUP did not reload")
        assert _value(text, "vigie_correlate_rules") == len(load_dir(rules_dir).rules)
        assert _value(text, "vigie_correlate_rules_reload_errors_total") == 0

        # the next alert is the new rule's, stamped with the new version
        await produce(stack.bootstrap, topics.events, _arrests("59", 20))
        (alert,) = await _alerts(stack.bootstrap, topics, 1)
        assert alert["rule"] == "arrests_pair"
        assert alert["rules_version"] == expected

        # a bad file, then SIGHUP: rejected (counted), the previous rules stay active
        (rules_dir / "zz_bad.yaml").write_text(NEW_RULE.replace("arrests_pair", "bad") + "x: 1\n")
        worker.proc.send_signal(signal.SIGHUP)
        text = await _until(
            port,
            lambda t: _value(t, "vigie_correlate_rules_reload_errors_total") == 1,
            "bad rules not rejected",
        )
        assert _version(text) == expected
        assert worker.running
        await produce(stack.bootstrap, topics.events, _arrests("62", 21))
        alerts = await _alerts(stack.bootstrap, topics, 2)
        assert [a["rule"] for a in alerts] == ["arrests_pair", "arrests_pair"]
        assert {a["rules_version"] for a in alerts} == {expected}
        assert "rules rejected" in worker.tail(200)
    finally:
        worker.stop()
