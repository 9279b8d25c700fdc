"""Escalation: an alert a cell did not acknowledge in time goes to the next cell up.

Each delivery to a cell that has someone to escalate to starts a timer
(``alert|incident|cell`` in the escalation schedule, due at its
``ack_timeout``). When it is due and the incident is still open and
unacknowledged, the alert is sent to ``escalate_to`` as an ``escalation``
notification (redacted for that cell), which then holds it, with its own
timer: and so on up to ``hq``. A delivery to retry is due again
``redeliver_s`` later; a failure of the escalation itself is logged and the
lease brings it back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from services.notify.cells import Cell
from services.notify.channels.base import Notification
from services.notify.redact import POINTER_LABELS, view
from services.notify.stages.base import Context
from services.notify.stages.deliver import Delivery
from services.notify.stages.mark import holds_of
from shared.models import Alert

log = logging.getLogger("vigie.notify")


def escalation(ctx: Context, alert: Alert, seq: int, up: Cell, source: str) -> Notification:
    """The escalation of ``alert`` (incident ``seq``) from ``source`` to ``up``."""
    return Notification(
        receiver=up.id,
        group_key=f"escalation:{alert.alert_id}",
        group_labels={k: v for k, v in alert.labels.items() if k in POINTER_LABELS},
        alerts=[view(alert, up, ctx.cells, seq)],
        notification_id=hashlib.sha256(f"esc:{alert.alert_id}:{seq}:{up.id}".encode()).hexdigest()[
            :32
        ],
        kind="escalation",
        extra={"escalatedFrom": source},
        console_url=ctx.config.console_url,
    )


class Escalator:
    def __init__(self, ctx: Context, delivery: Delivery) -> None:
        self.ctx = ctx
        self.delivery = delivery

    async def escalate_all(self, due: list[str]) -> None:
        """Escalate the leased members ``due``, side by side (never raises)."""
        await asyncio.gather(*(self.escalate(m) for m in due))

    async def _target(self, member: str) -> tuple[Alert, int, Cell, str] | None:
        """(alert, incident, cell up, cell) when ``member`` is still to escalate."""
        store, cells = self.ctx.store, self.ctx.cells
        alert_id, seq_s, cell_id = member.split("|")
        inc = await store.incident(alert_id)
        cell = cells.by_id.get(cell_id)
        up = cells.by_id.get(cell.escalate_to or "") if cell else None
        if (
            up is None
            or inc.get("seq") != seq_s
            or inc.get("state") != "open"
            or inc.get("acked_by")
        ):
            return None
        raw = await store.alert_doc(alert_id)
        if raw is None:
            return None
        return Alert.model_validate_json(raw), int(seq_s), up, cell_id

    async def escalate(self, member: str) -> None:
        ctx = self.ctx
        try:
            target = await self._target(member)
            if target is None:
                await ctx.store.escalation_done(member)
                return
            alert, seq, up, cell_id = target
            n = escalation(ctx, alert, seq, up, cell_id)
            tag, entry = f"a:{alert.alert_id}", f"esc:{seq}"
            ttl = ctx.config.nflog_ttl_s
            outcome = await self.delivery.deliver_all(up, n, tag, entry, ttl, [alert])
            if outcome == "retry":
                await ctx.store.escalation_retry(member, ctx.clock() + ctx.config.redeliver_s)
                return
            if outcome == "delivered":
                ctx.metrics.escalations.labels(up.id).inc()
                await ctx.audit(
                    {
                        "kind": "escalation",
                        "alert_id": alert.alert_id,
                        "incident": seq,
                        "from": cell_id,
                        "to": up.id,
                    }
                )
            await ctx.store.hold(*holds_of(up, [(alert, seq)], ctx.clock()))
            await ctx.store.escalation_done(member)
        except Exception:  # the lease retries it
            log.exception("escalation failed")
