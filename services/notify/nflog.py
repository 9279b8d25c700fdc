"""The notification log: a delivery happens once across replicas and replays.

A sender *claims* (receiver, group, content) with ``SET NX`` and a short TTL,
delivers, then marks it *sent* for ``ttl_s``. A crash after the claim frees the
key when the claim expires, so the notification is retried, not lost.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.redis import Keys


class NotificationLog:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int, claim_s: int = 60) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_s
        self._claim = claim_s

    def key(self, receiver: str, entry: str) -> str:
        return self._keys.k("nflog", receiver, entry)

    async def claim(self, receiver: str, entry: str) -> bool:
        """True when this caller must deliver; False when sent or being sent elsewhere."""
        return bool(await self._redis.set(self.key(receiver, entry), "claimed", nx=True,
                                          ex=self._claim))

    async def sent(self, receiver: str, entry: str) -> None:
        await self._redis.set(self.key(receiver, entry), "sent", ex=self._ttl)

    async def release(self, receiver: str, entry: str) -> None:
        await self._redis.delete(self.key(receiver, entry))
