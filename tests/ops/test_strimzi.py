"""The Kafka cluster's Kubernetes resources say what the tested local cluster does.

Offline (``kubectl kustomize`` only): the KafkaUsers' ACLs are exactly
:func:`shared.kafkasecurity.acl_plan` (the ACLs tests/integration/test_kafka_acls.py
proves on a real cluster), the cluster replicates as the local one does, and
every service authenticates as its own user.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from shared.kafkasecurity import SERVICES, acl_plan, service_principal
from shared.topics import Topics
from tests.ops.metricsdoc import ROOT


def _render(target: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl missing: make tools")
    text = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / target)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    return _render("overlays/prod")


def test_kafka_users_hold_exactly_the_tested_acls(prod: list[dict[str, Any]]) -> None:
    got = set()
    for user in (d for d in prod if d["kind"] == "KafkaUser"):
        if user["metadata"]["name"] == "vigie-keda":
            continue
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            assert res["patternType"] == "literal" and acl["host"] == "*"
            for op in acl["operations"]:
                snake = "".join("_" + c if c.isupper() else c for c in op).lstrip("_").upper()
                got.add((user["metadata"]["name"], res["type"].upper(), res["name"], snake))
    assert got == set(acl_plan(Topics("")))


def test_keda_only_describes(prod: list[dict[str, Any]]) -> None:
    (keda,) = [
        d for d in prod if d["kind"] == "KafkaUser" and d["metadata"]["name"] == "vigie-keda"
    ]
    assert {op for a in keda["spec"]["authorization"]["acls"] for op in a["operations"]} == {
        "Describe"
    }


def test_the_cluster_replicates_and_refuses_anonymous_clients(prod: list[dict[str, Any]]) -> None:
    (kafka,) = [d for d in prod if d["kind"] == "Kafka"]
    (pool,) = [d for d in prod if d["kind"] == "KafkaNodePool"]
    spec = kafka["spec"]["kafka"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"broker", "controller"}
    assert spec["config"]["default.replication.factor"] == 3
    assert spec["config"]["min.insync.replicas"] == 2
    assert spec["config"]["unclean.leader.election.enable"] is False
    assert spec["authorization"]["type"] == "simple"
    for listener in spec["listeners"]:
        assert listener["tls"] is True, listener["name"]
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]
    topics = [d for d in prod if d["kind"] == "KafkaTopic"]
    assert topics and all(t["spec"]["replicas"] == 3 for t in topics)
    assert all(t["spec"]["config"]["min.insync.replicas"] == 2 for t in topics)


def test_every_service_authenticates_as_itself(prod: list[dict[str, Any]]) -> None:
    (env_map,) = [
        d
        for d in prod
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("vigie-env")
    ]
    assert env_map["data"]["VIGIE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env_map["data"]["VIGIE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    for service in SERVICES:
        (dep,) = [
            d
            for d in prod
            if d["kind"] == "Deployment" and d["metadata"]["name"] == f"vigie-{service}"
        ]
        pod = dep["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["VIGIE_KAFKA_SASL_USERNAME"] == service_principal(service)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-user"]["secret"]["secretName"] == service_principal(service)
