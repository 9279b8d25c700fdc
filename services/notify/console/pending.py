"""Alerts routed to a cell that it does not hold yet: waiting for their group, or muted.

Notify records an alert at once but a cell *holds* it (API, acknowledgement,
escalation timer) only once its notification went out — after the route's
``group_wait``, never when a silence mutes it. The live page shows these too,
from the moment notify recorded them: every firing alert (``{active}:firing``,
labels by alert id) whose routes reach the cell, not held by it, with the
cell's need-to-know view and, when a silence of the cell matches, that
silence. Read-only; Redis errors propagate.
"""

from __future__ import annotations

import json

from services.notify.console.backend import alert_out
from services.notify.console.resources import AlertOut
from services.notify.dispatch import Dispatcher
from services.notify.redact import view
from services.notify.silence import silenced
from shared.models import Alert
from shared.resp import pairs, text

#: At most this many pending alerts on the page (the newest first).
LIMIT = 200


def firing_key(d: Dispatcher) -> str:
    return d.keys.tagged("active", "firing")


async def pending(d: Dispatcher, cell: str, now: float) -> list[AlertOut]:
    """The cell's routed-but-not-held firing alerts, newest first."""
    c = d.cells.by_id.get(cell)
    if c is None:
        return []
    mine = []
    for raw_id, raw_labels in (await d.redis.hgetall(firing_key(d))).items():
        labels = json.loads(raw_labels)
        if any(r.receiver == cell for r in d.routing.match(labels)):
            mine.append(text(raw_id))
    if not mine:
        return []
    async with d.redis.pipeline(transaction=False) as p:
        for aid in mine:
            p.zscore(d.keys.tagged(f"c:{cell}", "alerts"), aid)
            p.get(d.keys.tagged(f"a:{aid}", "alert"))
            p.hgetall(d.keys.tagged(f"a:{aid}", "incident"))
        got = await p.execute()
    silences = await d.silences.active(cell, now)
    up = c.escalate_to if c.escalate_to in d.cells.by_id else None
    out = []
    for i in range(len(mine)):
        held, doc, inc = got[3 * i], got[3 * i + 1], pairs(got[3 * i + 2])
        if held is not None or doc is None or inc.get("state") == "resolved":
            continue
        alert = Alert.model_validate_json(doc)
        v = view(alert, c, d.cells, int(inc.get("seq") or 1))
        extra = {"inc": inc, "held": None, "due": None, "up": up, "escalated": False}
        muted = silenced(silences, alert.labels, now)
        out.append(alert_out(v, extra).model_copy(update={"notified": False, "mutedBy": muted}))
    out.sort(key=lambda a: a.startsAt, reverse=True)
    return out[:LIMIT]
