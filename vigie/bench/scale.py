"""``vigie bench scale``: correlate throughput with 1 and then 2 workers on the same partitions.

Same local broker and Redis, same data (``vigie.bench.correlate.make_events``:
normalised events, default rule pack, shipped ``batched`` engine), same
4-partition ``vigie.events.v1``. For each worker count, the workers
(``vigie run correlate`` processes, one consumer group) are started first and
given time to settle their partition assignment (one session timeout), then
``--events`` events are produced and the throughput is read from the sum of
the workers' ``vigie_correlate_events_total`` between the first and the last
event. Reported: events/s for each count and the ratio 2 workers / 1 worker
(the baseline is the single worker of the same run). On this 2-core machine
the two workers share the cores with the broker, Redis and the producer, so
the ratio measures contention as much as the design; with one worker per
machine it would be the partition split alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port, local_broker
from shared.redis import create_redis
from shared.topics import Topics
from vigie.bench.correlate import _metrics, _produce, make_events
from vigie.stack import ServiceProcess

PARTITIONS = 4


async def run_workers(
    stack: LocalStack, workdir: Path, workers: int, events: list[bytes], timeout: float
) -> dict[str, Any]:
    """Throughput of ``workers`` correlate processes sharing one consumer group."""
    uid = uuid.uuid4().hex[:8]
    topics = Topics(f"scale-{uid}.")
    redis_prefix = f"vigiescale:{uid}"
    await ensure_topics(stack.bootstrap, topics.all(), partitions=PARTITIONS)
    procs: list[ServiceProcess] = []
    for i in range(workers):
        port = free_port()
        env = dict(os.environ)
        env.update(stack.env())
        env.update(
            {
                "VIGIE_WEB_PORT": str(port),
                "VIGIE_WEB_HOST": "127.0.0.1",
                "VIGIE_TOPIC_PREFIX": topics.prefix,
                "VIGIE_REDIS_PREFIX": redis_prefix,
                "VIGIE_TOPIC_PARTITIONS": str(PARTITIONS),
                "VIGIE_BROKER_SESSION_TIMEOUT": "6",
                "VIGIE_LOG_LEVEL": "WARNING",
                "VIGIE_DATA_DIR": str(workdir / f"data-{uid}-{i}"),
            }
        )
        proc = ServiceProcess("correlate", env, port, workdir / f"correlate-{workers}-{i}.log")
        proc.start()
        procs.append(proc)
    n = len(events)
    try:
        deadline = time.monotonic() + 60
        while not all([await asyncio.to_thread(p.ready) for p in procs]):
            if time.monotonic() > deadline or not all(p.running for p in procs):
                return {"error": "workers not ready", "log": procs[0].tail(5)}
            await asyncio.sleep(0.2)
        await asyncio.sleep(7.0)  # let the group settle (Tansu: half the session timeout)
        await _produce(stack.bootstrap, topics.events, events)
        async with httpx.AsyncClient() as client:
            first: tuple[float, float] | None = None
            deadline = time.monotonic() + timeout
            per_worker: list[float] = []
            while time.monotonic() < deadline:
                per_worker = [
                    (await _metrics(client, p.port)).get("vigie_correlate_events_total", 0.0)
                    for p in procs
                ]
                count, now = sum(per_worker), time.monotonic()
                if count > 0 and first is None:
                    first = (now, count)
                if count >= n:
                    break
                await asyncio.sleep(0.05)
            else:
                return {"error": "timeout", "processed": sum(per_worker)}
        assert first is not None
        return {
            "workers": workers,
            "events": n,
            "events_per_s": round((count - first[1]) / max(1e-6, now - first[0]), 1),
            "events_per_worker": [int(c) for c in per_worker],
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.stop()
        client_r = create_redis(stack.redis_url)
        async for key in client_r.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client_r.delete(key)
        await client_r.aclose()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigie bench scale", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10000, help="events per run (default 10000)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    return p


def cli(args: list[str], json_out: bool, out: Console, err: Console) -> int:
    """Run 1 then 2 workers; print figures (one JSON object with ``--json``)."""
    try:
        ns = parser().parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if ns.events < 100:
        err.print("vigie: --events must be at least 100", markup=False)
        return 2
    events = make_events(ns.events)
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-scale-"))
    result: dict[str, Any] = {
        "bench": "scale",
        "broker": local_broker(),
        "partitions": PARTITIONS,
        "cpus": os.cpu_count(),
    }
    with LocalStack(workdir=workdir / "stack") as stack:
        one = asyncio.run(run_workers(stack, workdir, 1, events, ns.timeout))
        two = asyncio.run(run_workers(stack, workdir, 2, events, ns.timeout))
    result["one_worker"], result["two_workers"] = one, two
    ok = "events_per_s" in one and "events_per_s" in two
    if ok:
        result["ratio_2_vs_1"] = round(two["events_per_s"] / one["events_per_s"], 2)
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    if not ok:
        err.print("vigie: a run did not complete; see the figures", markup=False)
    return 0 if ok else 1
