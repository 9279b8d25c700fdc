"""The skeleton's one rule: the same target held by two agencies.

Pure decision over the sightings returned by :class:`~.state.TargetState`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.correlate.fingerprint import fingerprint
from services.correlate.state import Sighting
from shared.models import Alert, Annotations, Evidence, Handling, NormalizedEvent, Severity

RULE_ID = "target_deconfliction"


def target_alert(
    event: NormalizedEvent,
    kind: str,
    token: str,
    sightings: list[Sighting],
    window_ms: int,
    now_ms: int,
    rules_version: str = "skeleton",
) -> Alert | None:
    """An alert when ≥ 2 agencies hold ``token`` within the window, else ``None``.

    The id depends on the rule, the token, the agencies involved and the window
    bucket of the earliest sighting: replays give the same id; a third agency
    joining gives a new alert (new information for the cells).
    """
    agencies = sorted({s.agency for s in sightings})
    if len(agencies) < 2 or event.agency not in agencies:
        return None
    ordered = sorted(sightings, key=lambda s: (s.occurred_ms, s.agency))
    bucket = ordered[0].occurred_ms // window_ms
    alert_id = fingerprint(RULE_ID, f"{token}|{','.join(agencies)}", str(bucket))
    handling = Handling.SECRET if any(s.handling == "secret" for s in sightings) else Handling.RESTRICTED
    labels = {
        "rule": RULE_ID,
        "severity": Severity.HIGH.value,
        "axis": "organisations",
        "entity_kind": kind,
        "agencies": ",".join(agencies),
    }
    if event.location.department:
        labels["department"] = event.location.department
    occurred_ms = int(event.occurred_at.timestamp() * 1000)
    return Alert(
        alert_id=alert_id,
        rule=RULE_ID,
        severity=Severity.HIGH,
        labels=labels,
        annotations=Annotations(
            summary=f"Same {kind} held by {len(agencies)} agencies: {', '.join(agencies)}",
            description="Deconfliction: contact the other holders before acting.",
            group_key=token,
        ),
        starts_at=datetime.fromtimestamp(ordered[-1].occurred_ms / 1000, UTC),
        evidence=[
            Evidence(
                agency=s.agency,  # type: ignore[arg-type]
                event_id=s.event_id,
                occurred_at=datetime.fromtimestamp(s.occurred_ms / 1000, UTC),
                case_ref=s.case_ref,
                contact=s.contact,
            )
            for s in ordered
        ],
        handling=handling,
        rules_version=rules_version,
        event_time_lag_ms=max(0, now_ms - occurred_ms),
        trigger_published_ms=event.published_ms,
        emitted_ms=now_ms,
    )
