"""Planning: the per-type rule index and the pre-encoded pointers change nothing.

On the benchmark's stream (every event type, entities, sites, coordinates,
planned-operation intervals), :meth:`Engine.plan` gives exactly the ops of a
plain plan that asks every rule ``wants()``, each op's stored pointer is
``obs.to_json()`` byte for byte, and its pre-encoded script arguments are what
``json.dumps`` writes of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.correlate.absence import AbsenceOp
from services.correlate.engine import _ASK, Engine, _possible_types
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.correlate.rules.model import OverlapRule, ProximityRule
from services.correlate.state import GeoOp, MemoryState, WindowOp, _args
from shared.models import AXIS_OF_TYPE, NormalizedEvent
from shared.redis import Keys
from vigie.bench.correlate import make_events

EVENTS = [NormalizedEvent.model_validate_json(v) for v in make_events(3000, seed=11)]


def _engine(rules: Any = None) -> Engine:
    return Engine(rules or load_dir(DEFAULT_DIR), MemoryState(), Keys("u"), 7 * 86_400_000)


def _reference_groups(rule: Any, event: NormalizedEvent) -> list[str]:
    out: list[str] = []
    for key in rule.group_by:
        if key == "entity:*":
            out += [f"entity={e.token}" for e in event.entities]
        elif key.startswith("entity:"):
            kind = key.split(":", 1)[1]
            out += [f"{key}={e.token}" for e in event.entities if e.kind.value == kind]
        elif key == "case_ref":
            if event.case_ref:
                out.append(f"case_ref={event.agency}:{event.case_ref}")
        else:
            value = getattr(event.location, key, None)
            if value:
                out.append(f"{key}={value}")
    return list(dict.fromkeys(out))


def _reference(event: NormalizedEvent, rules: Any) -> set[tuple[str, str]]:
    """(rule, group) of every op, visiting every rule."""
    out = set()
    etype, agency, details = event.type.value, event.agency, event.details
    for rule in rules.rules:
        if not rule.wants(etype, agency, details):
            continue
        if isinstance(rule, ProximityRule | OverlapRule):
            if event.location.lat is not None and event.location.lon is not None:
                out.add((rule.id, rule.id))
            continue
        out |= {(rule.id, g) for g in _reference_groups(rule, event)}
    return out


def test_plan_visits_the_rules_every_event_needs_and_only_those() -> None:
    e = _engine()
    kinds_seen = set()
    for event in EVENTS:
        planned = e.plan(event)
        assert {(p.rule.id, p.group) for p in planned} == _reference(event, e.rules)
        assert len(planned) == len({(p.rule.id, p.group) for p in planned})
        for p in planned:
            kinds_seen.add(p.rule.kind)
            if p.rule.kind == "absence":
                assert isinstance(p.op, AbsenceOp) and p.op.role in ("a", "b")
                continue
            assert p.op.pointer == p.op.obs.to_json()
            assert p.op.args and p.op.args == json.dumps(_args(p.op), separators=(",", ":"))
            assert isinstance(p.op, GeoOp if p.rule.kind in ("proximity", "overlap") else WindowOp)
    assert kinds_seen == {"threshold", "distinct", "sequence", "proximity", "overlap", "absence"}


def test_the_type_index_follows_filters_steps_until_and_roles(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - {id: any_type, title: t, kind: threshold, severity: info, group_by: [department],
     count: 2, window: 1d}
  - {id: seq_until, title: t, kind: sequence, severity: info, group_by: ["entity:*"],
     steps: [{types: [seizure]}, {types: [arrest]}], until: {types: [intel_share]}, window: 1d}
  - {id: seq_open_step, title: t, kind: sequence, severity: info, group_by: ["entity:*"],
     steps: [{types: [seizure]}, {agencies: [douane]}], window: 1d}
  - {id: prox, title: t, kind: proximity, severity: info, reference: {types: [deal_point]},
     trigger: {types: [shooting]}, filter: {types: [shooting, homicide]},
     radius_m: 100, window: 1d}
"""
    )
    rules = load_dir(tmp_path)
    types = {r.id: _possible_types(r) for r in rules.rules}
    assert types["any_type"] is None
    assert types["seq_until"] == {"seizure", "arrest", "intel_share"}
    assert types["seq_open_step"] is None  # a step without types takes any type
    assert types["prox"] == {"shooting"}  # the filter, within trigger or reference
    e = _engine(rules)
    assert [c.rule.id for c, _ in e._by_type["intel_share"]] == [
        "any_type",
        "seq_until",
        "seq_open_step",
    ]
    assert [c.rule.id for c, _ in e._by_type["deal_point"]] == ["any_type", "seq_open_step"]
    assert set(e._by_type) == set(AXIS_OF_TYPE)
    # a reload re-indexes
    e.rules = load_dir(DEFAULT_DIR)
    assert all(c.rule.id != "seq_until" for cs in e._by_type.values() for c, _ in cs)


