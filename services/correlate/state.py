"""Correlation state in Redis: atomic, idempotent, expiring.

:class:`TargetState` tracks, per entity token, the latest sighting by each
agency. One Lua call per event updates every token of the event and returns
the matches, so the update is atomic and a replay changes nothing. Keys of one
token share a hash tag (Redis Cluster ready).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from shared.redis import Keys

# KEYS[1] = hash agency -> pointer JSON, KEYS[2] = set of emitted alert windows
# ARGV: agency, occurred_ms, pointer json, window_ms, ttl_s
_SCRIPT = """
local h, agency = KEYS[1], ARGV[1]
local t, window, ttl = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cur = redis.call('HGET', h, agency)
if cur then
  local ct = tonumber(cjson.decode(cur)['t'])
  if ct >= t then
    -- not newer: nothing changes (replay or older sighting)
  else
    redis.call('HSET', h, agency, ARGV[3])
  end
else
  redis.call('HSET', h, agency, ARGV[3])
end
redis.call('EXPIRE', h, ttl)
local all = redis.call('HGETALL', h)
local within = {}
for i = 1, #all, 2 do
  local p = cjson.decode(all[i + 1])
  local pt = tonumber(p['t'])
  if math.abs(pt - t) <= window then
    table.insert(within, all[i + 1])
  elseif pt < t - window then
    redis.call('HDEL', h, all[i])
  end
end
return within
"""


@dataclass(frozen=True, slots=True)
class Sighting:
    agency: str
    event_id: str
    occurred_ms: int
    case_ref: str | None
    contact: str | None
    handling: str

    def to_json(self) -> str:
        return json.dumps(
            {"a": self.agency, "e": self.event_id, "t": self.occurred_ms,
             "c": self.case_ref, "p": self.contact, "h": self.handling},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Sighting:
        d: dict[str, Any] = json.loads(raw)
        return cls(d["a"], d["e"], int(d["t"]), d.get("c"), d.get("p"), d.get("h", "restricted"))


class TargetState:
    """Latest sighting of each token per agency, within a window."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, window_ms: int, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._window_ms = window_ms
        self._ttl_s = ttl_s
        self._script = redis.register_script(_SCRIPT)

    async def observe(self, tokens: Sequence[str], sighting: Sighting) -> dict[str, list[Sighting]]:
        """Record ``sighting`` for each token; return the sightings within the window per token."""
        if not tokens:
            return {}
        payload = sighting.to_json()
        async with self._redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                await self._script(
                    keys=[self._keys.tagged(token, "agencies")],
                    args=[sighting.agency, sighting.occurred_ms, payload,
                          self._window_ms, self._ttl_s],
                    client=pipe,
                )
            results = await pipe.execute()
        return {tok: [Sighting.from_json(r) for r in res] for tok, res in zip(tokens, results, strict=True)}
