"""Notify alone as a worker process on the real broker and Redis (API, console tests).

:func:`start_notify` starts only the notify service of a :class:`Pipeline`
(with its webhook receiver), with a small routing file, a cells file whose
ack timeouts the test picks, and a secrets file with API tokens for dept-13
and dept-76. Stop it with ``Pipeline.stop()``.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, run_sync
from tests.kafkautil import wait_services_caught_up
from tests.waiting import until
from vigie.receiver import WebhookReceiver
from vigie.stack import Pipeline

ROUTING = """
route:
  receiver: hq
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
  routes:
    - receiver: dept-13
      matchers: ['department="13"']
    - receiver: dept-76
      matchers: ['department="76"']
receivers: [{name: hq}, {name: dept-13}, {name: dept-76}, {name: antenne-marseille}]
"""


def cells_yaml(ack_timeout: str) -> str:
    return f"""
defaults: {{clearance: restricted, ack_timeout: 1h, channels: [{{type: webhook}}]}}
cells:
  hq: {{name: HQ, clearance: secret}}
  antenne-marseille: {{name: Antenne Marseille, escalate_to: hq, clearance: secret}}
  dept-13: {{name: CROSS 13, escalate_to: antenne-marseille, ack_timeout: {ack_timeout}}}
  dept-76: {{name: CROSS 76, escalate_to: hq, ack_timeout: {ack_timeout}}}
"""


TOKENS = {"dept-13": "tok-13-" + "a" * 24, "dept-76": "tok-76-" + "b" * 24}


def alert(i: int, dept: str = "13", rule: str = "target_deconfliction", **kw: Any) -> bytes:
    """An alert on vigie.alerts.v1 (the correlate contract), département ``dept``."""
    labels = {
        "rule": rule,
        "severity": kw.pop("severity", "high"),
        "department": dept,
        "axis": "organisations",
        "agencies": "douane,police",
        "case": str(i),  # one group per alert (group_by: ['...'])
    }
    body = {
        "alert_id": kw.pop("alert_id", f"al{i:05d}"),
        "rule": rule,
        "severity": labels["severity"],
        "labels": labels,
        "annotations": {
            "summary": f"Déconfliction d'objectif: douane, police (alerte {i})",
            "description": "Deux services travaillent sur la même cible.",
        },
        "starts_at": datetime.now(UTC).isoformat(),
        "evidence": [
            {
                "agency": "douane",
                "event_id": f"ev-{i}",
                "occurred_at": datetime.now(UTC).isoformat(),
                "case_ref": f"DNRED-{i}",
                "contact": "permanence DNRED",
            }
        ],
        **kw,
    }
    return json.dumps(body).encode()


def settled(sync: redis.Redis, prefix: str, horizon: float = 600.0) -> bool:
    """Nothing will be sent within ``horizon`` seconds (ROUTING's group_interval
    is 1 h): every notification log entry of the Redis prefix is marked sent
    (none claimed by a killed worker, none failed) and every group's next flush
    is at least ``horizon`` seconds away (none new, leased or to retry)."""
    marks = [sync.get(k) for k in sync.scan_iter(f"{prefix}:*nflog*")]
    first = sync.zrange(f"{prefix}:{{sched}}:groups", 0, 0, withscores=True)
    later = not first or float(first[0][1]) > time.time() + horizon
    return later and all(isinstance(m, bytes) and m.startswith(b"sent:") for m in marks)


async def drained(
    pipeline: Pipeline, sync: redis.Redis, horizon: float = 30.0, timeout: float = 60.0
) -> None:
    """Wait until every service of ``pipeline`` has handled all that was
    published, and notify has sent all it will send within ``horizon`` seconds
    (shorter than the routing's group intervals: then nothing more is coming).
    ``timeout`` covers a claim left by a killed notify (VIGIE_NOTIFY_CLAIM_S)."""
    assert pipeline.stack is not None
    await wait_services_caught_up(
        pipeline.stack.bootstrap, pipeline.topics, ("ingest", "correlate", "notify"), timeout
    )
    prefix = pipeline.redis_prefix
    await until(lambda: settled(sync, prefix, horizon), timeout, "notify sent all it had due")


def start_notify(
    stack: LocalStack,
    workdir: Path,
    topic_prefix: str,
    redis_prefix: str,
    ack_timeout: str = "1h",
    extra_env: dict[str, str] | None = None,
) -> Pipeline:
    """Notify (only) on ``stack``, ready to answer; the caller stops it."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "routing.yml").write_text(ROUTING)
    (workdir / "cells.yml").write_text(cells_yaml(ack_timeout))
    (workdir / "secrets.yml").write_text(json.dumps({"api_tokens": TOKENS}))
    p = Pipeline(
        workdir=workdir,
        stack=stack,
        topic_prefix=topic_prefix,
        redis_prefix=redis_prefix,
        extra_env={
            "VIGIE_NOTIFY_ROUTING_FILE": str(workdir / "routing.yml"),
            "VIGIE_NOTIFY_CELLS_FILE": str(workdir / "cells.yml"),
            "VIGIE_NOTIFY_SECRETS_FILE": str(workdir / "secrets.yml"),
            **(extra_env or {}),
        },
    )
    p._pseudo_key = secrets.token_hex(32)
    p.receiver = WebhookReceiver(secret=secrets.token_hex(16).encode()).start()
    run_sync(lambda: ensure_topics(stack.bootstrap, p.topics.all(), p.partitions))
    try:
        p.start_service("notify")
        p.wait_ready(60, ["notify"])
    except Exception:
        p.stop()
        raise
    return p
