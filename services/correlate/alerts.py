"""Alerts as correlate publishes them (the v1 alert contract), from a rule's match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.correlate.rules.model import window_label
from services.correlate.state import Obs
from shared.models import Alert, Annotations, Evidence, Handling


def build_alert(
    rule: Any,
    group: str,
    alert_id: str,
    evidence: tuple[Obs, ...] | list[Obs],
    *,
    department: str | None,
    starts_ms: int,
    lag_ms: int,
    published_ms: int | None,
    now: int,
    version: str,
    summary: str = "",
) -> Alert:
    """The alert of ``rule`` on ``group``: labels (rule, severity, axis, agencies,
    département, entity kind), pointers to the ``evidence``, handling (secret if
    any evidence is). ``department``: the triggering event's, else the first the
    evidence names. Never raises on well-formed observations."""
    agencies = sorted({o.agency for o in evidence})
    labels = {
        **rule.labels,
        "rule": rule.id,
        "severity": rule.severity.value,
        "axis": rule.resolved_axis(),
        "agencies": ",".join(agencies),
    }
    department = department or next((o.department for o in evidence if o.department), None)
    if department:
        labels["department"] = department
    if group.startswith("entity:"):
        labels["entity_kind"] = group.split(":", 1)[1].split("=", 1)[0]
    secret = any(o.handling == "secret" for o in evidence)
    types = ", ".join(sorted({o.type for o in evidence}))
    return Alert(
        alert_id=alert_id,
        rule=rule.id,
        severity=rule.severity,
        labels=labels,
        annotations=Annotations(
            summary=summary or f"{rule.title}: {', '.join(agencies)} ({types})",
            description=rule.description.strip()
            or f"{rule.kind} within {window_label(rule.window)}",
            group_key=group,  # type: ignore[call-arg]  # extra annotations allowed
        ),
        starts_at=datetime.fromtimestamp(starts_ms / 1000, UTC),
        evidence=[
            Evidence(
                agency=o.agency,  # type: ignore[arg-type]
                event_id=o.event_id,
                occurred_at=datetime.fromtimestamp(o.t / 1000, UTC),
                case_ref=o.case_ref,
                contact=o.contact,
            )
            for o in evidence
        ],
        handling=Handling.SECRET if secret else Handling.RESTRICTED,
        rules_version=version,
        event_time_lag_ms=max(0, lag_ms),
        trigger_published_ms=published_ms,
        emitted_ms=now,
    )
