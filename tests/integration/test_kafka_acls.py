"""Per-agency access control on Apache Kafka: SASL_SSL (SCRAM-SHA-512) and ACLs.

A 3-node cluster of this module's own with a SASL_SSL listener (TLS from a CA
the test creates), the standard authorizer and the production ACLs
(:func:`shared.kafkasecurity.acl_plan`): each agency may write and describe
only its own ``agency.<agency>.events``, each service only what it reads and
writes. The denials below are the broker's own answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from shared.kafka import BrokerUnreachable, check_broker, ensure_topics
from shared.kafkasecurity import (
    KafkaSecurity,
    acl_plan,
    agency_principal,
    apply_acls,
    service_principal,
)
from shared.localstack import LocalStack
from shared.topics import Topics
from vigie.demo import EXPECTED_CELLS, bundled_scenario
from vigie.replay import Line, parse_lines, publish
from vigie.stack import SERVICES, Pipeline


@pytest.fixture(scope="module")
def secured(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, KafkaSecurity]]:
    sec = KafkaSecurity()
    s = LocalStack(workdir=tmp_path_factory.mktemp("kacl"), broker="kafka", kafka_security=sec)
    s.redis_url = stack.redis_url
    try:
        s.start_broker()
        yield s, sec
    finally:
        s.stop()


async def _setup(s: LocalStack, prefix: str) -> Topics:
    """The deployment's topics (created by the administrator) and its ACLs."""
    topics = Topics(prefix)
    await ensure_topics(s.bootstrap, topics.all(), 2)
    apply_acls(s.bootstrap, acl_plan(topics, prefix))
    return topics


def _secure(s: LocalStack) -> str:
    assert s.kafka is not None
    return s.kafka.secure_bootstrap


async def test_police_writes_only_its_topic_and_reads_nothing(
    secured: tuple[LocalStack, KafkaSecurity], topic_prefix: str
) -> None:
    s, sec = secured
    topics = await _setup(s, topic_prefix)
    police = sec.client_options(agency_principal("police"))
    producer = AIOKafkaProducer(
        bootstrap_servers=_secure(s), acks="all", enable_idempotence=True, **police
    )
    await producer.start()
    try:
        await producer.send_and_wait(topics.inbound("police"), b"{}")  # its own: allowed
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.inbound("douane"), b"{}")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topics.events, bootstrap_servers=_secure(s), group_id=None, **police
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()


async def test_wrong_password_and_plaintext_are_refused(
    secured: tuple[LocalStack, KafkaSecurity],
) -> None:
    s, sec = secured
    good = sec.client_options(agency_principal("police"))
    await check_broker(_secure(s), options=good)  # the control: right password, TLS
    wrong = sec.client_options(agency_principal("police"), password="not-the-password")
    with pytest.raises(BrokerUnreachable, match="VIGIE_KAFKA_SASL_USERNAME=agency-police"):
        await check_broker(_secure(s), timeout=5, options=wrong)
    with pytest.raises(BrokerUnreachable):  # plaintext on the SASL_SSL listener
        await check_broker(_secure(s), timeout=5)


async def test_the_pipeline_runs_with_least_privilege(
    secured: tuple[LocalStack, KafkaSecurity], tmp_path: Path, topic_prefix: str, uid: str
) -> None:
    """Every service as its own principal, every agency publishing as itself:
    the demo's notifications all arrive."""
    s, sec = secured
    topics = await _setup(s, topic_prefix)
    env = {
        name: {**sec.client_env(service_principal(name)), "VIGIE_KAFKA_BOOTSTRAP": _secure(s)}
        for name in SERVICES
    }
    with Pipeline(
        workdir=tmp_path / "p",
        stack=s,
        topic_prefix=topic_prefix,
        redis_prefix=f"vigietest:{uid}",
        partitions=2,
        service_env=env,
    ) as p:
        assert p.receiver is not None
        lines, bad = parse_lines(bundled_scenario().read_text().splitlines(), topics)
        assert not bad
        by_agency: dict[str, list[Line]] = defaultdict(list)
        for line in lines:
            by_agency[topics.agency_of(line.topic) or ""].append(line)
        for agency, todo in by_agency.items():
            options = sec.client_options(agency_principal(agency))
            await publish(_secure(s), todo, options=options, idempotence=True)
        receiver = p.receiver
        assert receiver.wait_for(lambda r: set(r.by_cell()) >= EXPECTED_CELLS, 40), sorted(
            receiver.by_cell()
        )


def _run_ingest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "VIGIE_PSEUDO_KEY": "k" * 32, **env}
    return subprocess.run(
        [sys.executable, "-m", "vigie", "run", "ingest"],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


def test_a_bad_credential_stops_a_worker_at_start_with_one_line(
    secured: tuple[LocalStack, KafkaSecurity], tmp_path: Path, topic_prefix: str
) -> None:
    s, sec = secured
    good = {
        **sec.client_env(service_principal("ingest")),
        "VIGIE_KAFKA_BOOTSTRAP": _secure(s),
        "VIGIE_REDIS_URL": s.redis_url,
        "VIGIE_TOPIC_PREFIX": topic_prefix,
        "VIGIE_DATA_DIR": str(tmp_path),
    }
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    cases = {
        "VIGIE_KAFKA_SASL_USERNAME": {"VIGIE_KAFKA_SASL_USERNAME": ""},
        "VIGIE_KAFKA_SASL_PASSWORD_FILE": {
            "VIGIE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")
        },
        "VIGIE_KAFKA_SSL_CAFILE": {"VIGIE_KAFKA_SSL_CAFILE": str(tmp_path / "no-ca.pem")},
        "VIGIE_KAFKA_SASL_USERNAME=vigie-ingest": {"VIGIE_KAFKA_SASL_PASSWORD_FILE": str(wrong)},
    }
    for named, change in cases.items():
        res = _run_ingest({**good, **change})
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0, named
        assert len(lines) == 1 and named in lines[0], (named, res.stderr[-800:])
        assert "Traceback" not in res.stderr + res.stdout
