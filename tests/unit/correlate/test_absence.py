"""Absence planning: deadlines, due times, ids and buckets (no Redis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.correlate.absence import BUCKETS, absence_op, base_time, bucket_of
from services.correlate.engine import Engine
from services.correlate.fingerprint import fingerprint
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.correlate.state import MemoryState
from shared.models import NormalizedEvent
from shared.redis import Keys

DAY, HOUR = 86_400_000, 3_600_000


def _ev(etype: str, **details: str) -> NormalizedEvent:
    return NormalizedEvent.model_validate(
        {
            "event_id": "e1",
            "agency": "marine",
            "type": etype,
            "occurred_at": "2026-03-01T03:00:00Z",
            "entities": [{"kind": "vessel", "token": "v1"}],
            "details": details,
            "case_ref": "MN-1",
        }
    )


T = int(datetime(2026, 3, 1, 3, tzinfo=UTC).timestamp() * 1000)


def test_the_window_starts_at_the_named_time_else_the_event_time() -> None:
    arrival = datetime(2026, 3, 5, 6, tzinfo=UTC)
    assert base_time(
        _ev("maritime_intel", expected_arrival=arrival.isoformat()), "expected_arrival", T
    ) == int(arrival.timestamp() * 1000)
    naive = base_time(
        _ev("maritime_intel", expected_arrival="2026-03-05T06:00:00"), "expected_arrival", T
    )
    assert naive == int(arrival.timestamp() * 1000)  # naive: UTC
    assert base_time(_ev("maritime_intel", expected_arrival="soon"), "expected_arrival", T) == T
    assert base_time(_ev("maritime_intel"), "expected_arrival", T) == T
    assert base_time(_ev("maritime_intel", expected_arrival="2026-03-05"), None, T) == T


def test_an_expect_event_arms_a_timer_due_after_deadline_plus_lateness() -> None:
    rules = load_dir(DEFAULT_DIR)
    rule = rules.by_id["maritime_tip_unanswered"]
    ev = _ev("maritime_intel", expected_arrival="2026-03-05T06:00:00Z")
    op = absence_op(rule, "a", "entity:vessel=v1", "g1", ev, T, 0, 7 * DAY, "{}", "p:corr")
    arrival = int(datetime(2026, 3, 5, 6, tzinfo=UTC).timestamp() * 1000)
    assert (op.deadline, op.due) == (arrival + 2 * DAY, arrival + 2 * DAY + 12 * HOUR)
    assert op.name == fingerprint("maritime_tip_unanswered", "entity:vessel=v1", "marine|e1")
    assert op.head == f"p:corr:{{abs{bucket_of(rule.id, 'entity:vessel=v1')}}}:g1:"
    assert json.loads(op.payload)["d"] == op.deadline
    assert op.ttl_ms > op.due - T  # the keys outlive the timer
    miss = absence_op(rule, "b", "entity:vessel=v1", "g1", ev, T, 10 * DAY, 7 * DAY, "{}", "p:corr")
    assert miss.role == "b" and miss.name == "marine|e1" and miss.trim_before < 10 * DAY
    assert len({bucket_of(rule.id, f"g{i}") for i in range(200)}) == BUCKETS


def test_the_engine_plans_absence_ops_by_role_and_case() -> None:
    e = Engine(load_dir(DEFAULT_DIR), MemoryState(), Keys("u"), 7 * DAY)
    op = NormalizedEvent.model_validate(
        {
            "event_id": "op1",
            "agency": "gendarmerie",
            "type": "planned_operation",
            "occurred_at": "2026-03-01T10:00:00Z",
            "details": {"starts_at": "2026-03-04T05:00:00Z", "ends_at": "2026-03-04T09:00:00Z"},
            "case_ref": "GN-1",
        }
    )
    planned = [p for p in e.plan(op) if p.rule.kind == "absence"]
    assert [(p.rule.id, p.group, p.op.role) for p in planned] == [
        ("operation_without_outcome", "case_ref=gendarmerie:GN-1", "a")
    ]
    doc = {**op.model_dump(mode="json", by_alias=True), "event_id": "r1"}
    report = NormalizedEvent.model_validate({**doc, "type": "operation_report", "details": {}})
    planned = [p for p in e.plan(report) if p.rule.kind == "absence"]
    assert [(p.group, p.op.role) for p in planned] == [("case_ref=gendarmerie:GN-1", "b")]
