"""What the API and the console read of a cell's alerts, as :mod:`resources` models.

The redacted view of each alert comes from the dispatcher (``list_alerts``, the
same need-to-know view the channels send). The rest — when the incident was
acknowledged or resolved, the escalation timer and whom the alert escalated
to — is read here from the dispatcher's Redis keys (``{a:<id>}:incident``,
``{esc}:due``, ``{c:<cell>}:alerts``), in one pipeline for the whole list.
Nothing here writes. Redis errors propagate (the callers answer 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.notify.console.resources import AlertOut, Evidence, IncidentOut, SilenceOut, Status
from services.notify.dispatch import Dispatcher
from services.notify.silence import Silence
from shared.resp import pairs

#: The history page's horizon.
HISTORY_S = 30 * 86400


def rfc3339(epoch: float | str | None) -> str | None:
    """Epoch seconds (a number or its string, as Redis keeps them) as RFC 3339 UTC."""
    if epoch in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(float(epoch), UTC).isoformat()  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def rfc3339_text(value: object) -> str:
    """An ISO time as RFC 3339 (a time without offset is taken as UTC); as is if not a time."""
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def status_of(alert_status: str, inc: dict[str, str]) -> Status:
    """The one status vocabulary: resolved wins, then acknowledged, else firing."""
    if inc.get("state") == "resolved" or alert_status == "resolved":
        return "resolved"
    return "acknowledged" if inc.get("acked_by") else "firing"


def incident_out(alert_id: str, inc: dict[str, Any]) -> IncidentOut:
    """The dispatcher's incident hash (after an ack or a resolve) as the API gives it."""
    return IncidentOut(
        alertId=alert_id,
        incident=int(inc.get("seq") or 1),
        status=status_of("firing", inc),
        acknowledgedBy=inc.get("acked_by") or None,
        acknowledgedAt=rfc3339(inc.get("acked_at")),
        resolvedBy=inc.get("resolved_by") or None,
        resolvedAt=rfc3339(inc.get("resolved_at")),
    )


def silence_out(s: Silence) -> SilenceOut:
    return SilenceOut(
        id=s.id,
        cell=s.cell,
        matchers=list(s.matchers),
        startsAt=rfc3339(s.starts_at) or "",
        endsAt=rfc3339(s.ends_at) or "",
        comment=s.comment,
    )


def _evidence(items: Sequence[dict[str, Any]]) -> list[Evidence]:
    return [
        Evidence(
            agency=str(e.get("agency", "")),
            eventId=str(e.get("event_id", "")),
            occurredAt=rfc3339_text(e.get("occurred_at", "")),
            caseRef=e.get("case_ref"),
            contact=e.get("contact"),
        )
        for e in items
    ]


def alert_out(v: dict[str, Any], extra: dict[str, Any]) -> AlertOut:
    labels = v.get("labels", {})
    ann = v.get("annotations", {})
    inc: dict[str, str] = extra["inc"]
    acked = status_of(v.get("status", "firing"), inc) == "acknowledged"
    return AlertOut(
        id=v["fingerprint"],
        incident=int(v.get("incident", 1)),
        status=status_of(v.get("status", "firing"), inc),
        severity=labels.get("severity", ""),
        rule=labels.get("rule", ""),
        department=labels.get("department"),
        agencies=[a for a in labels.get("agencies", "").split(",") if a],
        summary=str(ann.get("summary", "")),
        description=str(ann.get("description", "")),
        labels=labels,
        evidence=_evidence(v.get("evidence", [])),
        redacted=bool(v.get("redacted")),
        contact=v.get("contact"),
        handling=str(v.get("handling", "")),
        startsAt=rfc3339_text(v.get("startsAt", "")),
        heldSince=rfc3339(extra["held"]),
        acknowledgedBy=inc.get("acked_by") or None,
        acknowledgedAt=rfc3339(inc.get("acked_at")),
        resolvedBy=inc.get("resolved_by") or ("source" if v.get("status") == "resolved" else None),
        resolvedAt=rfc3339(inc.get("resolved_at")),
        escalationDueAt=None if acked else rfc3339(extra["due"]),
        escalatesTo=extra["up"],
        escalatedTo=extra["up"] if extra["escalated"] else None,
    )


async def alerts(d: Dispatcher, cell: str, limit: int = 200) -> list[AlertOut]:
    """The cell's alerts, newest first, with incident times and escalation state."""
    views = await d.list_alerts(cell, limit)
    if not views:
        return []
    c = d.cells.by_id.get(cell)
    up = c.escalate_to if c and c.escalate_to in d.cells.by_id else None
    k = d.keys
    async with d.redis.pipeline(transaction=False) as p:
        for v in views:
            aid, seq = v["fingerprint"], int(v.get("incident", 1))
            p.hgetall(k.tagged(f"a:{aid}", "incident"))
            p.zscore(k.tagged(f"c:{cell}", "alerts"), aid)
            p.zscore(k.tagged("esc", "due"), f"{aid}|{seq}|{cell}")
            p.zscore(k.tagged(f"c:{up}", "alerts"), aid) if up else p.ping()
        got = await p.execute()
    out = []
    for i, v in enumerate(views):
        inc, held, due, esc = got[4 * i : 4 * i + 4]
        extra = {
            "inc": pairs(inc),
            "held": held,
            "due": due,
            "up": up,
            "escalated": up is not None and esc not in (None, True),
        }
        out.append(alert_out(v, extra))
    return out


async def one(d: Dispatcher, cell: str, alert_id: str) -> AlertOut | None:
    """One alert of the cell, or ``None`` (not held by the cell: the caller says 404)."""
    if not await d.holds(cell, alert_id):
        return None
    return next((a for a in await alerts(d, cell, 1000) if a.id == alert_id), None)


def since(items: Sequence[AlertOut], horizon_s: float, now: float) -> list[AlertOut]:
    """Those the cell got within ``horizon_s`` of ``now`` (the history page)."""
    cut = datetime.fromtimestamp(now - horizon_s, UTC).isoformat()
    return [a for a in items if (a.heldSince or a.startsAt) >= cut]
