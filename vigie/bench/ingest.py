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
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port, local_broker, spawn
from shared.topics import AGENCIES, Topics
from vigie.bench.measure import cpu_seconds, next_poll
from vigie.stack import ServiceProcess

TYPES = [
    "seizure",
    "intel_share",
    "deal_point",
    "shooting",
    "death_threat",
    "maritime_intel",
    "suspicious_transaction",
    "arrest",
    "corruption_signal",
    "homicide",
]
DEPTS = ["13", "75", "93", "69", "59", "33", "2A", "971", "974", "76", "06", "34"]
VALID_VALUES: dict[str, list[str]] = {
    "phone": [
        f"06 {a:02d} {b:02d} {c:02d} {d:02d}"
        for a, b, c, d in (
            (i % 97, (i * 7) % 100, (i * 13) % 100, (i * 31) % 100) for i in range(400)
        )
    ],
    "bank_account": [
        "FR76 3000 6000 0112 3456 7890 189",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "ES91 2100 0418 4502 0005 1332",
        "BE68 5390 0754 7034",
        "NL91ABNA0417164300",
    ],
    "vehicle": [
        f"{chr(65 + i % 26)}{chr(65 + (i * 3) % 26)}-{i % 1000:03d}-"
        f"{chr(65 + (i * 5) % 26)}{chr(65 + (i * 7) % 26)}"
        for i in range(400)
    ],
    "vessel": ["IMO 9074729", "IMO 9176187", "IMO 9321483", "227006760", "MSC Anna"],
    "container": ["CSQU3054383", "MSKU9070323", "MSCU1234566", "MAEU1234567"],
    "person": [
        f"{f} {s}"
        for f in ("Jean", "Élodie", "Karim", "Sofia", "Lucas", "Inès", "Yanis")
        for s in ("Dupont", "Martin", "Benali", "Moreau", "Garcia", "N'Diaye", "Lefèvre")
    ],
    "organisation": ["Transports Méditerranée SARL", "SCI Les Pins", "Garage du Port"],
    "weapon": ["AK-47 SN 1234", "Glock 17 SN 998877"],
    "parcel": ["LX 123 456 789 FR", "CP 987 654 321 DE"],
}


def _valid_phones() -> list[str]:
    import phonenumbers

    out = []
    for i in range(600):
        raw = f"06 {(i * 7) % 100:02d} {(i * 13) % 100:02d} {(i * 31) % 100:02d} {i % 100:02d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(raw, "FR")):
            out.append(raw)
    return out[:400]


VALID_VALUES["phone"] = _valid_phones()


