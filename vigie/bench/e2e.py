"""``vigie bench e2e``: agency topic → ingest → correlate → notify → the cell's webhook.

A steady stream at ``--rate`` events/s for ``--duration`` s through the three
services (:class:`vigie.stack.Pipeline`: the local broker, Redis, each service
its own process). A known share (``--share``) of the events completes a match:
two agencies file overlapping planned operations 100 m apart, which the default
pack's ``operation_deconfliction`` (critical) must raise. The rest is
background: seizures, arrests and intelligence on fresh identifiers, which
match nothing but go through every rule.

Latency: from the publication of the event that completes a match (handed to
the producer) to the département cell's receiver getting the notification
(the delivery whose evidence holds that event), in the same clock. Figures:
p50/p95/p99/max, delivered/expected, the same figures per hop for the main
run (``hops``: from the CreateTime of the records each service produced), and
the highest rate of a short bounded
search (``--search``: each rate for ``--step`` s, doubling, stopping at the
first rate whose p99 ≥ 100 ms, that loses a match, or that the producer
cannot sustain).

Routing: the shipped routing file's timers (its ``group_wait`` for critical
alerts is reported with the figures). Its ``group_by: [rule, department]``
is replaced by ``['...']`` (group by every label): alerts with the same group
labels share a notification group, and after the group's first notification
the next alerts wait ``group_interval`` (1 min for critical) by design —
batching, not latency. Each pair therefore gets its own département and pair
of agencies (101 x 28 distinct label sets per bench process).

Baseline, same run, same broker: one raw aiokafka hop (producer → consumer,
``fetch_max_wait_ms`` 10) at the same rate; ratios are Vigie / one raw hop
(lower is better). Exit status 1 when a match is lost at the main rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, local_broker
from vigie.bench.e2eload import (
    Stream,
    acks,
    critical_group_wait,
    departments,
    shipped_routing,
    ungrouped,
)
from vigie.bench.e2emeasure import latencies, percentiles, stages
from vigie.stack import Pipeline

P99_TARGET_MS = 100.0
_PAIRS = 0  # pairs used so far in this process (each pair gets its own place)


async def run_once(
    pipeline: Pipeline,
    rate: float,
    duration: float,
    share: float,
    depts: list[str],
    breakdown: bool = False,
) -> dict[str, Any]:
    """One run at ``rate``; figures for the matches it completed."""
    assert pipeline.stack is not None and pipeline.receiver is not None
    global _PAIRS
    stream = Stream(uuid.uuid4().hex[:6], rate, duration, share, depts, _PAIRS)
    _PAIRS += int(rate * duration * share / 2) + 1
    await stream.publish(pipeline.stack.bootstrap, pipeline.topics.inbound)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if len(latencies(stream, list(pipeline.receiver.deliveries))) >= len(stream.sent):
            break
        await asyncio.sleep(0.1)
    lat = latencies(stream, list(pipeline.receiver.deliveries))
    figures: dict[str, Any] = {
        "rate": rate,
        "achieved_rate": round(stream.published / max(stream.seconds, 1e-6), 1),
        "events": stream.published,
        "matches": len(stream.sent),
        "delivered": len(lat),
        **percentiles(lat),
    }
    if breakdown:
        figures["hops"] = await stages(pipeline, stream)
    return figures


async def raw_hop(bootstrap: str, rate: float, seconds: float) -> dict[str, Any]:
    """Baseline: one raw aiokafka hop on the same broker at the same rate, after one
    second of the same traffic not counted (a fresh JVM broker answers its first
    requests slowly)."""
    topic = f"bench-rawhop-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic], 1)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=10, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=acks())
    await consumer.start()
    await producer.start()
    warm = int(rate)
    n = int(rate * seconds)
    got: list[float] = []
    try:
        await asyncio.sleep(0.5)

        async def consume() -> None:
            seen = 0
            async for msg in consumer:
                seen += 1
                if seen > warm:
                    got.append(time.time() - json.loads(msg.value)["t"])
                if len(got) >= n:
                    return

        task = asyncio.create_task(consume())
        t0 = time.monotonic()
        for i in range(warm + n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
            await producer.send(topic, json.dumps({"t": time.time()}).encode())
        await producer.flush()
        await asyncio.wait_for(task, 15)
    finally:
        await producer.stop()
        await consumer.stop()
    return {"rate": rate, "messages": len(got), **percentiles(got)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigie bench e2e", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=500.0, help="events/s (default 500)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--share", type=float, default=0.02, help="share of events in a match pair")
    p.add_argument(
        "--search",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="search the highest rate with p99 < 100 ms (default on)",
    )
    p.add_argument("--step", type=float, default=5.0, help="seconds per search step")
    p.add_argument("--rates", default="25,50,100,250,500", help="search rates, ascending")
    return p


async def bench(ns: argparse.Namespace, log: Console) -> dict[str, Any]:
    doc = shipped_routing()
    depts = departments(doc)
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-e2e-"))
    routing = workdir / "routing.yml"
    routing.write_text(yaml.safe_dump(ungrouped(doc)))
    result: dict[str, Any] = {
        "bench": "e2e",
        "broker": local_broker(),
        "rule": "operation_deconfliction",
        "routing": "shipped timers, group_by ['...']",
        "critical_group_wait": critical_group_wait(doc),
    }
    with LocalStack(workdir=workdir / "stack") as stack:
        result["baseline_raw_hop"] = await raw_hop(stack.bootstrap, ns.rate, min(ns.duration, 5))
        pipeline = Pipeline(
            workdir=workdir, stack=stack, extra_env={"VIGIE_NOTIFY_ROUTING_FILE": str(routing)}
        )
        await asyncio.to_thread(pipeline.start)
        try:
            log.print(f"e2e: warm-up, then {ns.rate:g} events/s for {ns.duration:g} s")
            await run_once(pipeline, 50, 2, 0.1, depts)  # first notifications open connections
            main = await run_once(pipeline, ns.rate, ns.duration, ns.share, depts, breakdown=True)
            result["main"] = main
            search: list[dict[str, Any]] = []
            best = None
            if ns.search:
                for rate in [float(r) for r in ns.rates.split(",")]:
                    log.print(f"e2e: search {rate:g} events/s for {ns.step:g} s")
                    step = await run_once(pipeline, rate, ns.step, ns.share, depts)
                    search.append(step)
                    ok = (
                        step["delivered"] == step["matches"]
                        and step.get("p99_ms", math.inf) < P99_TARGET_MS
                        and step["achieved_rate"] >= 0.9 * rate
                    )
                    if not ok:
                        break
                    best = rate
                result["search"] = search
                result["max_rate_p99_under_100ms"] = best
        finally:
            await asyncio.to_thread(pipeline.stop)
    base = result["baseline_raw_hop"]
    for q in ("p50_ms", "p99_ms"):
        if q in main and base.get(q):
            result[f"ratio_{q[:-3]}_vs_raw_hop"] = round(main[q] / base[q], 1)
    return result


def cli(args: list[str], json_out: bool, out: Console, err: Console) -> int:
    """Run the benchmark; print figures (one JSON object with ``--json``)."""
    try:
        ns = parser().parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if ns.rate <= 0 or ns.duration <= 0 or not 0 < ns.share <= 0.5:
        err.print("vigie: --rate and --duration must be > 0, --share in (0, 0.5]", markup=False)
        return 2
    log = err if json_out else out
    result = asyncio.run(bench(ns, log))
    if json_out:
        out.print_json(json.dumps(result))
    else:
        out.print(result)
    complete = result["main"]["delivered"] == result["main"]["matches"]
    if not complete:
        err.print("vigie: a match was not delivered to its cell within 10 s", markup=False)
    return 0 if complete else 1
