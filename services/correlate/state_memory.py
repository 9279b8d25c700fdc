"""Correlation state in memory: :class:`MemoryState` (unit tests only).

The same semantics as :class:`~services.correlate.state_redis.RedisState` and
its scripts, in pure Python: the same ops, read-backs, event-time trimming
behind the watermark, replay rule and claims, but no expiry by wall clock.
:func:`distance_m` is the great-circle distance Redis GEO uses.
"""

from __future__ import annotations

import math

from services.correlate.state_ops import Claim, Obs, Op, Sink, WindowOp


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (the haversine Redis GEO uses), in metres."""
    r = 6372797.560856  # Redis' earth radius
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


class MemoryState:
    """The same semantics as :class:`RedisState`, in memory (unit tests only;
    no expiry by wall clock, trimming by event time as in the scripts)."""

    def __init__(self) -> None:
        self.windows: dict[str, dict[str, Obs]] = {}
        self.geo: dict[str, dict[str, tuple[Obs, float, float, int]]] = {}
        self.fired: set[str] = set()
        self.suppressed: dict[str, int] = {}
        self.round_trips = 0

    async def apply(
        self, ops: list[Op], sink: Sink | None = None, watermark: int = 0, replayed: int = 0
    ) -> list[list[Obs]]:
        if ops:
            self.round_trips += 1
        out: list[list[Obs]] = []
        for op in ops:
            if isinstance(op, WindowOp):
                w = self.windows.setdefault(op.hash_key, {})
                if op.obs.member in w and op.obs.t < replayed:
                    out.append([op.obs])
                    continue
                w.setdefault(op.obs.member, op.obs)
                newest = min(max(o.t for o in w.values()), watermark)
                for m in [m for m, o in w.items() if o.t < newest - op.keep_ms]:
                    del w[m]
                if op.neighbours:
                    ranked = sorted(w.values(), key=lambda o: (o.t, o.member))
                    r = next((i for i, o in enumerate(ranked) if o.member == op.obs.member), None)
                    k = op.neighbours
                    out.append([] if r is None else ranked[max(0, r - k) : r + k + 1])
                    continue
                near = sorted(
                    (o for o in w.values() if abs(o.t - op.obs.t) <= op.lookback_ms),
                    key=lambda o: (o.t, o.member),
                )
                out.append(near[:500])
            else:
                g = self.geo.setdefault(op.geo_key, {})
                if op.obs.member in g and op.obs.t < replayed:
                    out.append([])
                    continue
                g.setdefault(op.obs.member, (op.obs, op.lat, op.lon, op.retain_until))
                for m in [m for m, v in g.items() if v[3] < min(op.obs.t, watermark)]:
                    del g[m]
                found = [
                    (distance_m(op.lat, op.lon, la, lo), o)
                    for o, la, lo, _ in g.values()
                    if o.member != op.obs.member
                ]
                out.append([o for d, o in sorted(found, key=lambda x: x[0]) if d <= op.radius_m])
        if sink is not None:
            for i, seen in enumerate(out):
                sink(i, seen)
        return out

    async def claim(self, claims: list[Claim]) -> list[bool]:
        if claims:
            self.round_trips += 1
        res = []
        for c in claims:
            if c.fired_key in self.fired:
                res.append(False)
                continue
            if c.suppress_ms > 0:
                last = self.suppressed.get(c.suppress_key)
                if last is not None and abs(last - c.t) < c.suppress_ms:
                    res.append(False)
                    continue
                self.suppressed[c.suppress_key] = c.t
            self.fired.add(c.fired_key)
            res.append(True)
        return res

    async def release(self, claims: list[Claim]) -> None:
        for c in claims:
            self.fired.discard(c.fired_key)
