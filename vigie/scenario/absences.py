"""Absence situations: maritime tips and planned operations, reported or not.

:func:`_tip` and :func:`_operation` build a maritime tip and a planned
operation on a :class:`_Gen`; :func:`_absences` embeds the absence
situations and returns the planned operations left without an outcome
report; :func:`_outcome_reports` gives every other planned operation its
report, so only the intended absences can fire.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from vigie.scenario.state import _Gen
from vigie.scenario.vocab import DEPARTMENTS


def _tip(g: _Gen, agency: str, at: datetime, dept: str, vessel: Any, arrival: datetime) -> str:
    """A maritime tip on ``vessel`` (None: a fresh one, drawn after the place)
    expected at the département's port at ``arrival``."""
    point = g.place(dept)
    return g.event(
        agency,
        "maritime_intel",
        at,
        dept,
        point=point,
        entities=[vessel or g.fresh("vessel")],
        details={
            "vector": "maritime",
            "expected_arrival": arrival.isoformat(),
            "expected_port": DEPARTMENTS[dept][3][0],
        },
    )


def _operation(g: _Gen, agency: str, at: datetime, dept: str, hours: int) -> str:
    """A planned operation a day after ``at``, lasting ``hours``."""
    start = at + timedelta(days=1)
    end = start + timedelta(hours=hours)
    details = {"starts_at": start.isoformat(), "ends_at": end.isoformat()}
    return g.event(agency, "planned_operation", at, dept, point=g.place(dept), details=details)


def _absences(g: _Gen, days: int) -> set[str]:
    """The absence situations; returns the planned operations left without a report."""
    d, h = timedelta(days=1), timedelta(hours=1)
    span = max(days - 2, 1)
    t = g.start + timedelta(days=1 + 2 * span / 10, hours=7)
    # 11. a navy tip on a vessel expected at Dunkirk in 3 days; nothing on it since
    tip = _tip(g, "marine", t, "59", None, t + 3 * d)
    g.expect("maritime_tip_unanswered", "59", [tip], "tip, and nothing at the expected port")
    vessel = g.fresh("vessel")
    answered = _tip(g, "sgmer", t, "13", vessel, t + 2 * d)
    boarding = g.event("sgmer", "operation_report", t + 3 * d, "13", entities=[vessel])
    g.miss("maritime_tip_unanswered", "boarded a day after its arrival", [answered, boarding])
    # 12. a planned operation in 69 that ended with no outcome report
    t = g.start + timedelta(days=1 + 3 * span / 10, hours=9)
    op = _operation(g, "gendarmerie", t, "69", 4)
    g.expect("operation_without_outcome", "69", [op], "operation ended, no outcome report")
    late = _operation(g, "police", t, "93", 2)
    case = next(e["case_ref"] for e in g.events if e["event_id"] == late)
    report = g.event("police", "operation_report", t + 3 * d + 22 * h, "93", case_ref=case)
    g.miss("operation_without_outcome", "report 2 days 20 hours after the end (3d)", [late, report])
    return {op, late}


def _outcome_reports(g: _Gen, unreported: set[str]) -> None:
    """Every other planned operation gets its outcome report (same agency, same
    case, 6 hours after its end): background traffic raises no absence."""
    for ev in list(g.events):
        if ev["type"] != "planned_operation" or ev["event_id"] in unreported:
            continue
        end = datetime.fromisoformat(ev["details"]["ends_at"])
        dept = ev["location"]["department"]
        g.event(
            ev["agency"],
            "operation_report",
            end + timedelta(hours=6),
            dept,
            case_ref=ev["case_ref"],
        )
