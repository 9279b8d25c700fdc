"""``vigie bench backfill``: a generated history through ingest and correlate at full speed.

The scenario generator writes ``--events`` inbound events (``dense`` mode: a
year or more of every agency's traffic, see :func:`vigie.scenario.generate.generate`).
The same lines are published to fresh pipelines on one local broker and Redis
(ingest, correlate and notify as processes, 4 partitions per topic, one
pseudonymisation key so every run gets the same tokens):

* **unpaced** with 1, then 2 workers per service (ingest and correlate): every
  event published as fast as the producer goes, all partitions at once;
* **paced**, 1 worker per service, in file order at ``--paced-rate`` events/s
  (default: half the 1-worker unpaced rate, so the pipeline keeps up).

Per run: events/s from the first publish to correlate having handled every
event, the peak Redis memory above the run's start (``INFO memory``
``used_memory``, sampled every 0.5 s), the correlate state at the end (``MEMORY
USAGE`` over its keys, per tracked group: a distinct hash tag), late events and
alerts; then the alert ids of each unpaced run are compared with the paced
run's (with, per rule, the alerts only one side raised). Absence alerts due
after the last event fire once the streams go idle (``VIGIE_IDLE_PARTITION_S``,
30 s, the default); a run ends when the alert count has not moved for 3 s after
that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from shared.localstack import LocalStack, local_broker
from shared.redis import create_redis
from shared.topics import Topics
from vigie.bench.correlate import _memory, _metrics
from vigie.replay import Line, parse_lines, publish
from vigie.stack import Pipeline

#: the service default: a stream quiet this long stops holding event time back
IDLE_S = 30.0


def make_history(n: int, seed: int = 1) -> list[str]:
    """About ``n`` inbound events (JSON lines, time order): a dense generated
    scenario of the year before today, its volume scaled to ``n``."""
    from vigie.scenario.generate import generate

    days = 366
    volume = max(0.1, n / (days * 29.0))
    # the year before today (ingest refuses events in the future)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days + 2)
    events = generate(seed, days, start, volume=volume, dense=True).events
    return [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events[:n]]


async def _redis_used(url: str) -> int:
    client = create_redis(url)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def _alert_ids(
    bootstrap: str, topic: str, expect: int, timeout: float
) -> list[tuple[str, str]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    ids: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(ids) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                alerts = [json.loads(r.value) for r in records]
                ids += [(a["alert_id"], a["rule"]) for a in alerts]
    finally:
        await consumer.stop()
    return ids


async def _sum(client: httpx.AsyncClient, ports: list[int], name: str) -> float:
    return sum([(await _metrics(client, p)).get(name, 0.0) for p in ports])


async def run(
    stack: LocalStack,
    workdir: Path,
    texts: list[str],
    workers: int,
    rate: float | None,
    key: str,
    timeout: float,
) -> dict[str, Any]:
    """One pipeline run; the figures, and the alert ids under ``"ids"``."""
    uid = uuid.uuid4().hex[:8]
    env = {"VIGIE_PSEUDO_KEY": key, "VIGIE_IDLE_PARTITION_S": str(IDLE_S)}
    env["VIGIE_LOG_LEVEL"] = "WARNING"
    pipeline = Pipeline(
        workdir=workdir / f"run-{uid}",
        stack=stack,
        topic_prefix=f"backfill-{uid}.",
        redis_prefix=f"vigiebf:{uid}",
        extra_env=env,
    )
    pipeline.start()
    try:
        for i in range(2, workers + 1):
            pipeline.start_service("ingest", str(i))
            pipeline.start_service("correlate", str(i))
        pipeline.wait_ready(60)
        await asyncio.sleep(7.0)  # let the groups settle (Tansu: half the session timeout)
        lines: list[Line] = parse_lines(texts, Topics(pipeline.topic_prefix))[0]
        ports = [p.port for k, p in pipeline.services.items() if k.startswith("correlate")]
        return await _measure(pipeline, ports, lines, rate, timeout)
    finally:
        pipeline.stop()


async def _measure(
    pipeline: Pipeline, ports: list[int], lines: list[Line], rate: float | None, timeout: float
) -> dict[str, Any]:
    assert pipeline.stack is not None
    stack, n = pipeline.stack, len(lines)
    base = await _redis_used(stack.redis_url)
    peak = [base]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], await _redis_used(stack.redis_url))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    await publish(stack.bootstrap, lines, rate)
    async with httpx.AsyncClient() as client:
        while (handled := await _sum(client, ports, "vigie_correlate_events_total")) < n:
            if time.monotonic() - started > timeout:
                done.set()
                await sampler
                return {"error": "timeout", "handled": handled, "events": n}
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        alerts, still = -1.0, time.monotonic()
        while time.monotonic() - still < 3.0 or time.monotonic() - started - elapsed < IDLE_S + 2:
            now = await _sum(client, ports, "vigie_correlate_alerts_total")
            if now != alerts:
                alerts, still = now, time.monotonic()
            await asyncio.sleep(0.5)
        late = await _sum(client, ports, "vigie_correlate_late_total")
    done.set()
    await sampler
    ids = await _alert_ids(stack.bootstrap, pipeline.topics.alerts, int(alerts), 60)
    state = await _memory(stack.redis_url, f"{pipeline.redis_prefix}:corr")
    return {
        "events": n,
        "events_per_s": round(n / elapsed, 1),
        "seconds": round(elapsed, 1),
        "late": int(late),
        "alerts": int(alerts),
        "redis_peak_bytes": peak[0] - base,
        "state_bytes": state.get("bytes"),
        "tracked_groups": state.get("groups"),
        "bytes_per_group": state.get("bytes_per_group"),
        "ids": sorted([list(x) for x in set(ids)]),
    }


def _diff(got: list[list[str]], paced: list[list[str]]) -> dict[str, list[int]]:
    """Per rule: [alerts only in this run, alerts only in the paced run]."""
    mine, ref = {tuple(x) for x in got}, {tuple(x) for x in paced}
    out: dict[str, list[int]] = {}
    for side, ids in ((0, mine - ref), (1, ref - mine)):
        for _, rule in ids:
            out.setdefault(rule, [0, 0])[side] += 1
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigie bench backfill", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000, help="events (default 50000)")
    p.add_argument("--paced-rate", type=float, default=None, help="paced run's events/s")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--seed", type=int, default=1)
    return p


def cli(args: list[str], json_out: bool, out: Console, err: Console) -> int:
    """Unpaced with 1 and 2 workers, then paced; print the figures (JSON with ``--json``)."""
    try:
        ns = parser().parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if ns.events < 1000:
        err.print("vigie: --events must be at least 1000", markup=False)
        return 2
    texts = make_history(ns.events, ns.seed)
    key = secrets.token_hex(32)
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-backfill-"))
    result: dict[str, Any] = {
        "bench": "backfill",
        "broker": local_broker(),
        "events": len(texts),
        "cpus": os.cpu_count(),
    }
    with LocalStack(workdir=workdir / "stack") as stack:
        one = asyncio.run(run(stack, workdir, texts, 1, None, key, ns.timeout))
        two = asyncio.run(run(stack, workdir, texts, 2, None, key, ns.timeout))
        rate = ns.paced_rate or max(50.0, one.get("events_per_s", 200.0) / 2)
        paced = asyncio.run(run(stack, workdir, texts, 1, rate, key, ns.timeout))
    ok = all("ids" in r for r in (one, two, paced))
    if ok:
        result["same_alert_ids_1_worker_vs_paced"] = one["ids"] == paced["ids"]
        result["same_alert_ids_2_workers_vs_paced"] = two["ids"] == paced["ids"]
        result["differences_1_worker"] = _diff(one["ids"], paced["ids"])
        result["differences_2_workers"] = _diff(two["ids"], paced["ids"])
        result["paced_rate"] = rate
    for name, r in (("unpaced_1_worker", one), ("unpaced_2_workers", two), ("paced", paced)):
        r.pop("ids", None)
        result[name] = r
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    if not ok:
        err.print("vigie: a run did not complete; see the figures", markup=False)
    return 0 if ok and result["same_alert_ids_1_worker_vs_paced"] else 1
