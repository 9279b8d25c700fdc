"""What the cells' API does (``services.notify.api``, the console): list a cell's
alerts, acknowledge, resolve by hand, count silences.

A cell acts only on alerts it holds (delivered to it by routing or
escalation): otherwise the methods answer ``None`` and the API says 404.
"""

from __future__ import annotations

from typing import Any

from services.notify.group import group_id
from services.notify.redact import view
from services.notify.stages.base import Context
from shared.models import Alert


class CellActions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def holds(self, cell: str, alert_id: str) -> bool:
        return await self.ctx.store.holds(cell, alert_id)

    async def acknowledge(self, cell: str, alert_id: str) -> dict[str, Any] | None:
        """Acknowledge the open incident of ``alert_id`` (stops its escalation);
        ``None`` if the cell does not hold it. Answers the incident."""
        ctx = self.ctx
        if not await self.holds(cell, alert_id):
            return None
        now = ctx.clock()
        inc: dict[str, Any] = await ctx.store.incident(alert_id)
        if inc.get("state") == "open" and not inc.get("acked_by"):
            await ctx.store.update_incident(alert_id, {"acked_by": cell, "acked_at": str(now)})
            ctx.metrics.acks.labels(cell).inc()
            await ctx.audit(
                {
                    "kind": "acknowledgement",
                    "alert_id": alert_id,
                    "cell": cell,
                    "incident": int(inc.get("seq", "1")),
                }
            )
            inc.update(acked_by=cell, acked_at=str(now))
        return inc

    async def resolve(self, cell: str, alert_id: str) -> dict[str, Any] | None:
        """Close the incident by hand; ``None`` if not held by the cell.

        Stops escalation and takes the alert out of its groups: their later
        notifications (group_interval, repeat_interval) no longer carry it, and a
        group it leaves empty is dropped. A later firing of the alert is a new
        incident and joins its groups again.
        """
        ctx = self.ctx
        if not await self.holds(cell, alert_id):
            return None
        inc: dict[str, Any] = await ctx.store.incident(alert_id)
        if inc.get("state") == "open":
            fields = {"state": "resolved", "resolved_by": cell, "resolved_at": str(ctx.clock())}
            await ctx.store.update_incident(alert_id, fields)
            await ctx.store.unfire(alert_id)
            await self._ungroup(alert_id)
            await ctx.audit(
                {
                    "kind": "resolution",
                    "alert_id": alert_id,
                    "cell": cell,
                    "incident": int(inc.get("seq", "1")),
                }
            )
            inc.update(state="resolved", resolved_by=cell)
        return inc

    async def _ungroup(self, alert_id: str) -> None:
        """Remove the alert from the groups its labels route it to."""
        raw = await self.ctx.store.alert_doc(alert_id)
        if raw is None:
            return
        labels = Alert.model_validate_json(raw).labels
        gids = [group_id(route, labels)[0] for route in self.ctx.routing.match(labels)]
        await self.ctx.store.remove_from_groups(gids, alert_id)

    async def list_alerts(self, cell_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The cell's own alerts (newest first), as the cell may see them."""
        ctx = self.ctx
        cell = ctx.cells[cell_id]
        out = []
        for _, raw, inc in await ctx.store.held(cell_id, limit):
            if raw is None:
                continue
            alert = Alert.model_validate_json(raw)
            v = view(alert, cell, ctx.cells, int(inc.get("seq", "1")))
            v["state"] = inc.get("state", "open")
            v["acknowledgedBy"] = inc.get("acked_by")
            out.append(v)
        return out

    async def count_silences(self) -> int:
        return await self.ctx.store.count_silences(list(self.ctx.cells.by_id))
