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
import itertools
import json
import math
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, local_broker
from shared.topics import AGENCIES
from vigie.stack import Pipeline

PAIRS = list(itertools.combinations(AGENCIES, 2))
BACKGROUND_AGENCIES = ("police", "gendarmerie", "douane", "marine", "justice", "ofast")
P99_TARGET_MS = 100.0


def acks() -> int | str:
    """The agencies' producer and the raw hop: ``all`` on Apache Kafka (what the
    services and a production agency use: two replicas written), the leader's
    acknowledgement on Tansu (one broker)."""
    return "all" if local_broker() == "kafka" else 1


_PAIRS = 0  # pairs used so far in this process (each pair gets its own place)
_LETTERS = "ABCDEFGHJKLMNPQRSTVWXYZ"


def shipped_routing() -> dict[str, Any]:
    from services.notify.route import default_routing_path

    doc: dict[str, Any] = yaml.safe_load(default_routing_path().read_text())
    return doc


def critical_group_wait(doc: dict[str, Any]) -> str:
    """The ``group_wait`` of the first route matching ``severity="critical"``."""
    for route in doc["route"].get("routes", []):
        if any('severity="critical"' in m for m in route.get("matchers", [])):
            return str(route.get("group_wait", doc["route"].get("group_wait", "30s")))
    return str(doc["route"].get("group_wait", "30s"))


def ungrouped(doc: dict[str, Any]) -> dict[str, Any]:
    """The same routing with ``group_by: ['...']`` everywhere (each alert its own group)."""

    def walk(route: dict[str, Any]) -> None:
        if "group_by" in route:
            route["group_by"] = ["..."]
        for child in route.get("routes", []):
            walk(child)

    doc = json.loads(json.dumps(doc))
    walk(doc["route"])
    return doc


def departments(doc: dict[str, Any]) -> list[str]:
    return [r["name"][5:] for r in doc["receivers"] if r["name"].startswith("dept-")]