def _reference_values(event: NormalizedEvent, rules: Any) -> set[tuple[str, str, Any]]:
    """(rule, group, the observation's value or role) of every op, from the
    rules' own filters."""
    out = set()
    etype, agency, details = event.type.value, event.agency, event.details
    loc = event.location
    for rule in rules.rules:
        if not rule.wants(etype, agency, details):
            continue
        if isinstance(rule, ProximityRule | OverlapRule):
            if loc.lat is not None and loc.lon is not None:
                role = (
                    rule.role(etype, agency, details) if isinstance(rule, ProximityRule) else None
                )
                out.add((rule.id, rule.id, role))
            continue
        if rule.kind == "sequence":
            steps = rule.step_of(etype, agency, details)
            value: Any = ",".join(map(str, steps)) if steps else "u"
        elif rule.kind == "distinct":
            own = {"agency": agency, "type": etype}
            value = own[rule.field] if rule.field in own else getattr(loc, rule.field)
        else:
            value = None
        out |= {(rule.id, g, value) for g in _reference_groups(rule, event)}
    return out


def test_decisions_taken_by_type_agree_with_the_filters_agencies_and_details(
    tmp_path: Path,
) -> None:
    """Steps, roles and filters on agencies or details are asked per event; the
    others are settled by the event type once per rule set: the same ops and
    the same observation values either way."""
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - {id: seq_agency_step, title: t, kind: sequence, severity: info, group_by: ["entity:*"],
     steps: [{types: [seizure, arrest]}, {agencies: [douane, police]}],
     until: {types: [intel_share], agencies: [marine]}, window: 30d}
  - {id: seq_filtered, title: t, kind: sequence, severity: info, group_by: ["entity:*"],
     filter: {agencies: [police, gendarmerie]}, steps: [{types: [seizure]}, {types: [arrest]}],
     window: 30d}
  - {id: prox_details, title: t, kind: proximity, severity: info,
     reference: {types: [deal_point], details: {status: active}},
     trigger: {types: [shooting], agencies: [police]}, radius_m: 500, window: 30d}
  - {id: prox_plain, title: t, kind: proximity, severity: info,
     reference: {types: [dismantling_operation]}, trigger: {types: [shooting]},
     radius_m: 500, window: 30d}
  - {id: overlap_agency, title: t, kind: overlap, severity: info,
     filter: {types: [planned_operation], agencies: [police, douane]}, radius_m: 500, window: 2d}
  - {id: distinct_site, title: t, kind: distinct, severity: info, field: site,
     filter: {details: {status: "*"}}, group_by: [department], count: 2, window: 30d}
  - {id: distinct_type, title: t, kind: distinct, severity: info, field: type,
     group_by: [entity:person], count: 2, window: 30d}
  - {id: threshold_details, title: t, kind: threshold, severity: info,
     filter: {types: [deal_point], details: {status: [active]}}, group_by: [department],
     count: 2, window: 30d}
"""
    )
    rules = load_dir(tmp_path)
    e = _engine(rules)
    asked = {c.rule.id for cs in e._by_type.values() for c, decided in cs if decided is _ASK}
    assert asked == {
        "seq_agency_step",
        "seq_filtered",
        "prox_details",
        "overlap_agency",
        "distinct_site",
        "threshold_details",
    }
    rule_ids = set()
    for event in EVENTS:
        planned = e.plan(event)
        value_of = {
            (p.rule.id, p.group, p.op.obs.role if p.rule.kind == "proximity" else p.op.obs.value)
            for p in planned
        }
        assert value_of == _reference_values(event, rules)
        assert len(planned) == len(value_of)
        rule_ids |= {p.rule.id for p in planned}
    assert rule_ids == {r.id for r in rules.rules}  # every rule planned ops
