"""``vigie bench ingest``: events/s of one ingest worker against a do-nothing Faust agent.

On a private local stack, ``--events`` inbound messages are produced once per
run to the eight agency topics (a realistic mix: 1-4 entities of every kind
drawn from a pool of recurring identifiers, as targets recur across events;
plain v1 JSON with a share of CloudEvents; 5 % invalid, spread over the
refusal reasons). Then, on the *same* data:

* **ceiling**: a Faust worker (``vigie`` app configuration, same consumer
  settings) whose agent only counts events, run as its own process;
* **ingest**: one ``vigie run ingest`` worker.

Each is timed from its first consumed message to the last (read from its
``/metrics``), so start-up and group join are excluded. The two alternate for
``--rounds`` rounds, each under a new consumer group, and the medians are
reported: the ratio is ingest / ceiling (target ≥ 0.70). Each worker's CPU
time per event (all threads) is reported too, with its ratio: a figure that
a busy neighbour disturbs far less than a rate. The ingest worker's peak RSS
(VmHWM) is reported in MB (target < 250).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port, local_broker, spawn
from shared.topics import Topics
from vigie.bench.ingestload import make_messages, produce
from vigie.bench.ingestproc import (
    CEILING,
    Measured,
    measure,
    peak_rss_mb,
    scrape,
    service_env,
    start_ingest,
)

#: Names other code imports from here (the bench's load and workers live in
#: :mod:`vigie.bench.ingestload` and :mod:`vigie.bench.ingestproc`).
__all__ = ["cli", "make_messages", "measure", "run", "scrape", "service_env", "start_ingest"]


def _accounted(m: dict[str, float]) -> float:
    kinds = ("published", "rejected", "duplicates")
    return sum(m.get(f"vigie_ingest_{k}_total", 0.0) for k in kinds)


def _ceiling_pass(
    stack: LocalStack, tmp: Path, prefix: str, partitions: int, events: int, timeout: float, r: int
) -> Measured:
    """The do-nothing Faust agent over the whole data, under a new consumer group."""
    port = free_port()
    env = service_env(
        stack,
        prefix,
        "bench",
        port,
        partitions,
        VIGIE_LOG_LEVEL="WARNING",
        VIGIE_CONSUMER_GROUP=f"{prefix}ceiling-{r}",
    )
    ceiling = spawn([sys.executable, "-c", CEILING], tmp / f"ceiling-{r}.log", env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                scrape(port)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or ceiling.poll() is not None:
                    raise RuntimeError("ceiling worker did not start") from None
                time.sleep(0.2)
        return measure(port, "bench_consumed_total", events, timeout, ceiling.pid)
    finally:
        ceiling.terminate()
        ceiling.wait(15)


def _ingest_pass(
    stack: LocalStack, tmp: Path, prefix: str, partitions: int, events: int, timeout: float, r: int
) -> tuple[Measured, float]:
    """One ingest worker over the whole data (new group, new dedup keys); (figures, RSS MB)."""
    proc = start_ingest(
        stack,
        tmp / f"ingest-{r}",
        prefix,
        f"bench:{secrets.token_hex(4)}",
        partitions,
        VIGIE_LOG_LEVEL="WARNING",
        VIGIE_CONSUMER_GROUP=f"{prefix}ingest-{r}",
    )
    try:
        assert proc.proc is not None
        got = measure(proc.port, "vigie_ingest_consumed_total", events, timeout, proc.proc.pid)
        m = got.metrics
        settle = time.monotonic() + 10
        while _accounted(m) < m.get("vigie_ingest_consumed_total", 0):
            if time.monotonic() > settle:
                break
            time.sleep(0.1)
            m = scrape(proc.port)
        got.metrics = m
        return got, peak_rss_mb(proc.proc.pid)
    finally:
        proc.stop()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(events: int, partitions: int, timeout: float, rounds: int = 3) -> dict[str, Any]:
    """Produce once, then ``rounds`` alternating passes (ceiling, ingest) on the same data.

    Alternating and taking medians keeps a neighbour's load burst from
    landing on one side only; each round's ratio compares two passes a few
    seconds apart. CPU µs per event (the worker's own CPU time, all threads)
    is reported too: it depends far less on what else the machine runs.
    """
    with (
        tempfile.TemporaryDirectory(prefix="vigie-bench-ingest-") as tmp,
        LocalStack(workdir=Path(tmp) / "stack") as stack,
    ):
        prefix = f"bench-{secrets.token_hex(4)}."
        topics = Topics(prefix)
        asyncio.run(ensure_topics(stack.bootstrap, topics.all(), partitions))
        messages = make_messages(events)
        t0 = time.monotonic()
        asyncio.run(produce(stack.bootstrap, topics, messages))
        produce_s = time.monotonic() - t0

        ceilings: list[Measured] = []
        ingests: list[Measured] = []
        rss = 0.0
        for r in range(rounds):
            ceilings.append(_ceiling_pass(stack, Path(tmp), prefix, partitions, events, timeout, r))
            got, peak = _ingest_pass(stack, Path(tmp), prefix, partitions, events, timeout, r)
            ingests.append(got)
            rss = max(rss, peak)
        ratios = [i.rate / c.rate for c, i in zip(ceilings, ingests, strict=True)]
        cpu_ratios = [
            c.cpu_us_per_event / i.cpu_us_per_event for c, i in zip(ceilings, ingests, strict=True)
        ]
        m = ingests[-1].metrics
        done = _accounted(m)
        hist_s = m.get("vigie_ingest_processing_seconds_sum", 0.0)
        ing_n = m.get("vigie_ingest_consumed_total", 0)
        return {
            "bench": "ingest",
            "broker": local_broker(),
            "events": events,
            "partitions": partitions,
            "rounds": rounds,
            "invalid_share": 0.05,
            "produce_s": round(produce_s, 2),
            "ceiling_events_per_s": round(_median([c.rate for c in ceilings])),
            "ingest_events_per_s": round(_median([i.rate for i in ingests])),
            "ratio": round(_median(ratios), 3),
            "ratio_by_round": [round(x, 3) for x in ratios],
            "ceiling_cpu_us_per_event": round(_median([c.cpu_us_per_event for c in ceilings]), 1),
            "ingest_cpu_us_per_event": round(_median([i.cpu_us_per_event for i in ingests]), 1),
            "cpu_ratio": round(_median(cpu_ratios), 3),
            "ingest_events": int(ing_n),
            "ingest_accounted": int(done),
            "ingest_published": int(m.get("vigie_ingest_published_total", 0)),
            "ingest_rejected": int(m.get("vigie_ingest_rejected_total", 0)),
            "ingest_decision_us_per_event": round(1e6 * hist_s / ing_n, 1) if ing_n else None,
            "ingest_peak_rss_mb": round(rss, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "targets": {"ratio": 0.70, "rss_mb": 250},
        }


def cli(args: list[str], json_out: bool, out: Any, err: Any) -> int:
    """Run the benchmark; ``--events N`` (default 100 000).

    Returns 0 when every produced message was accounted for (published,
    rejected or duplicate) before ``--timeout``, else 1. Missing the
    ratio/RSS targets is reported in the figures, not in the exit code.
    """
    parser = argparse.ArgumentParser(prog="vigie bench ingest")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating ceiling/ingest passes (median)"
    )
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if ns.events < 100:
        err.print("vigie: --events must be at least 100")
        return 2
    figures = run(ns.events, ns.partitions, ns.timeout, max(1, ns.rounds))
    if json_out:
        out.print_json(json.dumps(figures))
    else:
        for k, v in figures.items():
            out.print(f"{k:32} {v}")
    if figures["ingest_accounted"] < ns.events:
        err.print("vigie: not every message was accounted for before the timeout")
        return 1
    return 0
