"""Kafka plumbing shared by the services and the CLI: reachability, topic creation,
batched publication (:class:`BatchSender`).

Faust's own topic declaration is not relied upon: every topic is created here,
with explicit partitions, before a worker starts (Tansu's memory engine does not
promise compaction or changelogs, and a worker racing topic creation on a fresh
broker sees empty assignments). On Apache Kafka, topics get production's
replication (3, ``min.insync.replicas`` 2), capped at the number of brokers.

Every function takes ``options``: the client's security arguments
(:func:`shared.kafkaauth.client_options`; empty for plaintext).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.faust_compat import broker_count, partition_of, started_producer, wait_for_metadata


class BrokerUnreachable(ConnectionError):
    """The broker did not answer; the message is one line naming the address."""


def unreachable(
    bootstrap: str, exc: BaseException, options: Mapping[str, Any]
) -> BrokerUnreachable:
    """The one-line error for a failed connection; names the principal when SASL is used.

    aiokafka reports a refused password like an absent broker (it logs the
    authentication failure and raises ``KafkaConnectionError``), so with SASL
    the message names both causes and the settings to check.
    """
    user = options.get("sasl_plain_username")
    if not user:
        return BrokerUnreachable(f"cannot reach Kafka at {bootstrap}: {type(exc).__name__}")
    return BrokerUnreachable(
        f"cannot reach Kafka at {bootstrap} as VIGIE_KAFKA_SASL_USERNAME={user} (password "
        f"refused, certificate not trusted or no broker there): {type(exc).__name__}"
    )


async def _admin(
    bootstrap: str, timeout: float, options: Mapping[str, Any] | None = None
) -> AIOKafkaAdminClient:
    options = options or {}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **options
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        await admin.close()
        raise unreachable(bootstrap, exc, options) from None
    return admin


async def check_broker(
    bootstrap: str, timeout: float = 5.0, options: Mapping[str, Any] | None = None
) -> None:
    """Return when the broker answers metadata requests, else raise :class:`BrokerUnreachable`
    (a refused password too: the message names the principal)."""
    admin = await _admin(bootstrap, timeout, options)
    try:
        await asyncio.wait_for(admin.list_topics(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise unreachable(bootstrap, exc, options or {}) from None
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    timeout: float = 10.0,
    replication: int = 3,
    min_insync: int = 2,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones asked for.

    A created topic gets ``partitions``, ``replication`` replicas and
    ``min.insync.replicas=min_insync``, both capped at the number of brokers
    (one broker: replication 1, no ``min.insync.replicas``). Existing topics
    are left as they are (their partition count included). A topic the
    principal may not create (ACLs) is left to whoever may: the broker's
    refusal is not an error here. Raises :class:`BrokerUnreachable` when the
    broker does not answer.
    """
    admin = await _admin(bootstrap, timeout, options)
    try:
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            brokers = broker_count(admin)
            rf = max(1, min(replication, brokers))
            configs = {"min.insync.replicas": str(min(min_insync, rf))} if rf > 1 else {}
            new = [NewTopic(n, partitions, rf, topic_configs=configs) for n in missing]
            # another process may create one first: fine (per-topic errors are not raised)
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return missing
    except (TimeoutError, KafkaError, OSError) as exc:
        raise unreachable(bootstrap, exc, options or {}) from None
    finally:
        await admin.close()


async def topic_max_bytes(
    bootstrap: str, topic: str, timeout: float = 5.0, options: Mapping[str, Any] | None = None
) -> int | None:
    """The topic's ``max.message.bytes`` as the broker reports it, or ``None``
    when it cannot be learnt (broker down, config not reported). Never raises."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    try:
        admin = await _admin(bootstrap, timeout, options)
    except BrokerUnreachable:
        return None
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        responses = await asyncio.wait_for(admin.describe_configs([resource]), timeout)
        for response in responses:
            for _code, _msg, _type, _name, entries in response.resources:
                for entry in entries:
                    if entry[0] == "max.message.bytes" and entry[1]:
                        return int(entry[1])
    except Exception:  # an unknown cap is not an error: the setting holds
        return None
    finally:
        await admin.close()
    return None


class KeyPartitioner:
    """aiokafka's default partitioner, with each key's hash remembered.

    The same partition as the Java client and ``DefaultPartitioner`` for every
    key (murmur2 of the key modulo the partition count; a random available
    partition without a key), but the pure-Python murmur2 (~3 µs a key) runs
    once per key: the services' keys recur (départements, alert groups). The
    memo holds the last ``size`` keys. Every Faust app of the project produces
    with it (``producer_partitioner`` in :func:`shared.app.create_app`).
    """

    def __init__(self, size: int = 4096) -> None:
        self._hash = lru_cache(maxsize=size)(murmur2)
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return cast(int, self._default(key, all_partitions, available))
        index: int = (self._hash(key) & 0x7FFFFFFF) % len(all_partitions)
        return all_partitions[index]


#: One record to publish: (key, value, headers). Key ``None`` spreads records
#: over partitions; headers may be ``None``.
Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]] | None]


class BatchSender:
    """Publish many records at once on a Faust app's producer, and wait for the broker.

    Faust's ``topic.send`` inside an agent *attaches* each record to the
    source offset and publishes it only when that offset is committed: every
    hop waits for the commit interval, and each record goes through several
    Python objects and callbacks. :meth:`send` instead groups the records by
    partition (the producer's own partitioner: the same partition as
    ``topic.send`` would choose for the key), appends them to one record batch
    per partition, hands the batches to the producer and awaits their delivery.

    Guarantee: when :meth:`send` returns, every record is acknowledged by the
    broker. A caller that sends from inside a batch handler and returns only
    afterwards keeps at-least-once delivery: the source offsets are acked by
    Faust after the handler returns, so a crash before that redelivers the
    batch. Raises the producer's error (``KafkaError``, ``KafkaTimeoutError``)
    when a batch cannot be delivered; some batches of the call may have been
    delivered then (the caller retries idempotently, as with ``topic.send``).
    """

    def __init__(self, source: faust.App | AIOKafkaProducer) -> None:
        """``source``: a Faust app (its producer, once started) or a started producer."""
        self.source = source

    def _producer(self) -> AIOKafkaProducer:
        if isinstance(self.source, AIOKafkaProducer):
            return self.source
        return started_producer(self.source)

    async def send(self, topic: str, records: Iterable[Record]) -> int:
        """Publish ``records`` to ``topic``; return how many, once all are delivered."""
        producer = self._producer()
        by_partition: dict[int, list[Record]] = {}
        await wait_for_metadata(producer, topic)
        for rec in records:
            part = partition_of(producer, topic, rec[0], rec[1])
            by_partition.setdefault(part, []).append(rec)
        futures = []
        count = 0
        for part, recs in by_partition.items():
            batch = producer.create_batch()
            filled = 0
            for key, value, headers in recs:
                hdrs = list(headers) if headers else []
                if batch.append(timestamp=None, key=key, value=value, headers=hdrs) is None:
                    # full: send it, start the next (a batch always takes its
                    # first record, even one larger than the batch size)
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=part))
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=hdrs)
                    filled = 0
                filled += 1
                count += 1
            if filled:
                batch.close()  # a closed batch does not linger: sent at once
                futures.append(await producer.send_batch(batch, topic, partition=part))
        if futures:
            await asyncio.gather(*futures)
        return count
