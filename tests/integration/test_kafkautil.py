"""The test helpers that end reads on facts (tests/kafkautil.py), on each broker:
an extra record already written is returned, and a group is caught up only
once it committed the end offsets."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from tests.kafkautil import committed, consume_all, produce, wait_caught_up


@pytest.mark.brokers
async def test_consume_all_returns_records_past_the_expected_count(
    broker_stack: LocalStack, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}extra"
    await ensure_topics(broker_stack.bootstrap, [topic], 3)
    await produce(broker_stack.bootstrap, topic, [b"a", b"b", b"c"])
    records = await consume_all(broker_stack.bootstrap, topic, expect=2, timeout=30)
    assert sorted(r.value for r in records) == [b"a", b"b", b"c"]
    assert len(await consume_all(broker_stack.bootstrap, topic, timeout=30)) == 3


@pytest.mark.brokers
async def test_wait_caught_up_needs_the_group_to_commit_the_end_offsets(
    broker_stack: LocalStack, topic_prefix: str
) -> None:
    topic, group = f"{topic_prefix}in", f"{topic_prefix}group"
    boot = broker_stack.bootstrap
    await ensure_topics(boot, [topic], 1)
    await produce(boot, topic, [b"1", b"2"])
    with pytest.raises(AssertionError, match="group"):
        await wait_caught_up(boot, group, [topic], timeout=1.0)
    consumer = AIOKafkaConsumer(bootstrap_servers=boot, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 2})
    finally:
        await consumer.stop()
    await wait_caught_up(boot, group, [topic], timeout=30)
    assert await committed(boot, group, [topic]) == {TopicPartition(topic, 0): 2}
