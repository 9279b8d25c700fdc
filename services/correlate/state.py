"""Correlation state: atomic, idempotent, expiring.

Two operations cover every kind:

* :class:`WindowOp` (threshold, distinct, sequence): add one observation to a
  group's event-time window and read back the observations within ``±lookback``
  of it. Keys: a hash ``member → pointer`` and a sorted set ``member → event
  time``, trimmed to ``keep_ms`` behind the newest observation.
* :class:`GeoOp` (proximity, overlap): add one located observation to a rule's
  Redis GEO set and read back the observations within a radius.

A :class:`Claim` marks an alert as raised (and the group as suppressed), so a
replay or a second worker never raises it twice.

Every op touches only keys that share one hash tag, and is atomic: a batch's
ops run in order inside a few Lua script calls (each atomic; one per hash slot
on a cluster). Adding an observation that is already there (same agency and
event id) changes nothing: replays are idempotent.

:class:`RedisState` sends a whole batch of ops in one pipelined round trip;
:class:`MemoryState` has the same semantics in pure Python (unit tests only).
"""

from services.correlate.state_lua import _APPLY_LUA, _CLAIM_LUA
from services.correlate.state_memory import MemoryState, distance_m
from services.correlate.state_ops import (
    CALL_MAX_OPS,
    MAX_READ,
    Claim,
    GeoOp,
    Obs,
    Op,
    Sink,
    State,
    WindowOp,
    _args,
    _dumps,
    _first_key,
    key_slot_of,
    op_json,
    plan_calls,
)
from services.correlate.state_redis import RedisState

__all__ = [
    "CALL_MAX_OPS",
    "MAX_READ",
    "_APPLY_LUA",
    "_CLAIM_LUA",
    "Claim",
    "GeoOp",
    "MemoryState",
    "Obs",
    "Op",
    "RedisState",
    "Sink",
    "State",
    "WindowOp",
    "_args",
    "_dumps",
    "_first_key",
    "distance_m",
    "key_slot_of",
    "op_json",
    "plan_calls",
]
