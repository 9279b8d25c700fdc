"""Topics and producers as production wants them, on the session's Apache Kafka cluster."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient

from shared.kafka import BatchSender, Record, ensure_topics
from shared.localstack import LocalStack
from shared.topics import Topics
from tests.waiting import until


async def test_topics_get_three_replicas_and_two_in_sync(
    kafka_stack: LocalStack, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)
    created = await ensure_topics(kafka_stack.bootstrap, topics.all(), 4)
    assert set(created) == set(topics.all())
    client = AIOKafkaClient(bootstrap_servers=kafka_stack.bootstrap)
    await client.bootstrap()
    seen: dict[str, object] = {}

    async def all_partitions_known() -> bool:
        # a broker learns a new topic's partitions from the controller a moment
        # after CreateTopics answers: wait for that fact, then check the count
        meta = await client.fetch_all_metadata()
        seen.update({t: meta.partitions_for_topic(t) for t in topics.all()})
        return all(seen[t] for t in topics.all())

    try:
        await until(all_partitions_known, 30, lambda: f"partitions of every topic: {seen}")
    finally:
        await client.close()
    for topic in topics.all():
        assert seen[topic] == {0, 1, 2, 3}, topic
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_stack.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topics.events])
        replicas = {len(p["replicas"]) for p in described["partitions"]}
        assert replicas == {3}
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.events)]
        )
        config = {e[0]: e[1] for _, _, _, _, entries in response.resources for e in entries}
        assert config["min.insync.replicas"] == "2"
    finally:
        await admin.close()


async def test_an_idempotent_acks_all_producer_delivers_every_batch(
    kafka_stack: LocalStack, topic_prefix: str
) -> None:
    """BatchSender appends its own batches: the idempotent producer (sequence
    numbers per partition) accepts them, every record arrives once."""
    topic = f"{topic_prefix}batch"
    await ensure_topics(kafka_stack.bootstrap, [topic], 4)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_stack.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        records: list[Record] = [(f"k{i % 50}".encode(), b"v%d" % i, None) for i in range(2000)]
        assert await BatchSender(producer).send(topic, records) == 2000
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_stack.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < 2000:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            values += [r.value for recs in batch.values() for r in recs]
    finally:
        await consumer.stop()
    assert sorted(values) == sorted(b"v%d" % i for i in range(2000))
