"""``vigie bench correlate``: events/s through the correlate worker, default rule pack.

A realistic stream of normalised events (many entities, several
départements, every event type, some located; event times over a month,
mostly in order) is produced once per run to ``vigie.events.v1`` under three
topic prefixes, then one ``vigie run correlate`` worker consumes each, in
three modes (``VIGIE_ENGINE_MODE``), all in the same run on the same data:

* ``noop``: the Faust agent decodes the batch and does nothing (the ceiling);
* ``batched``: the engine as shipped (one pipelined Redis round trip for all
  rules of a batch, one more to claim alerts);
* ``naive``: the same engine making one Redis round trip per rule and group
  per event (the baseline).

Throughput is read from the worker's ``vigie_correlate_events_total`` between
the first and the last event. Also reported: Redis round trips per event
and Redis memory per tracked group (``MEMORY USAGE`` over the run's keys,
divided by the number of distinct hash tags). Targets: batched ≥ 60 % of
the ceiling, at least 3 times naive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.models import AXIS_OF_TYPE
from shared.topics import Topics
from vigie.stack import ServiceProcess

DEPTS = ["13", "75", "93", "69", "59", "33", "76", "2A", "971", "06"]
CENTRES = {d: (43.0 + i * 0.4, 2.0 + i * 0.3) for i, d in enumerate(DEPTS)}
AGENCIES = ["police", "gendarmerie", "douane", "marine", "justice", "ofast"]
KINDS = ["person", "phone", "vehicle", "vessel", "container", "bank_account"]
TYPES = list(AXIS_OF_TYPE)


def make_events(n: int, seed: int = 7) -> list[bytes]:
    """``n`` normalised events; entity tokens from pools sized so some repeat."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    pools = {k: [f"b1:{k}{i:07d}" for i in range(max(50, 4 * n))] for k in KINDS}
    out = []
    for i in range(n):
        etype = rng.choice(TYPES)
        dept = rng.choice(DEPTS)
        lat, lon = CENTRES[dept]
        at = start + timedelta(minutes=i * 43200 / n + rng.uniform(-600, 600))
        ev: dict[str, Any] = {
            "event_id": f"bench-{i}",
            "agency": rng.choice(AGENCIES),
            "type": etype,
            "occurred_at": at.isoformat(),
            "location": {
                "department": dept,
                "lat": lat + rng.uniform(-0.3, 0.3),
                "lon": lon + rng.uniform(-0.3, 0.3),
            },
            "entities": [
                {"kind": k, "token": rng.choice(pools[k])}
                for k in rng.sample(KINDS, rng.randint(0, 3))
            ],
            "details": {},
            "case_ref": f"CASE-{i}",
            "contact": "unit",
            "published_ms": int(time.time() * 1000),
        }
        if etype == "deal_point":
            ev["details"]["status"] = rng.choice(["active", "dismantled"])
        if etype == "planned_operation":
            s = at + timedelta(days=rng.randint(1, 10))
            ev["details"] = {
                "starts_at": s.isoformat(),
                "ends_at": (s + timedelta(hours=4)).isoformat(),
            }
        if etype in {"seizure", "corruption_signal"} and rng.random() < 0.5:
            ev["location"]["site"] = rng.choice(["FRMRS", "FRLEH", "FRDKK", "FRCDG"])
        out.append(json.dumps(ev, separators=(",", ":")).encode())
    return out


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values)]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


_METRIC = re.compile(r"^(vigie_correlate_\w+?)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)


async def _metrics(client: httpx.AsyncClient, port: int) -> dict[str, float]:
    try:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def _memory(redis_url: str, prefix: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        total, keys, tags = 0, 0, set()
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            keys += 1
            total += int(await client.memory_usage(key) or 0)
            m = re.search(rb"\{([^}]*)\}", key)
            if m:
                tags.add(m.group(1))
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
        return {
            "keys": keys,
            "groups": len(tags),
            "bytes": total,
            "bytes_per_group": round(total / max(1, len(tags))),
        }
    finally:
        await client.aclose()


async def run_mode(
    stack: LocalStack, workdir: Path, mode: str, events: list[bytes], timeout: float
) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    topics = Topics(f"bench-{uid}.")
    redis_prefix = f"vigiebench:{uid}"
    await ensure_topics(stack.bootstrap, topics.all(), partitions=1)
    await _produce(stack.bootstrap, topics.events, events)
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
            "VIGIE_ENGINE_MODE": mode,
            "VIGIE_LOG_LEVEL": "WARNING",
            "VIGIE_DATA_DIR": str(workdir / f"data-{mode}"),
        }
    )
    proc = ServiceProcess("correlate", env, port, workdir / f"correlate-{mode}.log")
    proc.start()
    n = len(events)
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + timeout
            first: tuple[float, float] | None = None
            last: tuple[float, float] = (0.0, 0.0)
            seen: dict[str, float] = {}
            while time.monotonic() < deadline:
                seen = await _metrics(client, port)
                count = seen.get("vigie_correlate_events_total", 0.0)
                now = time.monotonic()
                if count > 0 and first is None:
                    first = (now, count)
                if count >= n:
                    last = (now, count)
                    break
                if not proc.running:
                    return {"error": f"worker exited: {proc.tail(5)}"}
                await asyncio.sleep(0.05)
            else:
                return {"error": "timeout", "processed": seen.get("vigie_correlate_events_total")}
        assert first is not None
        elapsed = max(1e-6, last[0] - first[0])
        result: dict[str, Any] = {
            "events": n,
            "events_per_s": round((last[1] - first[1]) / elapsed, 1),
            "redis_round_trips_per_event": round(
                seen.get("vigie_correlate_redis_round_trips_total", 0.0) / n, 4
            ),
            "alerts": int(seen.get("vigie_correlate_alerts_total", 0.0)),
            "late": int(seen.get("vigie_correlate_late_total", 0.0)),
            "mean_batch": round(
                seen.get("vigie_correlate_batch_events_sum", 0.0)
                / max(1.0, seen.get("vigie_correlate_batch_events_count", 0.0)),
                1,
            ),
        }
    finally:
        proc.stop()
    if mode != "noop":
        result["redis_memory"] = await _memory(stack.redis_url, redis_prefix)
    return result


def cli(args: list[str], json_out: bool, out: Any, err: Any) -> int:
    parser = argparse.ArgumentParser(prog="vigie bench correlate", description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="events in the stream")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mode")
    try:
        opts = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if opts.events < 100:
        err.print("vigie: --events must be at least 100")
        return 2
    events = make_events(opts.events)
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-correlate-"))
    result: dict[str, Any] = {"bench": "correlate", "events": opts.events, "workers": 1}
    try:
        with LocalStack(workdir=workdir / "stack") as stack:
            for mode in ("noop", "batched", "naive"):
                result[mode] = asyncio.run(run_mode(stack, workdir, mode, events, opts.timeout))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    b, c, nv = result["batched"], result["noop"], result["naive"]
    if all("events_per_s" in x for x in (b, c, nv)):
        result["ratio_vs_ceiling"] = round(b["events_per_s"] / c["events_per_s"], 3)
        result["ratio_vs_naive"] = round(b["events_per_s"] / nv["events_per_s"], 2)
        result["targets_met"] = result["ratio_vs_ceiling"] >= 0.6 and result["ratio_vs_naive"] >= 3
        result["redis_round_trips_per_event"] = b["redis_round_trips_per_event"]
        result["redis_bytes_per_group"] = b["redis_memory"]["bytes_per_group"]
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    return 0 if all("events_per_s" in x for x in (b, c, nv)) else 1
