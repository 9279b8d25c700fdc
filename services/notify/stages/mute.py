"""Inhibition and silences: which alerts of a group are muted.

:class:`Mute` reads what mutes (the firing set, for inhibition rules; each
cell's active silences), each cached for 0.5 s; :func:`members` decides, per
alert, with those (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.notify.group import Member
from services.notify.inhibit import inhibited
from services.notify.route import InhibitRule
from services.notify.silence import Silence, silenced
from services.notify.stages.base import Alerts, Context, Flush

#: How long the firing set and a cell's silences are reused.
CACHE_S = 0.5


def members(
    alerts: Alerts,
    silences: list[Silence],
    firing: dict[str, dict[str, str]],
    rules: Sequence[InhibitRule],
    now: float,
    mutes: list[str],
) -> list[Member]:
    """The group's members; the reason each muted one is muted goes to ``mutes``
    (a resolved alert is never muted: its resolution is news)."""
    out: list[Member] = []
    for a, incident in alerts:
        muted = False
        if a.status == "firing":
            if silences and silenced(silences, a.labels, now):
                mutes.append("silenced")
                muted = True
            elif firing and inhibited(rules, a.alert_id, a.labels, firing):
                mutes.append("inhibited")
                muted = True
        out.append(Member(a.alert_id, a.status, incident, muted))
    return out


@dataclass
class _Cache:
    at: float = -1.0
    value: Any = None


class Mute:
    """Fills :attr:`Flush.firing` and :attr:`Flush.silences` for the flush's groups."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._firing = _Cache()
        self._silences: dict[str, _Cache] = {}

    def invalidate(self, cell: str | None = None) -> None:
        """Forget the cached silences of ``cell`` (of every cell: ``None``)."""
        if cell is None:
            self._silences.clear()
        else:
            self._silences.pop(cell, None)

    async def __call__(self, flush: Flush) -> None:
        routes = self.ctx.routes
        cells = {
            route.receiver
            for g in flush.groups
            if (route := routes.get(g.meta.get("route", ""))) is not None
        }
        flush.firing = await self._firing_labels()
        flush.silences = await self._cells_silences(cells)

    async def _firing_labels(self) -> dict[str, dict[str, str]]:
        if not self.ctx.routing.inhibit_rules:
            return {}
        now = self.ctx.clock()
        if abs(now - self._firing.at) > CACHE_S:
            self._firing = _Cache(now, await self.ctx.store.firing_labels())
        value: dict[str, dict[str, str]] = self._firing.value
        return value

    async def _cells_silences(self, cells: set[str]) -> dict[str, list[Silence]]:
        """Each cell's active silences, read again (together) when older than 0.5 s."""
        now = self.ctx.clock()
        out: dict[str, list[Silence]] = {}
        for c in cells:
            hit = self._silences.get(c)
            if hit is not None and abs(now - hit.at) <= CACHE_S:
                out[c] = hit.value
        stale = sorted(cells - out.keys())
        if stale:
            for c, value in (await self.ctx.store.silences_of(stale, now)).items():
                self._silences[c] = _Cache(now, value)
                out[c] = value
        return out
