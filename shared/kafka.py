"""Kafka plumbing shared by the services and the CLI: reachability, topic creation.

Faust's own topic declaration is not relied upon: every topic is created here,
with explicit partitions, before a worker starts (Tansu's memory engine does not
promise compaction or changelogs, and a worker racing topic creation on a fresh
broker sees empty assignments).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError


class BrokerUnreachable(ConnectionError):
    """The broker did not answer; the message is one line naming the address."""


async def _admin(bootstrap: str, timeout: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        await admin.close()
        raise BrokerUnreachable(
            f"cannot reach Kafka at {bootstrap}: {exc.__class__.__name__}"
        ) from None
    return admin


async def check_broker(bootstrap: str, timeout: float = 5.0) -> None:
    """Return when the broker answers metadata requests, else raise :class:`BrokerUnreachable`."""
    admin = await _admin(bootstrap, timeout)
    try:
        await asyncio.wait_for(admin.list_topics(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {bootstrap}: {exc.__class__.__name__}"
        ) from None
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, timeout: float = 10.0
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    Raises :class:`BrokerUnreachable` when the broker does not answer.
    Existing topics are left as they are (their partition count included).
    """
    admin = await _admin(bootstrap, timeout)
    try:
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            # another process may create one first: fine
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
        return missing
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {bootstrap}: {exc.__class__.__name__}"
        ) from None
    finally:
        await admin.close()
