"""BatchSender on the real broker: everything delivered, keys on the producer's partitions."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import BatchSender, Record, ensure_topics
from shared.localstack import LocalStack


async def test_records_delivered_on_the_partition_of_their_key(
    stack: LocalStack, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}batch"
    await ensure_topics(stack.bootstrap, [topic], 4)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, max_batch_size=16384)
    await producer.start()
    try:
        # 3 000 records of ~100 bytes: several batches per partition (16 KiB each)
        records: list[Record] = [
            (f"dept:{i % 7}".encode(), b"x" * 90 + str(i).encode(), None) for i in range(3000)
        ]
        records.append((None, b"no key", [("h", b"v")]))
        sent = await BatchSender(producer).send(topic, records)
        # the partition aiokafka's own send() picks for each key
        expected = {}
        for k in {r[0] for r in records if r[0] is not None}:
            meta = await producer.send_and_wait(topic, b"probe", key=k)
            expected[k] = meta.partition
    finally:
        await producer.stop()
    assert sent == len(records)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes, int]] = []
    try:
        while len(got) < len(records) + len(expected):
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for tp, msgs in batch.items():
                got += [(m.key, m.value, tp.partition) for m in msgs]
    finally:
        await consumer.stop()
    values = [v for _, v, _ in got if v != b"probe"]
    assert sorted(values) == sorted(v for _, v, _ in records)
    for key, value, part in got:
        if key is not None:
            assert part == expected[key], (key, value)
    # order within a key is kept
    for k in expected:
        seq = [int(v[90:]) for kk, v, _ in got if kk == k and v != b"probe"]
        assert seq == sorted(seq)
