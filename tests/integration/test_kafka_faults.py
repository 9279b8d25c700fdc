"""Broker faults on Apache Kafka: what Tansu (memory only, one process) cannot show.

A 3-node KRaft cluster of its own (topics with replication 3 and
``min.insync.replicas`` 2, producers ``acks=all`` and idempotent), a private
Redis, the three services as processes, and a webhook receiver counting what
each cell gets. Each test streams target-deconfliction matches (police first,
customs second, one per département), breaks the cluster mid-stream, and
checks that every expected notification arrived and none twice: no worker is
killed here, so the documented bound on repeats (``VIGIE_NOTIFY_PER_RECEIVER``
per cell, for a notify worker killed mid-delivery) does not apply, and the
bound is zero.

The counts (sent, expected, delivered, duplicates) are printed on one
``fault-counts`` line per test (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from aiokafka.errors import KafkaError

from shared.kafkacluster import KafkaCluster, KafkaNode
from shared.localstack import LocalStack
from tests.integration.test_faults import pair, td_cells
from tests.notifystack import drained
from tests.waiting import metric, until
from vigie.replay import Line, publish
from vigie.stack import Pipeline

DEPTS = ["13", "59", "75", "76", "69", "33", "2A", "93", "971", "972", "973", "974"]
SESSION = 6.0


@pytest.fixture(scope="module")
def kstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A Kafka cluster and a Redis of this module's own (the faults must not reach
    the session's cluster)."""
    with LocalStack(
        workdir=tmp_path_factory.mktemp("kfaults"), broker="kafka", use_env_redis=False
    ) as s:
        yield s


@pytest.fixture
def pipeline(kstack: LocalStack, tmp_path: Path) -> Iterator[Pipeline]:
    uid = uuid.uuid4().hex[:8]
    p = Pipeline(
        workdir=tmp_path / "p",
        stack=kstack,
        topic_prefix=f"kf-{uid}.",
        redis_prefix=f"vigietest:kf{uid}",
        session_timeout=SESSION,
    )
    p.start()
    try:
        yield p
    finally:
        p.stop()
        assert kstack.kafka is not None
        for node in kstack.kafka.members:  # leave the cluster whole for the next test
            node.resume()
            if not node.running:
                kstack.kafka.start_node(node, wait=False)
        kstack.kafka.wait_ready()


def lines(p: Pipeline, second: bool) -> list[Line]:
    """One half of each département's match (the pipeline's prefix makes the run id)."""
    run = p.topic_prefix[3:9]
    return [pair(p.topics, run, i, d, second) for i, d in enumerate(DEPTS)]


async def publish_resilient(p: Pipeline, todo: list[Line], rate: float | None = None) -> int:
    """Publish with an idempotent, acks=all producer, as an agency would."""
    assert p.stack is not None
    return await publish(p.stack.bootstrap, todo, rate, idempotence=True)


def handled(p: Pipeline, service: str, name: str, at_least: int) -> Callable[[], bool]:
    """A fact: ``service`` counted ``at_least`` events (its metric ``name``)."""
    port = p.services[service].port
    return lambda: metric(port, name) >= at_least


def leads_nothing(cluster: KafkaCluster, node: KafkaNode, p: Pipeline) -> Callable[[], bool]:
    """A fact: the controller moved every partition's leadership off ``node``."""
    topics = [*p.topics.all(), "__consumer_offsets"]

    def fact() -> bool:
        try:
            return cluster.leaders(topics)[node.node_id] == 0
        except KafkaError:  # no node answered the metadata request this time
            return False

    return fact


async def delivered_exactly(p: Pipeline, name: str, sent: int, timeout: float) -> None:
    """Wait until every département's notification arrived; then, once every
    service has handled all and notify sent all it had due, check none came twice."""
    assert p.receiver is not None and p.stack is not None
    receiver = p.receiver
    want = sorted(f"dept-{d}" for d in DEPTS)
    try:
        await until(
            lambda: set(want) <= set(td_cells(receiver.deliveries)),
            timeout,
            lambda: f"cells waiting: {sorted(set(want) - set(td_cells(receiver.deliveries)))}",
        )
        with redis.Redis.from_url(p.stack.redis_url) as sync:
            await drained(p, sync, timeout=timeout)  # a duplicate would be there now
    finally:
        got = td_cells(receiver.deliveries)
        counts = {
            "test": name,
            "sent": sent,
            "expected": len(want),
            "delivered": len(got),
            "distinct": len(set(got)),
            "duplicates": len(got) - len(set(got)),
        }
        print("fault-counts", json.dumps(counts))
    assert sorted(got) == want, counts


