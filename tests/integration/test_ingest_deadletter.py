"""The dead-letter path on the real broker: records keep the original key and
headers and stay under the DLQ topic's ``max.message.bytes``."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.ingest.deadletter import framed_size
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from shared.topics import Topics
from tests.integration.test_ingest import enc, event
from tests.kafkautil import committed, consume_all, produce, wait_services_caught_up
from tests.waiting import wait_metric
from vigie.bench.ingest import scrape, start_ingest

CAP = 4096


async def create_capped(bootstrap: str, topic: str, cap: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": str(cap)})]
        )
    finally:
        await admin.close()


@pytest.mark.brokers
async def test_dead_letter_keeps_key_headers_and_fits_the_topic_cap(
    broker_stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str
) -> None:
    """On Apache Kafka the broker itself enforces the cap (a record over it is refused)."""
    stack = broker_stack
    topics = Topics(topic_prefix)
    await create_capped(stack.bootstrap, topics.events_dlq, CAP)
    await ensure_topics(stack.bootstrap, topics.all(), 1)
    proc = start_ingest(
        stack,
        tmp_path,
        topic_prefix,
        redis_prefix,
        partitions=1,
        wait=120.0,
        VIGIE_PSEUDO_KEY="integration-test-key-" + "x" * 24,
        VIGIE_MAX_MESSAGE_BYTES="65536",
    )
    big = b"{" + bytes(range(32, 127)) * 120  # 11 401 bytes, not JSON
    small = b"[1, 2, 3]"
    headers = [("trace-id", b"t-123"), ("bin", b"\x00\x01\xff")]
    try:
        await produce(
            stack.bootstrap, topics.inbound("douane"), [big, small], key=b"k-42", headers=headers
        )
        await wait_services_caught_up(stack.bootstrap, topics, ["ingest"], timeout=90)
        dead = await consume_all(stack.bootstrap, topics.events_dlq, expect=2)
        metrics = scrape(proc.port)
    finally:
        code = proc.stop()
    assert code == 0, proc.tail(20)
    assert len(dead) == 2
    by_size = {json.loads(r.value)["original_size"]: r for r in dead}
    for raw in (big, small):
        r = by_size[len(raw)]
        rec = json.loads(r.value)
        assert r.key == b"k-42"
        assert [(k, bytes(v)) for k, v in r.headers] == headers
        assert framed_size(r.key, len(r.value), r.headers) <= CAP
        assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()
        kept = base64.b64decode(rec["original_b64"])
        assert rec["original_truncated"] is (raw is big)
        assert raw.startswith(kept) and (raw is big or kept == raw)
    assert metrics["vigie_ingest_rejected_total"] == 2
    assert metrics.get("vigie_ingest_dead_letter_failed_total", 0) == 0


async def set_cap(bootstrap: str, topic: str, cap: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(cap)})]
        )
    finally:
        await admin.close()


async def test_a_refused_dead_letter_is_not_committed_and_is_read_again(
    kafka_stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str
) -> None:
    """Apache Kafka enforces ``max.message.bytes``: lower the DLQ topic's cap under
    any record while ingest runs; the send fails, the message is held (the
    group's offset stays on it), the alert metric counts it; with the cap back,
    a restarted ingest reads it again and dead-letters it."""
    topics = Topics(topic_prefix)
    inbound = topics.inbound("police")
    bootstrap = kafka_stack.bootstrap
    await create_capped(bootstrap, topics.events_dlq, CAP)
    await ensure_topics(bootstrap, topics.all(), 1)
    env = {"VIGIE_PSEUDO_KEY": "integration-test-key-" + "x" * 24, "VIGIE_RETRIES": "2"}
    proc = start_ingest(kafka_stack, tmp_path / "a", topic_prefix, redis_prefix, 1, 120, **env)
    try:
        await produce(bootstrap, inbound, [enc(event("police", 0))])
        wait_metric(proc.port, "vigie_ingest_published_total", 1)
        await set_cap(bootstrap, topics.events_dlq, 200)  # under any dead-letter record
        await produce(bootstrap, inbound, [b"{oops", enc(event("police", 1))])
        wait_metric(proc.port, "vigie_ingest_dead_letter_failed_total", 1)
        wait_metric(proc.port, "vigie_ingest_published_total", 2)  # it goes on
        metrics = scrape(proc.port)
    finally:
        assert proc.stop() == 0, proc.tail(20)
    assert metrics.get("vigie_ingest_rejected_total", 0) == 0
    # a clean stop commits every acked offset, and none past the held message
    offsets = await committed(bootstrap, f"{topic_prefix}vigie-ingest", [inbound])
    assert offsets == {TopicPartition(inbound, 0): 1}

    await set_cap(bootstrap, topics.events_dlq, CAP)
    proc = start_ingest(kafka_stack, tmp_path / "b", topic_prefix, redis_prefix, 1, 120, **env)
    try:
        await wait_services_caught_up(bootstrap, topics, ["ingest"], timeout=90)
        dead = await consume_all(bootstrap, topics.events_dlq, expect=1)
        wait_metric(proc.port, "vigie_ingest_rejected_total", 1)
    finally:
        assert proc.stop() == 0, proc.tail(20)
    [record] = dead
    rec = json.loads(record.value)
    assert rec["reason"] == "not_json" and rec["source"]["offset"] == 1
