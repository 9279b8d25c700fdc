"""Notify's store on Redis: one round trip per ``NotifyStore`` call (see ``store.base``).

Nothing lives in the process: a restart or a second replica neither loses a
group nor notifies twice. The concerns are in their own modules (keys,
groups, schedule, nflog, incidents; the Lua scripts in ``lua/``).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from services.notify.silence import SilenceStore
from services.notify.store.groups import RedisGroups
from services.notify.store.incidents import RedisIncidents
from services.notify.store.keys import NotifyKeys
from services.notify.store.nflog import RedisNflog
from services.notify.store.schedule import RedisSchedule
from services.notify.store.scripts import Conn
from shared.redis import Keys
from shared.resp import Pipelines, PoolPipelines


class RedisStore(RedisGroups, RedisSchedule, RedisNflog, RedisIncidents):
    """:class:`~services.notify.store.base.NotifyStore` on ``redis`` under ``keys``."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, pipes: Pipelines | PoolPipelines | None = None
    ) -> None:
        self.conn = Conn(redis, pipes)
        self.k = NotifyKeys(keys)
        self.silences = SilenceStore(redis, keys)

    async def close(self) -> None:
        """Stop the mark writer (waiting writers get ``ConnectionError``), close pipelines."""
        await self.conn.close()