def make_event(i: int, run: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    agency = AGENCIES[i % len(AGENCIES)]
    kinds = rng.sample(sorted(VALID_VALUES), rng.randint(1, 4))
    loc: dict[str, Any] = {"department": DEPTS[i % len(DEPTS)]}
    if i % 3 == 0:
        loc = {"lat": 43.2 + rng.random() / 10, "lon": 5.3 + rng.random() / 10, "insee": "13055"}
    return {
        "event_id": f"{run}-{i}",
        "agency": agency,
        "type": TYPES[i % len(TYPES)],
        "occurred_at": (now - timedelta(seconds=rng.randint(0, 86400))).isoformat(),
        "location": loc,
        "entities": [{"kind": k, "value": rng.choice(VALID_VALUES[k])} for k in kinds],
        "details": {"drug": "cocaine", "quantity_kg": round(rng.random() * 50, 1)},
        "case_ref": f"{agency.upper()}-{i % 5000}",
        "contact": "cellule renseignement",
    }


def make_messages(n: int, seed: int = 7) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """(agency, value, headers) for ``n`` messages: 5 % invalid, 10 % CloudEvents."""
    rng = random.Random(seed)
    run = secrets.token_hex(4)
    now = datetime.now(UTC)
    out: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
    for i in range(n):
        ev = make_event(i, run, rng, now)
        agency = ev["agency"]
        headers: list[tuple[str, bytes]] = []
        if i % 20 == 19:  # 5 % invalid, several reasons
            bad = (i // 20) % 4
            if bad == 0:
                value = b"{not json"
            elif bad == 1:
                value = json.dumps(dict(ev, type="picnic")).encode()
            elif bad == 2:
                ev["entities"] = [{"kind": "container", "value": "CSQU3054384"}]
                value = json.dumps(ev).encode()
            else:
                value = json.dumps(dict(ev, agency=AGENCIES[(i + 1) % len(AGENCIES)])).encode()
        elif i % 10 == 3:
            value = json.dumps(
                {
                    "specversion": "1.0",
                    "id": ev["event_id"],
                    "source": f"/{agency}",
                    "type": "fr.vigie.event.v1",
                    "datacontenttype": "application/json",
                    "data": ev,
                }
            ).encode()
        elif i % 10 == 7:
            value = json.dumps(ev).encode()
            headers = [
                ("ce_specversion", b"1.0"),
                ("ce_id", ev["event_id"].encode()),
                ("ce_source", f"/{agency}".encode()),
                ("ce_type", b"fr.vigie.event.v1"),
                ("content-type", b"application/json"),
            ]
        else:
            value = json.dumps(ev).encode()
        out.append((agency, value, headers))
    return out


async def produce(
    bootstrap: str, topics: Topics, messages: list[tuple[str, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(topics.inbound(a), v, headers=h or None) for a, v, h in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def service_env(
    stack: LocalStack,
    topic_prefix: str,
    redis_prefix: str,
    port: int,
    partitions: int,
    **extra: str,
) -> dict[str, str]:
    """The environment of a ``vigie run ingest`` child on ``stack``."""
    env = dict(os.environ)
    env.update(stack.env())
    env.update(
        {
            "VIGIE_WEB_PORT": str(port),
            "VIGIE_WEB_HOST": "127.0.0.1",
            "VIGIE_TOPIC_PREFIX": topic_prefix,
            "VIGIE_REDIS_PREFIX": redis_prefix,
            "VIGIE_BROKER_SESSION_TIMEOUT": "6",
            "VIGIE_TOPIC_PARTITIONS": str(partitions),
        }
    )
    env.setdefault("VIGIE_PSEUDO_KEY", secrets.token_hex(32))
    env.update(extra)
    return env


def start_ingest(
    stack: LocalStack,
    workdir: Path,
    topic_prefix: str,
    redis_prefix: str,
    partitions: int = 4,
    wait: float = 60.0,
    **extra: str,
) -> ServiceProcess:
    """One ``vigie run ingest`` process on ``stack``, ready; log in ``workdir/ingest.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = service_env(stack, topic_prefix, redis_prefix, port, partitions, **extra)
    proc = ServiceProcess("ingest", env, port, workdir / "ingest.log")
    proc.start()
    deadline = time.monotonic() + wait
    while not proc.ready():
        if not proc.running:
            raise RuntimeError(f"ingest exited at start:\n{proc.tail(15)}")
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"ingest not ready after {wait:.0f}s:\n{proc.tail(15)}")
        time.sleep(0.2)
    return proc


def scrape(port: int) -> dict[str, float]:
    """Sums of every sample of ``/metrics`` by sample name (labels summed)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


_CEILING = r"""
import sys
from prometheus_client import CollectorRegistry, Counter
from shared.app import create_app, run_worker
from shared.settings import Settings, load
from shared.topics import Topics
settings = load(Settings)
registry = CollectorRegistry()
app, _ = create_app("benchceiling", settings, registry)
topics = Topics(settings.topic_prefix)
seen = Counter("bench_consumed_total", "events", registry=registry)
inbound = app.topic(*topics.all_inbound, value_serializer="raw", key_serializer="raw")
@app.agent(inbound)
async def nothing(stream):
    async for ev in stream.events():
        seen.inc()
sys.exit(run_worker(app, "benchceiling", settings))
"""


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Measured:
    """Rate and CPU cost of one worker over one pass on the data."""

    def __init__(self, rate: float, cpu_s: float, count: float, metrics: dict[str, float]):
        self.rate = rate
        self.cpu_s = cpu_s
        self.count = count
        self.metrics = metrics

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_s / self.count if self.count else float("nan")


def measure(port: int, name: str, n: int, timeout: float, pid: int | None = None) -> Measured:
    """Events/s of a worker: counter ``name`` polled from the first poll that sees
    progress to the one that sees ``n`` (start-up and group join excluded).
    With ``pid``, the worker's CPU time over the same span is measured too.

    Polls are sparse in between (:func:`~vigie.bench.measure.next_poll`).
    """
    deadline = time.monotonic() + timeout
    start: tuple[float, float, float] | None = None
    cpu = 0.0
    while True:
        m = scrape(port)
        now, count = time.monotonic(), m.get(name, 0.0)
        if pid is not None:
            cpu = cpu_seconds(pid)
        if start is None and count > 0:
            start = (now, count, cpu)
        if count >= n or now > deadline:
            break
        time.sleep(next_poll(start, now, count, n))
    if start is None or now <= start[0]:
        return Measured(float("nan"), float("nan"), 0.0, m)
    done = count - start[1]
    return Measured(done / (now - start[0]), cpu - start[2], done, m)


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
    ceiling = spawn([sys.executable, "-c", _CEILING], tmp / f"ceiling-{r}.log", env)
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
        return got, _peak_rss_mb(proc.proc.pid)
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
