"""Notify's Lua scripts and the one way its pipelines reach Redis.

The scripts are the ``lua/*.lua`` files next to this module, read once at
import (``claim_fn.lua`` is prepended to the scripts that claim). Pipelines
send them by SHA (no ``SCRIPT EXISTS`` round trip); when Redis lost them
(restarted without persistence, ``SCRIPT FLUSH``) :meth:`Conn.pipe` loads
them all and runs the pipeline again: every pipeline given to it is safe to
run twice (a lost connection retries it too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from shared.resp import Batch, GroupCommit, Pipelines, PoolPipelines, pipelines_for


def _read(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text()


_CLAIMING = ("nflog_claim", "group_add")
_NAMES = (
    "incident",
    "group_add",
    "group_remove",
    "group_delete",
    "claim_due",
    "unschedule",
    "nflog_claim",
)

#: name -> script text
SCRIPTS: dict[str, str] = {
    name: (_read("claim_fn") + _read(name)) if name in _CLAIMING else _read(name) for name in _NAMES
}
SHAS: dict[str, str] = {
    n: hashlib.sha1(s.encode(), usedforsecurity=False).hexdigest() for n, s in SCRIPTS.items()
}


class Conn:
    """Pipelines to Redis with the scripts, and the write-combiner of marks."""

    def __init__(
        self, redis: aioredis.Redis, pipes: Pipelines | PoolPipelines | None = None
    ) -> None:
        self.redis = redis
        self.pipes = pipes if pipes is not None else pipelines_for(redis)
        #: Writes nobody reads back (marks, holds), shared by callers finishing together.
        self.marks = GroupCommit(lambda batch: self.pipe(lambda p: p.extend(batch)))

    @staticmethod
    def eval(p: Batch, name: str, keys: list[str], args: list[Any]) -> None:
        """Queue script ``name`` by its SHA."""
        p.evalsha(SHAS[name], keys, args)

    async def pipe(self, fill: Callable[[Batch], None]) -> list[Any]:
        """Run a pipeline filled by ``fill`` in one round trip; raw replies
        (bytes, integers, lists: see :mod:`shared.resp`). Raises what Redis
        raises (``redis.RedisError``); a lost script is loaded once and the
        pipeline run again."""
        for attempt in range(2):
            batch = Batch()
            fill(batch)
            if not batch:
                return []
            try:
                return await self.pipes.execute(batch)
            except NoScriptError:
                if attempt:
                    raise
            for script in SCRIPTS.values():
                await self.redis.script_load(script)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.marks.close()
        await self.pipes.aclose()
