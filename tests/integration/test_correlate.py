"""Correlate on the real broker and Redis.

* the fixtures of every default rule, through ``vigie rules test``'s code path;
* a scenario through ingest and correlate (processes) raises exactly the
  expected alerts; replaying it (inbound and normalised) raises none more;
  late and undecodable events go to their topics; rules hot-reload.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from rich.console import Console

from services.correlate.fixtures import cli_rules_test
from services.correlate.rules import DEFAULT_DIR, FIXTURES_DIR
from shared.localstack import LocalStack
from tests.kafkautil import consume_all, produce, wait_services_caught_up
from vigie.replay import parse_lines, publish
from vigie.stack import Pipeline


def _console() -> Console:
    return Console(width=200, record=True, force_terminal=False)


def test_rules_fixtures_pass_on_real_redis(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIGIE_REDIS_URL", stack.redis_url)
    out, err = _console(), _console()
    assert cli_rules_test(None, out, err) == 0, out.export_text()
    text = out.export_text()
    passed = re.search(r"(\d+)/(\d+) cases pass", text)
    assert passed and passed.group(1) == passed.group(2) and int(passed.group(1)) >= 60
    assert "FAIL" not in text

    # a wrong expectation is a mismatch (exit 1), shown in the table
    broken = (
        (FIXTURES_DIR / "violence_cluster.yaml")
        .read_text()
        .replace("{evidence: [a, b, c]}", "{evidence: [a, b]}", 1)
    )
    (tmp_path / "broken.yaml").write_text(broken)
    out = _console()
    assert cli_rules_test(tmp_path / "broken.yaml", out, _console()) == 1
    assert "FAIL" in out.export_text()

    # a fixture that points at a bad rules directory is an error (exit 2), one line
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "id: x1\ntitle: t\nkind: threshold\nseverity: high\n"
        "group_by: [department]\ncount: 2\nwindow: 7 weeks\n"
    )
    (tmp_path / "f.yaml").write_text("rule: x1\nrules: rules\ncases: []\n")
    err = _console()
    assert cli_rules_test(tmp_path / "f.yaml", _console(), err) == 2
    assert "r.yaml:7: rule 'x1': window: bad duration" in err.export_text()
    # no fixture key left behind
    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert not list(client.scan_iter(match="vigie-fixture:*", count=1000))
    finally:
        client.close()


SCENARIO = [
    # target deconfliction on a phone written two ways
    {
        "event_id": "p-1",
        "agency": "police",
        "type": "seizure",
        "occurred_at": "2026-11-20T06:00:00+01:00",
        "location": {"department": "13"},
        "entities": [{"kind": "phone", "value": "+33 6 11 22 33 44"}],
        "case_ref": "PJ-1",
        "contact": "DIPN 13",
    },
    {
        "event_id": "d-1",
        "agency": "douane",
        "type": "seizure",
        "occurred_at": "2026-11-21T06:00:00+01:00",
        "location": {"site": "FRMRS", "department": "13"},
        "entities": [{"kind": "phone", "value": "06 11 22 33 44"}],
        "case_ref": "DNRED-1",
    },
    # maritime intel then seizure on a vessel (and the vessel held by two agencies)
    {
        "event_id": "m-1",
        "agency": "marine",
        "type": "maritime_intel",
        "occurred_at": "2026-11-18T03:00:00+00:00",
        "location": {"department": "76"},
        "entities": [{"kind": "vessel", "value": "IMO 9074729"}],
        "handling": "secret",
    },
    {
        "event_id": "d-2",
        "agency": "douane",
        "type": "seizure",
        "occurred_at": "2026-11-22T09:30:00+01:00",
        "location": {"site": "FRLEH", "department": "76"},
        "entities": [{"kind": "vessel", "value": "imo9074729"}],
    },
    # an active deal point, a shooting 220 m away, two more violent incidents in 13
    {
        "event_id": "p-2",
        "agency": "police",
        "type": "deal_point",
        "occurred_at": "2026-11-19T12:00:00+01:00",
        "details": {"status": "active"},
        "location": {"lat": 43.3000, "lon": 5.3800, "department": "13"},
    },
    {
        "event_id": "p-3",
        "agency": "police",
        "type": "shooting",
        "occurred_at": "2026-11-20T23:00:00+01:00",
        "location": {"lat": 43.3020, "lon": 5.3800, "department": "13"},
    },
    {
        "event_id": "g-1",
        "agency": "gendarmerie",
        "type": "attempted_homicide",
        "occurred_at": "2026-11-21T23:00:00+01:00",
        "location": {"lat": 43.5000, "lon": 5.2000, "department": "13"},
    },
    {
        "event_id": "g-2",
        "agency": "gendarmerie",
        "type": "kidnapping",
        "occurred_at": "2026-11-22T23:00:00+01:00",
        "location": {"department": "13"},
    },
    # two planned operations at the same place and time
    {
        "event_id": "p-4",
        "agency": "police",
        "type": "planned_operation",
        "occurred_at": "2026-11-20T10:00:00+01:00",
        "location": {"lat": 45.7600, "lon": 4.8400, "department": "69"},
        "details": {
            "starts_at": "2026-12-01T06:00:00+01:00",
            "ends_at": "2026-12-01T10:00:00+01:00",
        },
    },
    {
        "event_id": "g-3",
        "agency": "gendarmerie",
        "type": "planned_operation",
        "occurred_at": "2026-11-21T10:00:00+01:00",
        "location": {"lat": 45.7620, "lon": 4.8400, "department": "69"},
        "details": {
            "starts_at": "2026-12-01T09:00:00+01:00",
            "ends_at": "2026-12-01T11:00:00+01:00",
        },
    },
]

EXPECTED = {
    ("target_deconfliction", ("d-1", "p-1")),
    ("target_deconfliction", ("d-2", "m-1")),
    ("maritime_tip_to_port", ("d-2", "m-1")),
    ("violence_near_deal_point", ("p-2", "p-3")),
    ("violence_cluster", ("g-1", "g-2", "p-3")),
    ("operation_deconfliction", ("g-3", "p-4")),
}

NEW_RULE = """
id: arrests_pair
title: Two arrests in one département
kind: threshold
severity: info
filter: {types: [arrest]}
group_by: [department]
count: 2
window: 1d
"""


def _summary(records: list[bytes]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for value in records:
        alert = json.loads(value)
        out.append((alert["rule"], tuple(sorted(e["event_id"] for e in alert["evidence"]))))
    return out


async def _metric(port: int, name: str) -> str:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return "\n".join(ln for ln in text.splitlines() if ln.startswith(name))


@pytest.mark.brokers
async def test_scenario_through_ingest_and_correlate(
    make_pipeline: Callable[..., Pipeline], tmp_path: Path
) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules_dir)
    pipeline = make_pipeline(
        extra_env={
            "VIGIE_RULES_DIR": str(rules_dir),
            "VIGIE_RULES_RELOAD_S": "0.3",
            "VIGIE_IDLE_PARTITION_S": "1",  # the scenario's quiet streams stop counting
        }
    )
    assert pipeline.stack is not None
    bootstrap, topics = pipeline.stack.bootstrap, pipeline.topics
    lines, bad = parse_lines([json.dumps(e) for e in SCENARIO], topics)
    assert not bad
    await publish(bootstrap, lines)

    await wait_services_caught_up(bootstrap, topics)  # then every alert is written
    records = await consume_all(bootstrap, topics.alerts, expect=len(EXPECTED))
    alerts = [json.loads(r.value) for r in records]
    got = _summary([r.value for r in records])
    assert sorted(got) == sorted(EXPECTED)  # exactly these, each once
    by_rule = {a["rule"]: a for a in alerts}
    for a in alerts:
        assert {"rule", "severity", "axis", "agencies"} <= set(a["labels"])
        assert a["trigger_published_ms"] and a["rules_version"]
    assert by_rule["operation_deconfliction"]["severity"] == "critical"
    assert by_rule["maritime_tip_to_port"]["handling"] == "secret"
    assert by_rule["violence_cluster"]["labels"]["department"] == "13"
    version = alerts[0]["rules_version"]
    blob = b"".join(r.value for r in records)
    for clear in (b"11 22 33 44", b"+33611223344", b"9074729"):
        assert clear not in blob  # pointers and tokens only

    # replay: the inbound events again, and the normalised events straight to correlate
    normalised = await consume_all(bootstrap, topics.events, expect=len(SCENARIO))
    assert len(normalised) == len(SCENARIO)
    await publish(bootstrap, lines)
    await produce(bootstrap, topics.events, [r.value for r in normalised])
    # an undecodable event, and one too late for every rule that takes it (behind
    # the watermark of its stream by more than the longest window, 180 days, plus
    # the 7 days of lateness): an event carrying no entity sets its stream's clock
    seizure = next(r.value for r in normalised if json.loads(r.value)["type"] == "seizure")
    anchor = json.loads(seizure)
    anchor.update(event_id="anchor-1", entities=[], location={}, source_partition=None)
    late = json.loads(seizure)
    late.update(event_id="late-1", occurred_at="2026-01-01T00:00:00+00:00", source_partition=None)
    await produce(bootstrap, topics.events, [b"{not json"])
    await produce(bootstrap, topics.events, [json.dumps(anchor).encode()], key=b"late")
    # the anchor's stream has its clock once correlate has applied it: only then
    # is the late event behind it (in one batch with the anchor, it is judged
    # against the watermark from before the batch)
    await wait_services_caught_up(bootstrap, topics, ["correlate"])
    await produce(bootstrap, topics.events, [json.dumps(late).encode()], key=b"late")
    await wait_services_caught_up(bootstrap, topics)  # the replays are processed
    late_records = await consume_all(bootstrap, topics.events_late, expect=1)
    assert [json.loads(r.value)["event_id"] for r in late_records] == ["late-1"]
    dlq = await consume_all(bootstrap, topics.events_dlq, expect=1)
    assert [json.loads(r.value)["reason"] for r in dlq] == ["bad_normalized_event"]
    again = await consume_all(bootstrap, topics.alerts)
    assert len(again) == len(EXPECTED)  # nothing more

    port = pipeline.services["correlate"].port
    assert "vigie_correlate_late_total 1.0" in await _metric(port, "vigie_correlate_late_total")

    # hot reload: a bad file is rejected, the previous rules stay active
    (rules_dir / "zz_bad.yaml").write_text(NEW_RULE + "unknown_key: 1\n")
    deadline = time.monotonic() + 10
    while "1.0" not in await _metric(port, "vigie_correlate_rules_reload_errors_total"):
        assert time.monotonic() < deadline, "bad rules file not rejected"
        await asyncio.sleep(0.2)
    assert version in await _metric(port, "vigie_correlate_rules_version_info")
    # a good one is picked up without a restart and stamped on new alerts
    (rules_dir / "zz_bad.yaml").unlink()
    (rules_dir / "zz_new.yaml").write_text(NEW_RULE)
    deadline = time.monotonic() + 10
    while version in await _metric(port, "vigie_correlate_rules_version_info"):
        assert time.monotonic() < deadline, "new rules not loaded"
        await asyncio.sleep(0.2)
    arrests = []
    for i in range(2):
        ev = json.loads(normalised[0].value)
        ev.update(
            event_id=f"arr-{i}",
            type="arrest",
            entities=[],
            occurred_at=f"2026-11-22T0{i}:00:00+00:00",
            location={"department": "59"},
        )
        arrests.append(json.dumps(ev).encode())
    await produce(bootstrap, topics.events, arrests)
    await wait_services_caught_up(bootstrap, topics, ["correlate"])
    records = await consume_all(bootstrap, topics.alerts, expect=len(EXPECTED) + 1)
    new = [json.loads(r.value) for r in records if json.loads(r.value)["rule"] == "arrests_pair"]
    assert len(new) == 1
    assert new[0]["rules_version"] != version


def test_rules_test_takes_a_rules_directory(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``vigie rules test DIR``: the fixtures of every rule of DIR, run against DIR's rules."""
    monkeypatch.setenv("VIGIE_REDIS_URL", stack.redis_url)
    # the shipped pack: its fixtures live next to it
    out = _console()
    assert cli_rules_test(DEFAULT_DIR, out, _console()) == 0, out.export_text()
    text = out.export_text()
    passed = re.search(r"(\d+)/(\d+) cases pass", text)
    assert passed and passed.group(1) == passed.group(2) and int(passed.group(1)) >= 60

    # a directory of its own: its rules without fixtures fail, one row each
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(DEFAULT_DIR / "violence.yaml", rules / "violence.yaml")
    out = _console()
    assert cli_rules_test(rules, out, _console()) == 1
    text = out.export_text()
    for rule in ("violence_cluster", "threat_escalation", "violence_near_deal_point"):
        assert f"{rule}: no fixture" in text
    # with their fixtures in DIR/fixtures/, they pass
    (rules / "fixtures").mkdir()
    for rule in (
        "violence_cluster",
        "threat_escalation",
        "violence_near_deal_point",
        "retaliation_after_dismantling",
    ):
        shutil.copy(FIXTURES_DIR / f"{rule}.yaml", rules / "fixtures" / f"{rule}.yaml")
    out = _console()
    assert cli_rules_test(rules, out, _console()) == 0, out.export_text()
    assert "no fixture" not in out.export_text()
    # and they test DIR's rules, not the shipped ones: a changed threshold fails its cases
    text = (rules / "violence.yaml").read_text()
    assert "count: 3" in text
    (rules / "violence.yaml").write_text(text.replace("count: 3", "count: 4"))
    out = _console()
    assert cli_rules_test(rules, out, _console()) == 1
    failing = [ln for ln in out.export_text().splitlines() if "FAIL" in ln]
    assert failing and all("violence_cl" in ln for ln in failing)
    # a bad rules directory is an error (exit 2), one line naming the file
    (rules / "violence.yaml").write_text(text.replace("window: 7d", "window: 7 days"))
    err = _console()
    assert cli_rules_test(rules, _console(), err) == 2
    assert "violence.yaml" in err.export_text()
