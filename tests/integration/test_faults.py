"""Fault suite: workers killed, Redis restarted, broker absent, receivers failing, poison.

Each test is bounded (every wait has a deadline) and stops what it started.
Real broker (Tansu), real Redis, the services as processes. What the local
broker makes impossible: Tansu keeps everything in memory, so a broker
restarted mid-run has lost every topic, record and committed offset; the
services cannot "recover" onto it as onto an Apache Kafka broker that comes
back with its log, and that case is not tested here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from shared.localstack import LocalStack, free_port
from tests.kafkautil import consume_all, wait_services_caught_up
from tests.notifystack import drained
from tests.waiting import until
from vigie.replay import Line, publish
from vigie.stack import Pipeline


def _phone(n: int) -> str:
    return (
        f"+33 6 {n // 1000000 % 100:02d} {n // 10000 % 100:02d} {n // 100 % 100:02d} {n % 100:02d}"
    )


def pair(topics: Any, run: str, n: int, dept: str, second: bool) -> Line:
    """Half of a target-deconfliction match: police (first) or customs (second)."""
    agency = "douane" if second else "police"
    ev = {
        "event_id": f"f{run}-{n}-{agency}",
        "agency": agency,
        "type": "seizure" if second else "arrest",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=10 - second)).isoformat(),
        "location": {"department": dept},
        "entities": [{"kind": "phone", "value": _phone(12_000_000 + n * 7 + int(run, 16) % 997)}],
    }
    return Line(0, topics.inbound(agency), None, json.dumps(ev).encode())


def td_cells(deliveries: list[Any]) -> list[str]:
    return [
        d.cell
        for d in deliveries
        for a in d.body.get("alerts", [])
        if a["labels"].get("rule") == "target_deconfliction"
    ]


async def test_sigkill_each_service_mid_stream_loses_and_duplicates_nothing(
    make_pipeline: Callable[..., Pipeline], redis_sync: redis.Redis
) -> None:
    """Live traffic (event time = now), each service SIGKILLed once mid-stream and
    restarted: every match reaches its cell exactly once.

    Not the compressed scenario: there, 14 days of event time pass in seconds,
    so a restarted worker's backlog arrives days of event time behind what it
    has seen and correlate rightly sends it to ``vigie.events.late``.
    """
    pipeline = make_pipeline()
    assert pipeline.stack is not None and pipeline.receiver is not None
    run = uuid.uuid4().hex[:6]
    depts = ["13", "59", "75", "76", "69", "33", "2A", "93", "971", "972", "973", "974"]
    lines = [pair(pipeline.topics, run, i, d, False) for i, d in enumerate(depts)]
    lines += [pair(pipeline.topics, run, i, d, True) for i, d in enumerate(depts)]
    sender = asyncio.create_task(publish(pipeline.stack.bootstrap, lines, 2.4))  # ≈ 10 s
    started = time.monotonic()
    for name, at in (("ingest", 2.0), ("correlate", 5.0), ("notify", 8.0)):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        killed = pipeline.services[name]
        pid = killed.proc.pid if killed.proc else None
        killed.kill()  # SIGKILL: no graceful stop, no commit
        new = pipeline.start_service(name)
        assert new.proc is not None and new.proc.pid != pid
    assert await sender == len(lines)
    await asyncio.to_thread(pipeline.wait_ready, 30)

    receiver = pipeline.receiver
    want = sorted(f"dept-{d}" for d in depts)
    await until(
        lambda: set(want) <= set(td_cells(receiver.deliveries)),
        40,
        lambda: f"cells still waiting: {sorted(set(want) - set(td_cells(receiver.deliveries)))}",
    )
    await drained(pipeline, redis_sync)  # a duplicate would be there now
    assert sorted(td_cells(receiver.deliveries)) == want


async def test_two_correlate_workers_one_killed_the_other_takes_over(
    make_pipeline: Callable[..., Pipeline], redis_sync: redis.Redis
) -> None:
    session = 6.0
    pipeline = make_pipeline(session_timeout=session)
    assert pipeline.stack is not None and pipeline.receiver is not None
    pipeline.start_service("correlate", "-b")
    # ready = assigned: the rebalance that gave correlate-b its partitions is done
    await asyncio.to_thread(pipeline.wait_ready, 30, ["correlate-b"])
    run = uuid.uuid4().hex[:6]
    depts = ["13", "59", "75", "76", "69", "33", "2A", "971"]
    firsts = [pair(pipeline.topics, run, i, d, False) for i, d in enumerate(depts)]
    seconds = [pair(pipeline.topics, run, i, d, True) for i, d in enumerate(depts)]
    await publish(pipeline.stack.bootstrap, firsts)
    await wait_services_caught_up(pipeline.stack.bootstrap, pipeline.topics)  # firsts kept
    pipeline.services["correlate"].kill()
    await publish(pipeline.stack.bootstrap, seconds)
    want = {f"dept-{d}" for d in depts}
    receiver = pipeline.receiver
    # Bound: the broker notices the dead member after the session timeout, the
    # survivor rejoins (Tansu: half a session timeout), then group_wait (5 s).
    await until(
        lambda: want <= set(td_cells(receiver.deliveries)),
        2 * session + 10,
        lambda: f"cells still waiting: {sorted(want - set(td_cells(receiver.deliveries)))}",
    )
    assert pipeline.services["correlate-b"].running
    await drained(pipeline, redis_sync)
    assert sorted(td_cells(receiver.deliveries)) == sorted(want)


async def test_redis_restart_keeps_state_then_broker_goes_away(tmp_path: Path) -> None:
    """Own stack (the session's is shared): Redis stopped mid-stream and started again
    (AOF: the correlation windows and the notification log survive; the services
    reconnect without a restart); then the broker goes away (readiness false)."""
    with LocalStack(workdir=tmp_path / "stack", use_env_redis=False) as stack:
        pipeline = Pipeline(workdir=tmp_path / "p", stack=stack, topic_prefix="fault-redis.")
        with pipeline:
            assert pipeline.receiver is not None
            pids = {k: p.proc.pid for k, p in pipeline.services.items() if p.proc}
            services = list(pipeline.services.values())
            sync = redis.Redis.from_url(stack.redis_url)
            run = uuid.uuid4().hex[:6]
            before = ["13", "59"]
            after = ["75", "76", "69"]
            # two complete matches, and first halves whose second halves come later
            await publish(
                stack.bootstrap,
                [pair(pipeline.topics, run, i, d, False) for i, d in enumerate(before + after)],
            )
            await publish(
                stack.bootstrap,
                [pair(pipeline.topics, run, i, d, True) for i, d in enumerate(before)],
            )
            receiver = pipeline.receiver
            await until(
                lambda: {"dept-13", "dept-59"} <= set(td_cells(receiver.deliveries)),
                20,
                "dept-13 and dept-59 notified",
            )
            # all state written (notification log marked sent); a SIGTERMed Redis
            # fsyncs its AOF before it exits
            await drained(pipeline, sync)

            stack.stop_redis()
            await until(lambda: not any(p.ready() for p in services), 10, "none ready")
            stack.start_redis()
            await until(lambda: all(p.ready() for p in services), 20, "all ready again")
            # no restart: same processes
            assert {k: p.proc.pid for k, p in pipeline.services.items() if p.proc} == pids

            # state survived: the first halves still match, the delivered ones are
            # not delivered again when their events are replayed
            await publish(
                stack.bootstrap,
                [pair(pipeline.topics, run, i + 2, d, True) for i, d in enumerate(after)],
            )
            await publish(
                stack.bootstrap,
                [
                    pair(pipeline.topics, run, i, d, b)
                    for i, d in enumerate(before)
                    for b in (False, True)
                ],
            )
            want = {f"dept-{d}" for d in before + after}
            await until(
                lambda: want <= set(td_cells(receiver.deliveries)),
                25,
                lambda: f"cells waiting: {sorted(want - set(td_cells(receiver.deliveries)))}",
            )
            await drained(pipeline, sync)
            assert sorted(td_cells(receiver.deliveries)) == sorted(want)

            # the broker going away mid-run: every service reports not ready, and
            # none crashes (a restarted Tansu is empty: see the module docstring)
            stack.stop_broker()
            await until(lambda: not any(p.ready() for p in services), 15, "none ready")
            assert all(p.running for p in pipeline.services.values())
            for p in pipeline.services.values():
                p.kill()  # a graceful stop would wait for the absent broker
            sync.close()


def test_broker_unreachable_at_start_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        "VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "VIGIE_REDIS_URL": "redis://127.0.0.1:1/0",
        "VIGIE_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        # configuration is checked before anything is reached: give ingest a valid
        # key, so the first thing that fails is the broker
        "VIGIE_PSEUDO_KEY": "k" * 64,
    }
    for service in ("ingest", "correlate", "notify"):
        res = subprocess.run(
            [sys.executable, "-m", "vigie", "run", service],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode != 0, service
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert "cannot reach kafka" in lines[0].lower() and str(port) in lines[0], lines[0]
        assert "Traceback" not in res.stderr + res.stdout


async def test_poison_flood_and_failing_receivers(make_pipeline: Callable[..., Pipeline]) -> None:
    """Poison interleaved with good events: every good one processed, every bad one
    dead-lettered. A cell answering 500 and one hanging: bounded retries, then the
    notification DLQ; the other cells are not held up behind them."""
    pipeline = make_pipeline(
        extra_env={
            "VIGIE_DELIVERY_ATTEMPTS": "2",
            "VIGIE_RETRY_BASE_S": "0.1",
            "VIGIE_DELIVERY_TIMEOUT_S": "1",
            "VIGIE_NOTIFY_GIVE_UP_S": "2",
            "VIGIE_NOTIFY_REDELIVER_S": "1",
        }
    )
    assert pipeline.stack is not None and pipeline.receiver is not None
    receiver = pipeline.receiver
    receiver.status_for["dept-13"] = 500
    receiver.status_for["dept-59"] = 0  # hangs
    boot, topics = pipeline.stack.bootstrap, pipeline.topics
    run = uuid.uuid4().hex[:6]

    good: list[Line] = []
    poison: list[Line] = []
    for i in range(150):
        ev = {
            "event_id": f"g{run}-{i}",
            "agency": "gendarmerie",
            "type": "intel_share",
            "occurred_at": datetime.now(UTC).isoformat(),
            "location": {"department": "2A"},
        }
        good.append(Line(0, topics.inbound("gendarmerie"), None, json.dumps(ev).encode()))
        bad = [
            b"\xff\xfe not json",
            b'{"event_id": 3}',
            json.dumps({**ev, "type": "picnic"}).encode(),
            json.dumps({**ev, "agency": "police"}).encode(),
        ][i % 4]
        poison.append(Line(0, topics.inbound("gendarmerie"), None, bad))
    flood = [x for pair_ in zip(poison, good, strict=True) for x in pair_]
    await publish(boot, flood)
    events = await consume_all(boot, topics.events, expect=len(good), timeout=30)
    got = {json.loads(r.value)["event_id"] for r in events}
    assert got == {f"g{run}-{i}" for i in range(150)}
    dlq = await consume_all(boot, topics.events_dlq, expect=len(poison), timeout=15)
    assert len(dlq) == len(poison)
    assert all(json.loads(r.value)["reason"] for r in dlq)

    # receivers: 13 fails, 59 hangs, 75 and 76 must not wait for them
    lines = [
        pair(topics, run, i, d, b)
        for i, d in enumerate(["13", "59", "75", "76"])
        for b in (False, True)
    ]
    await publish(boot, lines)
    await until(
        lambda: {"dept-75", "dept-76"} <= set(td_cells(receiver.deliveries)),
        20,
        "dept-75 and dept-76 notified (not held up by the failing cells)",
    )
    notified = await consume_all(boot, topics.notifications_dlq, expect=2, timeout=30)
    receivers = sorted(json.loads(r.value).get("receiver", "") for r in notified)
    assert receivers == ["dept-13", "dept-59"]
    assert not {"dept-13", "dept-59"} & set(td_cells(receiver.deliveries))
    assert all(p.running for p in pipeline.services.values())
