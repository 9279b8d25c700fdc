"""Deduplication on (agency, event_id), in Redis: one ``SET NX`` per event.

The key holds the source coordinates (topic/partition/offset) of the first
message that carried the event. A message whose coordinates match is a
*redelivery* of that same message (after a crash or rebalance) and is
published again — downstream is idempotent — so nothing is lost between the
mark and the publication. A different message with the same (agency,
event_id) is a *duplicate* and is dropped.

Each mark is ``SET key coordinates NX GET EX ttl`` (Redis 7.0+ or Valkey):
it sets the key only if it is absent and returns what was there, so a
verdict is one atomic command on one key. A batch's marks go as one
pipeline (:mod:`shared.resp`): one round trip on a single Redis. No command
spans two keys (no script), so the same code runs on Redis Cluster, where
redis-py splits the pipeline by node: one round trip per master, sent
concurrently, whatever the number of slots the batch's keys fall in.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from shared.redis import Keys
from shared.resp import Batch, Executor


class Seen(IntEnum):
    DUPLICATE = 0
    NEW = 1
    REDELIVERED = 2


class Deduplicator:
    """Marks events as seen; one round trip for a whole batch."""

    def __init__(self, pipes: Executor, keys: Keys, ttl_s: int) -> None:
        """``pipes``: :func:`shared.resp.pipelines_for` on the service's client
        (a single Redis or a cluster)."""
        self._pipes = pipes
        self._keys = keys
        self._ttl = ttl_s

    def key(self, agency: str, event_id: str) -> str:
        return self._keys.k("ingest", "dedup", agency, event_id)

    async def mark(self, items: Sequence[tuple[str, str, str]]) -> list[Seen]:
        """``items`` are (agency, event_id, source coordinates); returns one verdict each.

        Raises the pipeline's ``RedisError`` (nothing retries here: the caller
        retries the batch; a mark sent twice reads back its own coordinates, a
        redelivery, so the event is still published once more, never lost).
        """
        if not items:
            return []
        batch = Batch()
        for agency, event_id, src in items:
            batch.set_nx_get(self.key(agency, event_id), src, self._ttl)
        replies = await self._pipes.execute(batch)
        out = []
        for (_, _, src), prev in zip(items, replies, strict=True):
            if prev is None:
                out.append(Seen.NEW)
            elif prev == src.encode():
                out.append(Seen.REDELIVERED)
            else:
                out.append(Seen.DUPLICATE)
        return out
