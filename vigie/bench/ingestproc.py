"""The workers ``vigie bench ingest`` measures, and how it reads them.

Contract: :func:`start_ingest` returns a ready ``vigie run ingest`` process (or
raises ``RuntimeError`` with its log's tail when it exits or is not ready in
time); ``CEILING`` is the do-nothing Faust worker's program; :func:`scrape`
sums a worker's ``/metrics`` samples by name (``httpx.HTTPError`` when it does
not answer); :func:`measure` times a worker's counter from its first progress
to ``n`` events (NaN figures when it never progressed before the timeout).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.localstack import LocalStack, free_port
from vigie.bench.measure import cpu_seconds, next_poll
from vigie.stack import ServiceProcess


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


CEILING = r"""
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


def peak_rss_mb(pid: int) -> float:
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