def _plate(n: int) -> str:
    letters = "".join(_LETTERS[(n // 23**i) % 23] for i in range(4))
    return f"{letters[:2]}{n % 1000:03d}{letters[2:]}"


@dataclass
class Stream:
    """Events for one run: background plus overlapping-operation pairs."""

    run: str
    rate: float
    duration: float
    share: float
    depts: list[str]
    first_pair: int = 0
    #: completing event_id -> (publication time, département)
    sent: dict[str, tuple[float, str]] = field(default_factory=dict)
    published: int = 0
    seconds: float = 0.0

    def events(self) -> list[tuple[str, dict[str, Any], bool]]:
        n = int(self.rate * self.duration)
        pairs = max(1, int(n * self.share / 2))
        every = max(2, n // pairs)
        now = datetime.now(UTC)
        out: list[tuple[str, dict[str, Any], bool]] = []
        pair = 0
        pending: list[tuple[str, dict[str, Any]]] = []
        for i in range(n):
            at = (now + timedelta(seconds=i / self.rate)).isoformat()
            if i % every == 0 and pair < pairs:
                # a planned operation; its twin, 100 m away by another agency, comes later
                # Alerts with the same labels share a notification group (Alertmanager's
                # model): later ones would wait group_interval. Labels differ by
                # département and the pair of agencies: 101 x 28 distinct groups.
                k = self.first_pair + pair
                dept = self.depts[k % len(self.depts)]
                first, second = PAIRS[(k // len(self.depts)) % len(PAIRS)]
                # a fresh place for every pair of the bench: 4+ km apart, pairs never meet
                lat, lon = 42.5 + (k // 200) * 0.05, -4.0 + (k % 200) * 0.05
                start = now + timedelta(days=1, hours=pair % 24)
                base = {
                    "type": "planned_operation",
                    "occurred_at": at,
                    "location": {"lat": lat, "lon": lon, "department": dept},
                    "details": {
                        "starts_at": start.isoformat(),
                        "ends_at": (start + timedelta(hours=3)).isoformat(),
                    },
                }
                out.append((first, {**base, "event_id": f"b{self.run}-p{pair}a"}, False))
                twin = json.loads(json.dumps(base))
                twin["location"]["lat"] = lat + 0.0009
                pending.append((second, {**twin, "event_id": f"b{self.run}-p{pair}b"}))
                pair += 1
            elif pending and i % every == every // 2:
                agency, twin_ev = pending.pop(0)
                out.append((agency, twin_ev, True))
            else:
                kind = ("seizure", "arrest", "intel_share")[i % 3]
                ev: dict[str, Any] = {
                    "event_id": f"b{self.run}-{i}",
                    "type": kind,
                    "occurred_at": at,
                    "location": {"department": self.depts[i % len(self.depts)]},
                    "entities": [{"kind": "vehicle", "value": _plate(i)}],
                    "details": {"drug": "cannabis", "quantity_kg": 1.5}
                    if kind == "seizure"
                    else {},
                }
                out.append((BACKGROUND_AGENCIES[i % len(BACKGROUND_AGENCIES)], ev, False))
        for agency, twin_ev in pending:
            out.append((agency, twin_ev, True))
        return out

    async def publish(self, bootstrap: str, topic_of: Any) -> None:
        """Publish at ``rate``, in ticks of 10 ms; completing events are timestamped."""
        events = self.events()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=acks())
        await producer.start()
        try:
            t0 = time.monotonic()
            for i, (agency, ev, completing) in enumerate(events):
                due = t0 + i / self.rate
                delay = due - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                ev["agency"] = agency
                if completing:
                    self.sent[ev["event_id"]] = (time.time(), ev["location"]["department"])
                await producer.send(
                    topic_of(agency), json.dumps(ev).encode(), key=ev["event_id"].encode()
                )
            await producer.flush()
            self.published = len(events)
            self.seconds = time.monotonic() - t0
        finally:
            await producer.stop()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def q(p: float) -> float:
        return round(1000 * v[min(len(v) - 1, math.ceil(p * len(v)) - 1)], 1)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": q(1.0)}


def first_deliveries(stream: Stream, deliveries: list[Any]) -> dict[str, float]:
    """Completing event_id -> when its département cell first received it."""
    first: dict[str, float] = {}
    for d in deliveries:
        for a in d.body.get("alerts", []):
            for e in a.get("evidence", []):
                eid = e.get("event_id", "")
                if eid in stream.sent and d.cell == f"dept-{stream.sent[eid][1]}":
                    first[eid] = min(first.get(eid, math.inf), d.received_at)
    return first


async def _record_times(bootstrap: str, topic: str, ids: set[str]) -> dict[str, float]:
    """event_id -> CreateTime (s) of the first record of ``topic`` naming it.

    A record names an event by ``"event_id": "<id>"`` anywhere in its JSON
    (normalised events, and alerts' evidence)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: dict[str, float] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batch:
                return out
            for msgs in batch.values():
                for m in msgs:
                    text = m.value.decode("utf-8", "replace") if m.value else ""
                    for eid in ids:
                        if eid not in out and f'"{eid}"' in text:
                            out[eid] = m.timestamp / 1000
    finally:
        await consumer.stop()


async def stages(pipeline: Pipeline, stream: Stream) -> dict[str, dict[str, float]]:
    """Where the time goes, per hop, for the delivered matches: publication →
    ``vigie.events.v1`` (ingest), → ``vigie.alerts.v1`` (correlate), → the cell
    (notify). From the records' CreateTime, set by each service's producer."""
    assert pipeline.stack is not None and pipeline.receiver is not None
    first = first_deliveries(stream, list(pipeline.receiver.deliveries))
    ids = set(first)
    bootstrap = pipeline.stack.bootstrap
    ingested = await _record_times(bootstrap, pipeline.topics.events, ids)
    alerted = await _record_times(bootstrap, pipeline.topics.alerts, ids)
    hops: dict[str, list[float]] = {"ingest": [], "correlate": [], "notify": []}
    for eid in ids:
        if eid in ingested and eid in alerted:
            hops["ingest"].append(ingested[eid] - stream.sent[eid][0])
            hops["correlate"].append(alerted[eid] - ingested[eid])
            hops["notify"].append(first[eid] - alerted[eid])
    return {hop: percentiles(v) for hop, v in hops.items()}


def latencies(stream: Stream, deliveries: list[Any]) -> list[float]:
    """Publication → the département cell's first delivery holding each completing event."""
    first = first_deliveries(stream, deliveries)
    return [first[e] - stream.sent[e][0] for e in first]


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
