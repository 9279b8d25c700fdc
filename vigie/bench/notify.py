"""``vigie bench notify``: alerts/s from ``vigie.alerts.v1`` to a local webhook receiver.

Publishes ``--alerts`` alerts (each its own group: ``group_by: ['...']``, so
many groups; one in five critical, which also goes to hq) to the notify
worker on the local stack and measures, per delivered (alert, cell), the time
from publication to the receiver; throughput is alerts over the time from the
first publication to the last delivery.

Baseline, same run, same machine: when ``prometheus-alertmanager`` is
installed, Alertmanager runs on loopback with the *same routing file* (its
receivers given webhook configs to an identical local receiver), the same
alerts are POSTed to its v2 API in batches, and the same figures are taken.
Ratios are Vigie / Alertmanager (throughput: higher is better; p99: lower).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaProducer
from redis.asyncio.cluster import RedisCluster

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port, local_broker, spawn
from shared.redis import create_redis, is_cluster
from vigie.bench.measure import cpu_seconds
from vigie.receiver import WebhookReceiver
from vigie.stack import Pipeline

DEPTS = ["13", "76", "75", "69", "59", "33", "2A", "971"]


def routing_doc() -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {"receiver": "hq", "matchers": ['severity="critical"'], "continue": True}
    ]
    routes += [{"receiver": f"dept-{d}", "matchers": [f'department="{d}"']} for d in DEPTS]
    return {
        "route": {
            "receiver": "hq",
            "group_by": ["..."],
            "group_wait": "0s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": [{"name": "hq"}] + [{"name": f"dept-{d}"} for d in DEPTS],
    }


def alert_labels(i: int, run: str) -> dict[str, str]:
    return {
        "rule": "bench",
        "severity": "critical" if i % 5 == 0 else "high",
        "department": DEPTS[i % len(DEPTS)],
        "axis": "organisations",
        "case": f"{run}-{i}",
    }


def expected_deliveries(n: int) -> int:
    return n + sum(1 for i in range(n) if i % 5 == 0)


def figures(
    sent: dict[str, float], rx: WebhookReceiver, key: str, n: int, t0: float
) -> dict[str, Any]:
    lat, last = [], t0
    for d in rx.deliveries:
        for a in d.body.get("alerts", []):
            case = a["labels"].get("case", "")
            if case in sent:
                lat.append(d.received_at - sent[case])
                last = max(last, d.received_at)
    lat.sort()
    if not lat:
        return {"delivered": 0}
    return {
        "alerts": n,
        "deliveries": len(lat),
        "expected_deliveries": expected_deliveries(n),
        "alerts_per_s": round(n / max(1e-6, last - t0), 1),
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
        "max_ms": round(1000 * lat[-1], 1),
        "system": key,
    }


async def redis_commands(url: str) -> int:
    """Commands Redis has processed so far (``INFO stats``)."""
    client = create_redis(url)
    try:
        if is_cluster(client):  # one INFO a master, summed
            per_node = await client.info("stats", target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
            return sum(int(i["total_commands_processed"]) for i in per_node.values())
        return int((await client.info("stats"))["total_commands_processed"])
    finally:
        await client.aclose()


async def wait_deliveries(rx: WebhookReceiver, want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(len(d.body.get("alerts", [])) for d in rx.deliveries) >= want:
            return
        await asyncio.sleep(0.02)


async def pace(t0: float, i: int, rate: float) -> None:
    """Sleep until alert ``i`` is due at ``rate`` alerts/s (0: as fast as possible)."""
    if rate > 0:
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_vigie(
    stack: LocalStack,
    workdir: Path,
    n: int,
    timeout: float,
    workers: int = 1,
    rate: float = 0,
    fetch_wait_ms: int = 1,
) -> dict[str, Any]:
    rx = WebhookReceiver(secret=b"bench-secret").start()
    routing = workdir / "routing.yml"
    routing.write_text(yaml.safe_dump(routing_doc()))
    p = Pipeline(
        workdir=workdir / "vigie",
        stack=stack,
        receiver=rx,
        topic_prefix="bench.",
        redis_prefix=f"vigiebench:{int(time.time())}",
        extra_env={
            "VIGIE_NOTIFY_ROUTING_FILE": str(routing),
            "VIGIE_LOG_LEVEL": "WARNING",
            "VIGIE_FETCH_MAX_WAIT_MS": str(fetch_wait_ms),
        },
    )
    p.workdir.mkdir(parents=True, exist_ok=True)
    p._pseudo_key = "0" * 64  # unused by notify
    await ensure_topics(stack.bootstrap, p.topics.all(), p.partitions)
    names = []
    for w in range(workers):
        await asyncio.to_thread(p.start_service, "notify", str(w) if w else "")
        names.append("notify" + (str(w) if w else ""))
    try:
        await asyncio.to_thread(p.wait_ready, 60, names)
        if workers > 1:
            await asyncio.sleep(p.session_timeout)  # let the group settle on every member
        # No linger: each alert leaves at once, as each alert POSTed to Alertmanager does.
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
        await producer.start()
        sent: dict[str, float] = {}
        run = f"v{int(time.time())}"
        pids = [proc.pid for name in names if (proc := p.services[name].proc) is not None]
        redis_proc = stack.redis.proc if stack.redis is not None else None
        deps = [*stack.broker_pids(), *([redis_proc.pid] if redis_proc is not None else [])]
        cpu0, cmds0 = cpu_seconds(*pids), await redis_commands(stack.redis_url)
        deps0 = cpu_seconds(*deps)
        t0 = time.time()
        try:
            for i in range(n):
                await pace(t0, i, rate)
                labels = alert_labels(i, run)
                body: dict[str, Any] = {
                    "alert_id": f"{run}-{i:06d}",
                    "rule": "bench",
                    "severity": labels["severity"],
                    "labels": labels,
                    "annotations": {"summary": f"bench {i}"},
                    "starts_at": datetime.now(UTC).isoformat(),
                    "evidence": [],
                }
                sent[labels["case"]] = time.time()
                await producer.send(
                    p.topics.alerts, json.dumps(body).encode(), key=body["alert_id"].encode()
                )
            await producer.flush()
        finally:
            await producer.stop()
        await wait_deliveries(rx, expected_deliveries(n), timeout)
        cpu = cpu_seconds(*pids) - cpu0
        deps_cpu = cpu_seconds(*deps) - deps0
        cmds = await redis_commands(stack.redis_url) - cmds0
        return {
            **figures(sent, rx, "vigie", n, t0),
            "workers": workers,
            # Less noisy than wall-clock figures on a shared machine:
            "cpu_ms_per_alert": round(1000 * cpu / n, 3),
            "redis_commands_per_alert": round(cmds / n, 2),
            # what Vigie needs besides itself: the broker and Redis (0 for a Redis not ours)
            "broker_redis_cpu_ms_per_alert": round(1000 * deps_cpu / n, 3),
        }
    finally:
        p.stop()


def start_alertmanager(
    binary: str, workdir: Path, doc: dict[str, Any], port: int
) -> subprocess.Popen[bytes]:
    """Alertmanager on loopback, no clustering, with ``doc`` as its configuration."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(doc))
    proc = spawn(
        [
            binary,
            f"--config.file={cfg}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir / "alertmanager.log",
    )
    return proc


async def run_alertmanager(
    binary: str, workdir: Path, n: int, timeout: float, batch: int, rate: float = 0
) -> dict[str, Any]:
    rx = WebhookReceiver().start()
    doc = routing_doc()
    for r in doc["receivers"]:
        r["webhook_configs"] = [
            {"url": f"http://127.0.0.1:{rx.port}/cells/{r['name']}", "send_resolved": False}
        ]
    port = free_port()
    proc = await asyncio.to_thread(start_alertmanager, binary, workdir, doc, port)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{base}/-/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            sent: dict[str, float] = {}
            run = f"a{int(time.time())}"
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.time()
            if rate > 0:
                batch = max(1, min(batch, int(rate / 100)))  # a POST every ~10 ms
            for start in range(0, n, batch):
                await pace(t0, start, rate)
                items = []
                for i in range(start, min(n, start + batch)):
                    labels = alert_labels(i, run)
                    sent[labels["case"]] = time.time()
                    items.append(
                        {
                            "labels": {"alertname": "bench", **labels},
                            "annotations": {"summary": f"bench {i}"},
                            "startsAt": datetime.now(UTC).isoformat(),
                        }
                    )
                r = await client.post(f"{base}/api/v2/alerts", json=items)
                r.raise_for_status()
        await wait_deliveries(rx, expected_deliveries(n), timeout)
        cpu = cpu_seconds(proc.pid) - cpu0
        return {
            **figures(sent, rx, "alertmanager", n, t0),
            "cpu_ms_per_alert": round(1000 * cpu / n, 3),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        rx.stop()


def cli(args: list[str], json_out: bool, out: Any, err: Any) -> int:
    parser = argparse.ArgumentParser(prog="vigie bench notify", description=__doc__)
    parser.add_argument("--alerts", type=int, default=2000, help="alerts to publish")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    parser.add_argument(
        "--batch", type=int, default=64, help="alerts per POST to Alertmanager's API"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="notify worker processes (replicas sharing the partitions)",
    )
    parser.add_argument(
        "--rate", type=float, default=0, help="alerts/s to publish (0: as fast as possible)"
    )
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=1,
        help="notify's VIGIE_FETCH_MAX_WAIT_MS: the local broker (Tansu) holds every fetch "
        "that long even when alerts wait, Apache Kafka answers at once; 1 ms makes the hop "
        "cost what it costs on Kafka (10: the local stack's default)",
    )
    parser.add_argument("--no-alertmanager", action="store_true", help="skip the baseline")
    try:
        opts = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if opts.alerts < 1:
        err.print("vigie: --alerts must be at least 1")
        return 2
    binary = (
        None
        if opts.no_alertmanager
        else (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))
    )
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-notify-"))
    result: dict[str, Any] = {
        "bench": "notify",
        "broker": local_broker(),
        "alerts": opts.alerts,
        "rate": opts.rate,
        "fetch_wait_ms": opts.fetch_wait_ms,
    }
    with LocalStack(workdir=workdir / "stack") as stack:
        result["vigie"] = asyncio.run(
            run_vigie(
                stack,
                workdir,
                opts.alerts,
                opts.timeout,
                max(1, opts.workers),
                opts.rate,
                max(0, opts.fetch_wait_ms),
            )
        )
    if binary:
        am = asyncio.run(
            run_alertmanager(
                binary, workdir / "am", opts.alerts, opts.timeout, opts.batch, opts.rate
            )
        )
        result["alertmanager"] = am
        v = result["vigie"]
        if am.get("alerts_per_s") and v.get("alerts_per_s"):
            result["throughput_ratio"] = round(v["alerts_per_s"] / am["alerts_per_s"], 2)
            result["p99_ratio"] = round(v["p99_ms"] / max(0.1, am["p99_ms"]), 2)
    else:
        result["alertmanager"] = None
        result["note"] = "prometheus-alertmanager not installed: no baseline"
    shutil.rmtree(workdir, ignore_errors=True)
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    complete = result["vigie"].get("deliveries") == result["vigie"].get("expected_deliveries")
    if not complete:
        err.print("vigie: not every notification arrived before the timeout")
    return 0 if complete else 1
