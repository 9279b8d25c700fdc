"""``vigie bench correlate``: events/s through the correlate worker, default rule pack.

A realistic stream of normalised events (many entities, several
départements, every event type, some located; event times over a month,
mostly in order) is produced once per run to ``vigie.events.v1`` (one
partition). Then one ``vigie run correlate`` worker consumes the whole stream
in each of three modes (``VIGIE_ENGINE_MODE``), on the same data, each pass
under its own consumer group (``VIGIE_CONSUMER_GROUP``) and Redis prefix:

* ``noop``: the same Faust agent and consumer settings (batches of
  ``VIGIE_BATCH_MAX``), doing nothing with the events — not even decoding
  them (the ceiling);
* ``batched``: the engine as shipped (a batch's state ops in a few script
  calls, one pipelined Redis round trip, one more to claim alerts);
* ``naive``: the same engine, decisions and scripts, making one Redis round
  trip per rule and group per event (the baseline).

The three passes alternate for ``--rounds`` rounds (noop, batched, naive,
noop...) and the medians are reported, so a neighbour's burst of load does
not land on one mode only; each round's ratios compare passes a few seconds
apart. Throughput is read from the worker's ``vigie_correlate_events_total``
between the first and the last event (polled every 100 ms near both ends,
sparser in between; start-up and group join excluded); the worker's CPU time
over the same span (all threads, ``/proc``) gives CPU µs per event, a figure a
busy neighbour disturbs far less.
Also reported: Redis round trips per event and Redis memory per tracked group
(``MEMORY USAGE`` over the run's keys, divided by the number of distinct hash
tags). Targets: batched
≥ 60 % of the ceiling, at least 3 times naive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port, local_broker
from shared.models import AXIS_OF_TYPE
from shared.redis import create_redis
from shared.topics import Topics
from vigie.bench.measure import cpu_seconds, next_poll
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


async def _memory(redis_url: str, prefix: str, measure: bool = True) -> dict[str, Any]:
    """``MEMORY USAGE`` of the run's keys (pipelined), per distinct hash tag; then
    the keys are deleted."""
    client = create_redis(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        total, tags = 0, set()
        for i in range(0, len(keys), 1000):
            chunk = keys[i : i + 1000]
            if measure:
                async with client.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.memory_usage(key)
                    total += sum(int(x or 0) for x in await pipe.execute())
                for key in chunk:
                    m = re.search(rb"\{([^}]*)\}", key)
                    if m:
                        tags.add(m.group(1))
            await client.unlink(*chunk)
        if not measure:
            return {}
        return {
            "keys": len(keys),
            "groups": len(tags),
            "bytes": total,
            "bytes_per_group": round(total / max(1, len(tags))),
        }
    finally:
        await client.aclose()


async def run_mode(
    stack: LocalStack,
    workdir: Path,
    mode: str,
    n: int,
    timeout: float,
    topics: Topics,
    group: str,
) -> dict[str, Any]:
    """One worker in ``mode`` over the ``n`` events already on ``topics``, as ``group``."""
    redis_prefix = f"vigiebench:{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dict(os.environ)
    env.update(stack.env())
    env.update(
        {
            "VIGIE_WEB_PORT": str(port),
            "VIGIE_WEB_HOST": "127.0.0.1",
            "VIGIE_TOPIC_PREFIX": topics.prefix,
            "VIGIE_CONSUMER_GROUP": group,
            "VIGIE_REDIS_PREFIX": redis_prefix,
            "VIGIE_TOPIC_PARTITIONS": "1",
            "VIGIE_BROKER_SESSION_TIMEOUT": "6",
            "VIGIE_ENGINE_MODE": mode,
            "VIGIE_LOG_LEVEL": "WARNING",
            "VIGIE_DATA_DIR": str(workdir / f"data-{group}"),
        }
    )
    proc = ServiceProcess("correlate", env, port, workdir / f"correlate-{group}.log")
    proc.start()
    assert proc.proc is not None
    pid = proc.proc.pid
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + timeout
            first: tuple[float, float, float] | None = None
            last: tuple[float, float, float] = (0.0, 0.0, 0.0)
            seen: dict[str, float] = {}
            while time.monotonic() < deadline:
                seen = await _metrics(client, port)
                count = seen.get("vigie_correlate_events_total", 0.0)
                now, cpu = time.monotonic(), cpu_seconds(pid)
                if count > 0 and first is None:
                    first = (now, count, cpu)
                if count >= n:
                    last = (now, count, cpu)
                    break
                if not proc.running:
                    return {"error": f"worker exited: {proc.tail(5)}"}
                await asyncio.sleep(next_poll(first, now, count, n))
            else:
                return {"error": "timeout", "processed": seen.get("vigie_correlate_events_total")}
        assert first is not None
        elapsed = max(1e-6, last[0] - first[0])
        done = max(1.0, last[1] - first[1])
        result: dict[str, Any] = {
            "events": n,
            "events_per_s": round((last[1] - first[1]) / elapsed, 1),
            "cpu_us_per_event": round(1e6 * (last[2] - first[2]) / done, 1),
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
    if mode == "batched":
        result["redis_memory"] = await _memory(stack.redis_url, redis_prefix)
    elif mode == "naive":  # the same state as batched: only cleaned up
        await _memory(stack.redis_url, redis_prefix, measure=False)
    return result


MODES = ("noop", "batched", "naive")


def _median_of(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """The median pass's figures (by events/s), with every pass's rate."""
    ok = sorted((p for p in passes if "events_per_s" in p), key=lambda p: p["events_per_s"])
    if not ok:
        return passes[-1]
    out = dict(ok[(len(ok) - 1) // 2] if len(ok) % 2 else ok[len(ok) // 2])
    out["events_per_s"] = round(statistics.median(p["events_per_s"] for p in ok), 1)
    out["cpu_us_per_event"] = round(statistics.median(p["cpu_us_per_event"] for p in ok), 1)
    out["events_per_s_by_round"] = [p.get("events_per_s") for p in passes]
    return out


async def _run_all(
    stack: LocalStack, workdir: Path, events: list[bytes], rounds: int, timeout: float
) -> dict[str, list[dict[str, Any]]]:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(stack.bootstrap, topics.all(), partitions=1)
    await _produce(stack.bootstrap, topics.events, events)
    passes: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES:
            group = f"{topics.prefix}{mode}-{r}"
            got = await run_mode(stack, workdir, mode, len(events), timeout, topics, group)
            passes[mode].append(got)
    return passes


def cli(args: list[str], json_out: bool, out: Any, err: Any) -> int:
    parser = argparse.ArgumentParser(prog="vigie bench correlate", description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="events in the stream")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating noop/batched/naive passes (median)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mode")
    try:
        opts = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if opts.events < 100:
        err.print("vigie: --events must be at least 100")
        return 2
    events = make_events(opts.events)
    rounds = max(1, opts.rounds)
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-correlate-"))
    result: dict[str, Any] = {
        "bench": "correlate",
        "broker": local_broker(),
        "events": opts.events,
        "workers": 1,
        "rounds": rounds,
    }
    try:
        with LocalStack(workdir=workdir / "stack") as stack:
            passes = asyncio.run(_run_all(stack, workdir, events, rounds, opts.timeout))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for mode in MODES:
        result[mode] = _median_of(passes[mode])
    b, c, nv = result["batched"], result["noop"], result["naive"]
    complete = all("events_per_s" in p for m in MODES for p in passes[m])
    if complete:
        by_round = list(zip(passes["noop"], passes["batched"], passes["naive"], strict=True))
        vs_ceiling = [bb["events_per_s"] / cc["events_per_s"] for cc, bb, _ in by_round]
        vs_naive = [bb["events_per_s"] / nn["events_per_s"] for _, bb, nn in by_round]
        result["ratio_vs_ceiling"] = round(statistics.median(vs_ceiling), 3)
        result["ratio_vs_naive"] = round(statistics.median(vs_naive), 2)
        result["ratio_vs_ceiling_by_round"] = [round(x, 3) for x in vs_ceiling]
        result["ratio_vs_naive_by_round"] = [round(x, 2) for x in vs_naive]
        result["cpu_ratio_vs_ceiling"] = round(c["cpu_us_per_event"] / b["cpu_us_per_event"], 3)
        result["targets_met"] = result["ratio_vs_ceiling"] >= 0.6 and result["ratio_vs_naive"] >= 3
        result["redis_round_trips_per_event"] = b["redis_round_trips_per_event"]
        result["naive_redis_round_trips_per_event"] = nv["redis_round_trips_per_event"]
        result["redis_bytes_per_group"] = b["redis_memory"]["bytes_per_group"]
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    return 0 if complete else 1