async def busiest_leader_down_mid_stream(
    p: Pipeline,
    name: str,
    after: int,
    down: Callable[[KafkaNode], None],
    up: Callable[[KafkaCluster, KafkaNode], None],
    timeout: float,
) -> KafkaNode:
    """Stream the matches; once ingest counted ``after`` events, take the node
    leading most partitions ``down``, keep it so until the controller moved its
    leaderships, bring it ``up``; then every notification exactly once."""
    assert p.stack is not None and p.stack.kafka is not None
    cluster = p.stack.kafka
    todo = lines(p, False) + lines(p, True)
    sender = asyncio.create_task(publish_resilient(p, todo, 2.4))  # ≈ 10 s
    await until(handled(p, "ingest", "vigie_ingest_consumed_total", after), 60, "mid-stream")
    victim = await asyncio.to_thread(
        cluster.busiest_leader, [*p.topics.all(), "__consumer_offsets"]
    )
    down(victim)
    fenced = leads_nothing(cluster, victim, p)
    await until(lambda: asyncio.to_thread(fenced), 60, "the node's partitions led elsewhere")
    await asyncio.to_thread(up, cluster, victim)
    sent = await sender
    await delivered_exactly(p, name, sent, timeout)
    return victim


async def test_sigkill_the_busiest_leader_mid_stream_then_restart_it(pipeline: Pipeline) -> None:
    """SIGKILL the node leading most partitions of the pipeline's topics while
    events stream; restart it on its log once its partitions are led elsewhere."""
    await busiest_leader_down_mid_stream(
        pipeline,
        "sigkill-busiest-leader",
        6,
        KafkaNode.kill,
        lambda cluster, node: cluster.start_node(node),
        60,
    )


async def test_whole_cluster_stopped_and_started_on_its_data(pipeline: Pipeline) -> None:
    """Every node stopped mid-stream, then started again on the same data folders:
    the services reconnect by themselves and finish the stream; records and
    committed offsets written before the stop are still there."""
    assert pipeline.stack is not None and pipeline.stack.kafka is not None
    cluster = pipeline.stack.kafka
    firsts, seconds = lines(pipeline, False), lines(pipeline, True)
    sent = await publish_resilient(pipeline, firsts + seconds[:4])
    busy = handled(pipeline, "correlate", "vigie_correlate_events_total", 1)
    await until(busy, 60, "correlate handled an event")  # the pipeline is busy with them
    pids = {k: s.proc.pid for k, s in pipeline.services.items() if s.proc}
    await asyncio.to_thread(cluster.stop)
    services = list(pipeline.services.values())
    await until(lambda: not any(s.ready() for s in services), 30, "no service ready")
    await asyncio.to_thread(cluster.start)
    sent += await publish_resilient(pipeline, seconds[4:])
    await delivered_exactly(pipeline, "whole-cluster-restart", sent, 90)
    # nobody restarted a service: they reconnected
    assert {k: s.proc.pid for k, s in pipeline.services.items() if s.proc} == pids
    assert all(s.running for s in pipeline.services.values())


async def test_sigstop_a_broker_past_the_session_timeout_then_sigcont(pipeline: Pipeline) -> None:
    """One node frozen (SIGSTOP) longer than the session timeouts (the group's and
    the broker's registration with the controller), then thawed (SIGCONT): frozen
    until the controller fenced it (its 9 s registration, past the group's 6 s
    session) and every partition it led is led by another node."""
    victim = await busiest_leader_down_mid_stream(
        pipeline, "sigstop-broker", 4, KafkaNode.pause, lambda _, node: node.resume(), 90
    )
    assert victim.running
