"""The scenario generator: deterministic, valid events, honest expectations."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.models import InboundEvent
from shared.topics import AGENCIES
from vigie.cli import app
from vigie.scenario.generate import RULES, _iso6346, generate, read_jsonl, write

CHECKED_IN = Path(__file__).parents[3] / "scenarios" / "small"


def test_same_seed_same_bytes_other_seed_other_traffic(tmp_path: Path) -> None:
    a = write(generate(3, 10), tmp_path / "a")
    b = write(generate(3, 10), tmp_path / "b")
    c = write(generate(4, 10), tmp_path / "c")
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    assert a["events"].read_bytes() != c["events"].read_bytes()


def test_events_are_valid_cover_agencies_departments_and_are_sorted() -> None:
    s = generate(11, 14)
    for ev in s.events:
        InboundEvent.model_validate(ev)
    assert len({e["event_id"] for e in s.events}) == len(s.events)
    assert {e["agency"] for e in s.events} == set(AGENCIES)
    depts = {e["location"]["department"] for e in s.events}
    assert {"13", "59", "75", "76", "2A", "971", "972", "973", "974"} <= depts
    times = [datetime.fromisoformat(e["occurred_at"]) for e in s.events]
    assert times == sorted(times)
    # background has realistic shape: seizures and arrests dominate
    types = Counter(e["type"] for e in s.events)
    assert types["seizure"] > types["deal_point"] > 0


def test_every_default_rule_is_expected_with_event_ids_that_exist() -> None:
    s = generate(5, 14)
    ids = {e["event_id"] for e in s.events}
    assert {a["rule"] for a in s.expected_alerts} == set(RULES)
    for a in s.expected_alerts:
        assert set(a["event_ids"]) <= ids
        assert a["severity"] == RULES[a["rule"]][0]
    keys = [(a["rule"], a["department"]) for a in s.expected_alerts]
    assert len(keys) == len(set(keys))
    # near-misses exist for every rule and never share an event with a match
    assert {m["rule"] for m in s.near_misses} == set(RULES)
    matched = {i for a in s.expected_alerts for i in a["event_ids"]}
    assert not matched & {i for m in s.near_misses for i in m["event_ids"]}


def test_side_effect_deconfliction_is_derived_not_typed() -> None:
    s = generate(5, 14)
    td = {a["department"]: a for a in s.expected_alerts if a["rule"] == "target_deconfliction"}
    # the vessel tipped by the navy and seized by customs is also a shared target
    maritime = next(a for a in s.expected_alerts if a["rule"] == "maritime_tip_to_port")
    assert td["76"]["event_ids"] == maritime["event_ids"]
    # same-agency arms-and-drugs on a vehicle is not a deconfliction
    assert "33" not in td


def test_notifications_follow_the_shipped_routing() -> None:
    s = generate(5, 14)
    cells = {(n["cell"], n["rule"], n["department"]) for n in s.expected_notifications}
    assert ("dept-13", "target_deconfliction", "13") in cells
    # critical: département, hq and the regional antenna
    assert {c for c, r, _ in cells if r == "operation_deconfliction"} == {
        "dept-75",
        "hq",
        "antenne-paris",
    }
    assert {c for c, r, _ in cells if r == "threat_escalation"} == {
        "dept-972",
        "hq",
        "antenne-fort-de-france",
    }
    assert ("hq", "target_deconfliction", "13") not in cells


def test_check_digits_are_right() -> None:
    # a well-known valid container number
    assert _iso6346("CSQ", "305438") == "CSQU3054383"


def test_checked_in_scenario_is_what_the_generator_writes(tmp_path: Path) -> None:
    paths = write(generate(7, 14), tmp_path)
    for name, path in paths.items():
        assert (CHECKED_IN / path.name).read_bytes() == path.read_bytes(), name
    assert read_jsonl(CHECKED_IN / "expected_alerts.jsonl")


def test_cli_writes_files_and_refuses_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app, ["scenario", "generate", "--seed", "2", "--days", "5", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert len(read_jsonl(tmp_path / "events.jsonl")) > 50
    res = runner.invoke(app, ["scenario", "generate", "--out", str(tmp_path), "--start", "x"])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["scenario", "generate", "--out", str(tmp_path), "--days", "1"])
    assert res.exit_code == 2


def test_impossible_arguments_raise() -> None:
    with pytest.raises(ValueError):
        generate(1, 2)


def test_every_identifier_passes_ingest_normalisation() -> None:
    from services.ingest.normalize import normalize_entity

    s = generate(9, 14)
    for ev in s.events:
        for ent in ev.get("entities", []):
            normalize_entity(ent["kind"], ent["value"])
