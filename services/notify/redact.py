"""Need-to-know: what a cell may see of an alert.

:func:`view` is the only way channels and the API see an alert. When the
alert's ``handling`` exceeds the cell's clearance the view is a *pointer*:
rule, severity, département, axis, status and who to contact (the nearest
cell up the escalation chain cleared for it) — never the summary, the
description, the evidence or any other label.
"""

from __future__ import annotations

from typing import Any

from services.notify.cells import Cell, Cells
from shared.models import Alert

#: Labels a pointer keeps: enough to route and to know whom to call.
POINTER_LABELS = ("rule", "severity", "department", "axis", "alertname")


def cleared(alert: Alert, cell: Cell) -> bool:
    return cell.clearance.rank >= alert.handling.rank


def view(alert: Alert, cell: Cell, cells: Cells, incident: int = 1) -> dict[str, Any]:
    """The alert as ``cell`` may see it, in Alertmanager's webhook alert shape."""
    base: dict[str, Any] = {
        "status": alert.status,
        "startsAt": alert.starts_at.isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": alert.alert_id,
        "incident": incident,
        "handling": alert.handling.value,
    }
    if cleared(alert, cell):
        base.update(
            labels=dict(alert.labels),
            annotations=alert.annotations.model_dump(),
            evidence=[e.model_dump(mode="json") for e in alert.evidence],
            redacted=False,
        )
        return base
    labels = {k: alert.labels[k] for k in POINTER_LABELS if k in alert.labels}
    contact = cells.contact_for(cell.id, alert.handling)
    who = (
        f"{contact.id} ({contact.contact})"
        if contact and contact.contact
        else (contact.id if contact else "hq")
    )
    dept = alert.labels.get("department", "?")
    base.update(
        labels=labels,
        annotations={
            "summary": f"{alert.rule} ({alert.severity.value}) in département {dept}: "
            f"detail restricted to {alert.handling.value} clearance, contact {who}",
            "description": "",
        },
        evidence=[],
        redacted=True,
        contact=contact.id if contact else "hq",
    )
    return base
