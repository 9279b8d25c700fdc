"""Deduplication on (agency, event_id), in Redis.

The key holds the source coordinates (topic/partition/offset) of the first
message that carried the event. A message whose coordinates match is a
*redelivery* of that same message (after a crash or rebalance) and is
published again — downstream is idempotent — so nothing is lost between the
mark and the publication. A different message with the same (agency,
event_id) is a *duplicate* and is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import redis.asyncio as aioredis

from shared.redis import Keys

_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur then
    redis.call('SET', key, ARGV[i], 'EX', ARGV[#ARGV])
    out[i] = 1
  elseif cur == ARGV[i] then
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"""


class Seen(IntEnum):
    DUPLICATE = 0
    NEW = 1
    REDELIVERED = 2


class Deduplicator:
    """Marks events as seen; one round trip for a whole batch."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_s
        self._script = redis.register_script(_SCRIPT)

    def key(self, agency: str, event_id: str) -> str:
        return self._keys.k("ingest", "dedup", agency, event_id)

    async def mark(self, items: Sequence[tuple[str, str, str]]) -> list[Seen]:
        """``items`` are (agency, event_id, source coordinates); returns one verdict each.

        Keys of a batch are independent (no hash tag): on Redis Cluster, call
        with one item at a time or group items by slot.
        """
        if not items:
            return []
        keys = [self.key(a, e) for a, e, _ in items]
        args = [src for _, _, src in items] + [str(self._ttl)]
        result = await self._script(keys=keys, args=args)
        return [Seen(int(r)) for r in result]
