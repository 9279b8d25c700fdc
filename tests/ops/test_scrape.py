"""What the three services expose, checked two ways on one running pipeline.

One pipeline (Tansu, Redis, the three services as processes) for the module,
fed with the demo scenario plus one message that is not JSON, so that most
labelled metrics have at least one child:

* ``/metrics`` of each service against docs/metrics.md: the same names, types
  and label names (Faust's sensor and the process/Python collectors are
  documented as groups and left out);
* a real Prometheus (Debian ``prometheus``) on loopback scrapes the three
  services: every target ``up`` and a service metric read from each.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.localstack import LocalStack, free_port
from tests.kafkautil import produce
from tests.ops.metricsdoc import ROOT, documented, is_grouped
from tests.waiting import wait_for
from vigie.demo import EXPECTED_CELLS, bundled_scenario
from vigie.replay import parse_lines, publish
from vigie.stack import SERVICES, Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The three services with some traffic behind them (demo scenario + one bad message)."""
    uid = uuid.uuid4().hex[:10]
    prefix = f"vigietest:{uid}"
    p = Pipeline(
        workdir=tmp_path_factory.mktemp("scrape"),
        stack=stack,
        topic_prefix=f"test-{uid}.",
        redis_prefix=prefix,
    )
    p.start()
    try:
        lines, bad = parse_lines(bundled_scenario().read_text().splitlines(), p.topics)
        assert not bad
        asyncio.run(publish(stack.bootstrap, lines))
        asyncio.run(produce(stack.bootstrap, p.topics.inbound("police"), [b"not json"]))
        assert p.receiver is not None
        assert p.receiver.wait_for(lambda r: set(r.by_cell()) >= EXPECTED_CELLS, 30)
        yield p
    finally:
        p.stop()
        client = redis.Redis.from_url(stack.redis_url)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def _exposed(port: int) -> dict[str, tuple[str, frozenset[str], int]]:
    """name -> (type, label names, samples) as served on /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    out = {}
    for fam in text_string_to_metric_families(text):
        name = f"{fam.name}_total" if fam.type == "counter" else fam.name
        labels: set[str] = set()
        for sample in fam.samples:
            labels |= set(sample.labels) - {"le", "quantile"}
        out[name] = (fam.type, frozenset(labels), len(fam.samples))
    return out


def _created(name: str, exposed: dict[str, Any]) -> bool:
    """prometheus-client's ``<name>_created`` gauge beside each counter and histogram."""
    base = name.removesuffix("_created")
    return name != base and (f"{base}_total" in exposed or base in exposed)


def test_metrics_match_the_doc(pipeline: Pipeline) -> None:
    doc = documented()
    seen: set[str] = set()
    labels_compared = 0
    for svc in SERVICES:
        exposed = _exposed(pipeline.services[svc].port)
        mine = {n: v for n, v in exposed.items() if not is_grouped(n) and not _created(n, exposed)}
        assert any(n.startswith(f"vigie_{svc}_faust_") for n in exposed), svc
        for name, (kind, labels, samples) in mine.items():
            assert name.startswith("vigie_"), f"{svc}: {name} outside the vigie_ namespace"
            assert name in doc, f"{svc} exposes {name}, missing from docs/metrics.md"
            assert doc[name].type == kind, f"{name}: {kind} exposed, {doc[name].type} documented"
            if samples and labels:
                assert labels == doc[name].labels, f"{name}: labels {sorted(labels)} exposed"
                labels_compared += 1
            elif samples:
                assert not doc[name].labels, f"{name}: no labels exposed, some documented"
        seen |= set(mine)
        # every metric documented for this service is exposed by it
        for name in doc:
            if name.startswith(f"vigie_{svc}_"):
                assert name in exposed, f"docs/metrics.md lists {name}, {svc} does not expose it"
    assert "vigie_worker_ready" in seen
    assert set(doc) <= seen
    assert labels_compared >= 8, "too little traffic to compare label names"


def _kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl is missing: run `make tools`"
    return path


def _query(base: str, q: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": q}, timeout=5.0)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def test_a_real_prometheus_scrapes_the_three_services(pipeline: Pipeline, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run `make tools`"
    # The recording and alerting rules as deployed, evaluated on live data.
    rendered = subprocess.run(
        [_kubectl(), "kustomize", str(ROOT / "deploy" / "k8s" / "base")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (rule,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "PrometheusRule"]
    (tmp_path / "vigie-rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    config = {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
        },
        "rule_files": [str(tmp_path / "vigie-rules.yml")],
        "scrape_configs": [
            {
                "job_name": f"vigie-{svc}",
                "static_configs": [{"targets": [f"127.0.0.1:{pipeline.services[svc].port}"]}],
            }
            for svc in SERVICES
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        up: dict[str, str] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                up = {r["metric"]["job"]: r["value"][1] for r in _query(base, "up")}
                if len(up) == 3 and set(up.values()) == {"1"}:
                    break
            time.sleep(0.5)
        assert up == {f"vigie-{s}": "1" for s in SERVICES}, (
            up,
            (tmp_path / "prometheus.log").read_text()[-2000:],
        )
        # A metric of each service's own, read back through PromQL.
        reads = {
            "ingest": 'sum(vigie_ingest_consumed_total{job="vigie-ingest"})',
            "correlate": 'sum(vigie_correlate_events_total{job="vigie-correlate"})',
            "notify": 'sum(vigie_notify_notifications_total{job="vigie-notify"})',
        }
        for svc, q in reads.items():
            (res,) = _query(base, q)
            assert float(res["value"][1]) > 0, svc

        # The recorded consumer lag (Faust's offsets) exists for the three services.
        def lags() -> set[str]:
            res = _query(base, "max by (service) (vigie:consumer_lag:sum)")
            return {r["metric"]["service"] for r in res}

        wait_for(lambda: lags() == set(SERVICES), 15, lambda: f"lag recorded for {lags()}")
        ready = _query(base, "min by (job) (vigie_worker_ready)")
        assert {r["metric"]["job"]: r["value"][1] for r in ready} == {
            f"vigie-{s}": "1" for s in SERVICES
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
