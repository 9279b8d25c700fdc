"""Correlation state: the observation, the ops, the claims and the protocol.

The data a state works on, with no store behind it: :class:`Obs` (one
observation, stored as JSON), :class:`WindowOp` and :class:`GeoOp` (the two ops
every kind is built from), :class:`Claim` (an alert marked raised), the
:class:`State` protocol both stores implement, and the pure helpers that encode
an op for the apply script (:func:`op_json`) and group a batch's ops into script
calls (:func:`plan_calls`, one hash slot per call on a cluster). Nothing here
does I/O; ops and claims are never modified once built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import orjson
from redis.crc import key_slot

_dumps = partial(json.dumps, separators=(",", ":"))


def key_slot_of(key: str) -> int:
    """The Redis Cluster slot of ``key`` (its hash tag's)."""
    return int(key_slot(key.encode()))


#: At most this many observations are read back per op (bounds Lua's unpack).
MAX_READ = 500

#: Ops per script call: a batch is sent as calls of at most this many ops, all in
#: one pipelined round trip, so one call never blocks Redis for long.
CALL_MAX_OPS = 256


@dataclass(slots=True)
class Obs:
    """One observation (a pointer plus what the kinds need), stored as JSON.

    Never modified once built (not frozen only because a frozen dataclass pays
    ``object.__setattr__`` per field, several µs per observation).
    """

    agency: str
    event_id: str
    t: int
    type: str
    case_ref: str | None = None
    contact: str | None = None
    handling: str = "restricted"
    department: str | None = None
    value: str | None = None
    role: str | None = None
    start: int | None = None
    end: int | None = None
    #: ``agency|event_id``: the observation's name in its window (set at creation).
    member: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.member = f"{self.agency}|{self.event_id}"

    def to_json(self) -> str:
        d = {
            "a": self.agency,
            "e": self.event_id,
            "t": self.t,
            "y": self.type,
            "c": self.case_ref,
            "p": self.contact,
            "h": self.handling,
            "d": self.department,
            "v": self.value,
            "r": self.role,
            "s": self.start,
            "f": self.end,
        }
        return json.dumps({k: v for k, v in d.items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Obs:
        """The observation a pointer stores. Parsed with orjson (what ``json.loads``
        gives, faster), except where the two differ on JSON that ``json.dumps``
        may write: a lone surrogate (orjson refuses it) or an integer beyond 64
        bits (orjson makes it a float) is parsed again by ``json.loads``.
        Raises ``ValueError`` on invalid JSON, ``KeyError`` on a missing field."""
        try:
            d: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            d = json.loads(raw)
        else:
            if float in {d.get("t").__class__, d.get("s").__class__, d.get("f").__class__}:
                d = json.loads(raw)
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Obs:
        """The observation of a parsed pointer; raises ``KeyError`` on a missing field."""
        return cls(
            d["a"],
            d["e"],
            int(d["t"]),
            d["y"],
            d.get("c"),
            d.get("p"),
            d.get("h", "restricted"),
            d.get("d"),
            d.get("v"),
            d.get("r"),
            d.get("s"),
            d.get("f"),
        )


# Ops and claims are never modified once built (plain slots dataclasses: cheaper
# to build than frozen ones, and a batch builds thousands).


@dataclass(slots=True)
class WindowOp:
    hash_key: str
    zset_key: str
    obs: Obs
    lookback_ms: int
    keep_ms: int
    ttl_ms: int
    #: When > 0, read back only this many neighbours on each side (by event time).
    neighbours: int = 0
    #: ``obs`` as stored (JSON); empty: ``obs.to_json()``.
    pointer: str = ""
    #: The op's arguments for the apply script, as JSON (what ``op_json``
    #: would write); empty: encoded when sent.
    args: str = ""


@dataclass(slots=True)
class GeoOp:
    geo_key: str
    hash_key: str
    zset_key: str
    obs: Obs
    lon: float
    lat: float
    retain_until: int
    radius_m: float
    ttl_ms: int
    #: ``obs`` as stored (JSON); empty: ``obs.to_json()``.
    pointer: str = ""
    #: The op's arguments for the apply script, as JSON (what ``op_json``
    #: would write); empty: encoded when sent.
    args: str = ""


Op = WindowOp | GeoOp


@dataclass(slots=True)
class Claim:
    fired_key: str
    suppress_key: str
    t: int
    suppress_ms: int
    ttl_ms: int
    alert_id: str = ""


#: Called with (op index, observations read back) as each op's answer arrives.
Sink = Callable[[int, list[Obs]], None]


class State(Protocol):
    async def apply(
        self, ops: list[Op], sink: Sink | None = None, watermark: int = 0, replayed: int = 0
    ) -> list[list[Obs]]:
        """Apply ``ops`` in order; the observations each one read back (also handed
        to ``sink`` as they arrive, so the caller can work while the rest runs).
        State is trimmed behind ``watermark`` (event time, ms; 0: nothing trimmed);
        an op whose observation is already stored and older than ``replayed``
        reads back only itself (a replay of history decides nothing again)."""

    async def claim(self, claims: list[Claim]) -> list[bool]:
        """Mark alerts raised; False for each already raised or suppressed."""

    async def release(self, claims: list[Claim]) -> None:
        """Forget claims whose alerts could not be sent (they may be raised again)."""


def _args(op: Op) -> list[Any]:
    """An op's arguments for the apply script (see ``_APPLY_LUA``)."""
    o = op.obs
    pointer = op.pointer or o.to_json()
    if isinstance(op, WindowOp):
        return [0, o.member, o.t, pointer, op.lookback_ms, op.keep_ms, op.ttl_ms, op.neighbours]
    return [
        1,
        o.member,
        repr(op.lon),
        repr(op.lat),
        pointer,
        op.retain_until,
        o.t,
        repr(op.radius_m),
        op.ttl_ms,
    ]


def op_json(op: Op) -> str:
    """The op's arguments for the apply script, as JSON."""
    return op.args or _dumps(_args(op))


def _first_key(op: Op) -> str:
    return op.hash_key if isinstance(op, WindowOp) else op.geo_key


def plan_calls(ops: list[Op], slot: Callable[[str], int] | None = None) -> list[list[int]]:
    """The script calls for ``ops``, as lists of op indexes: at most
    :data:`CALL_MAX_OPS` each, ops kept in order. With ``slot`` (a cluster
    client's key → slot), a call holds the ops of one slot only."""
    if slot is None:
        groups = [list(range(len(ops)))]
    else:
        by_slot: dict[int, list[int]] = {}
        for i, op in enumerate(ops):
            by_slot.setdefault(slot(_first_key(op)), []).append(i)
        groups = list(by_slot.values())
    return [g[i : i + CALL_MAX_OPS] for g in groups for i in range(0, len(g), CALL_MAX_OPS)]
