"""Load leased groups and decide each one's fate: notify, reschedule or drop.

:class:`Plan` is the Alertmanager flush decision: a group with something to
say (unmuted alerts) gets a :class:`~services.notify.stages.base.Job` keyed by
its content state; a group with nothing to say is rescheduled at its
``group_interval``, or dropped once every alert is resolved; a group whose
route a new routing removed (or emptied by manual resolves) is dropped.
Counts nothing: :class:`~services.notify.stages.base.Tally` counts the mutes
of a plan that is kept.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from services.notify.cells import Cell
from services.notify.channels.base import Notification
from services.notify.group import content_state, finished, to_notify
from services.notify.redact import POINTER_LABELS, cleared, view
from services.notify.route import Route
from services.notify.stages.base import Alerts, Context, Flush, Group, Job
from services.notify.stages.mute import members
from shared.models import Alert


def decode(raws: list[Any]) -> Alerts:
    """A group's members as stored (the values of its hash), sorted by alert id
    (unreadable ones skipped)."""
    out: Alerts = []
    for raw in raws:
        try:
            d = json.loads(raw)
            out.append((Alert.model_validate(d["alert"]), int(d["incident"])))
        except (ValidationError, ValueError, KeyError, TypeError):
            continue
    out.sort(key=lambda x: x[0].alert_id)
    return out


class Load:
    """Read the leased groups :attr:`Flush.gids` (one round trip)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, flush: Flush) -> None:
        got = await self.ctx.store.read_groups(flush.gids)
        flush.groups = [
            Group(gid, meta, decode(raws))
            for gid, (meta, raws) in zip(flush.gids, got, strict=True)
        ]


def notification(
    ctx: Context, route: Route, g: Group, cell: Cell, alerts: Alerts, state: str
) -> Notification:
    """The group's notification for ``cell``, redacted for it (group labels too,
    unless the cell is cleared for every alert)."""
    glabels: dict[str, str] = json.loads(g.meta.get("labels", "{}"))
    if not all(cleared(a, cell) for a, _ in alerts):
        glabels = {k: v for k, v in glabels.items() if k in POINTER_LABELS}
    return Notification(
        receiver=cell.id,
        group_key=f"{route.id}:{g.gid}",
        group_labels=glabels,
        alerts=[view(a, cell, ctx.cells, seq) for a, seq in alerts],
        notification_id=hashlib.sha256(f"{g.gid}:{state}".encode()).hexdigest()[:32],
        console_url=ctx.config.console_url,
    )


class Plan:
    """Fill :attr:`Flush.jobs`, ``reschedule``, ``drops`` and ``mutes`` (sets ``now``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, flush: Flush) -> None:
        ctx = self.ctx
        flush.now = now = ctx.clock()
        for g in flush.groups:
            route = ctx.routes.get(g.meta.get("route", ""))
            if route is None or not g.alerts:
                # an emptied group, or a route that a new routing file removed
                flush.drops.append((g.gid, None, 0.0))
            elif ctx.routing.muted(route, now):
                flush.mutes.append((g.gid, "time_interval"))
                flush.reschedule[g.gid] = now + route.group_interval
            else:
                self._group(flush, g, route, now)

    def _group(self, flush: Flush, g: Group, route: Route, now: float) -> None:
        cell = self.ctx.cells[route.receiver]
        reasons: list[str] = []
        rules = self.ctx.routing.inhibit_rules
        found = members(g.alerts, flush.silences[cell.id], flush.firing, rules, now, reasons)
        flush.mutes += [(g.gid, reason) for reason in reasons]
        ver = g.meta.get("ver", "0")
        notify = to_notify(found)
        if not notify:
            if finished(found):
                flush.drops.append((g.gid, ver, now + route.group_interval))
            else:
                flush.reschedule[g.gid] = now + route.group_interval
            return
        state = content_state(found)
        keep = {m.alert_id for m in notify}
        chosen = [x for x in g.alerts if x[0].alert_id in keep]
        n = notification(self.ctx, route, g, cell, chosen, state)
        flush.jobs.append(Job(g.gid, route, cell, n, state, chosen, found, ver))
