"""`vigie check config|event`: offline validation, one line naming the file and place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigie.check import ConfigProblem, NotifyFiles, check_event, check_notify, check_rules

CELLS = """
cells:
  hq: {name: HQ}
  dept-13: {name: Marseille, escalate_to: hq}
"""
ROUTING = """
route:
  receiver: hq
  routes:
    - receiver: dept-13
      matchers: ['department="13"']
receivers: [{name: hq}, {name: dept-13}]
"""
SECRETS = """
api_tokens: {hq: tok-hq-0123456789, dept-13: tok-13-0123456789}
webhook_secrets: {hq: s1, dept-13: s2}
"""


def files(
    tmp_path: Path, routing: str = ROUTING, cells: str = CELLS, secrets: str | None = SECRETS
):
    (tmp_path / "routing.yml").write_text(routing)
    (tmp_path / "cells.yml").write_text(cells)
    sec = None
    if secrets is not None:
        sec = tmp_path / "secrets.yml"
        sec.write_text(secrets)
    return NotifyFiles(tmp_path / "routing.yml", tmp_path / "cells.yml", sec)


def test_a_complete_configuration_passes(tmp_path: Path) -> None:
    line = check_notify(files(tmp_path))
    assert "2 receivers, all cells" in line and "2 cells" in line and "complete" in line


def test_a_receiver_that_is_not_a_cell(tmp_path: Path) -> None:
    routing = ROUTING.replace(
        "[{name: hq}, {name: dept-13}]", "[{name: hq}, {name: dept-13}, {name: dept-99}]"
    )
    with pytest.raises(ConfigProblem, match="receiver 'dept-99' of the routing file is not a cell"):
        check_notify(files(tmp_path, routing=routing))


def test_a_cell_without_api_token_or_webhook_secret(tmp_path: Path) -> None:
    f = files(tmp_path, secrets="api_tokens: {hq: tok-hq-0123456789}\nwebhook_secrets: {hq: s}\n")
    with pytest.raises(ConfigProblem) as exc:
        check_notify(f)
    msg = str(exc.value)
    assert "secrets.yml" in msg and "'dept-13' has no API token" in msg and "1 more" in msg
    # a default webhook secret covers the webhook channels
    f = files(tmp_path, secrets="api_tokens: {hq: a-0123456789, dept-13: b-0123456789}\n")
    with pytest.raises(ConfigProblem, match="webhook channel but no webhook secret"):
        check_notify(f)
    check_notify(NotifyFiles(f.routing, f.cells, f.secrets, default_webhook_secret=True))


def test_secrets_naming_an_unknown_cell(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblem, match="'dept-06' is not a cell"):
        check_notify(
            files(tmp_path, secrets=SECRETS + "smtp_password: x\napi_tokens: {dept-06: t}\n")
        )


def test_an_email_channel_needs_smtp(tmp_path: Path) -> None:
    cells = CELLS + "  dept-06: {channels: [{type: email, to: [a@b.fr]}]}\n"
    with pytest.raises(ConfigProblem, match="cell dept-06: email channel but VIGIE_SMTP_HOST"):
        check_notify(files(tmp_path, cells=cells, secrets=None), complete=False)


def test_rules_directory(tmp_path: Path) -> None:
    assert " rules, version " in check_rules(Path("services/correlate/rules/default"))
    (tmp_path / "r.yaml").write_text("id: x\n")
    with pytest.raises(ConfigProblem, match=r"r\.yaml"):
        check_rules(tmp_path)


EVENT = {
    "event_id": "POL-1",
    "agency": "police",
    "type": "seizure",
    "occurred_at": "2026-11-26T10:15:00+01:00",
    "entities": [{"kind": "phone", "value": "06 12 34 56 78"}],
}


def test_event_valid_and_refused(tmp_path: Path) -> None:
    f = tmp_path / "ev.json"
    f.write_text(json.dumps(EVENT))
    assert "valid v1 inbound event 'POL-1' of police" in check_event(f)
    with pytest.raises(ConfigProblem, match="agency_mismatch"):
        check_event(f, agency="douane")
    f.write_text(
        json.dumps(
            dict(EVENT, entities=[{"kind": "bank_account", "value": "FR7630006000011234567890188"}])
        )
    )
    with pytest.raises(
        ConfigProblem, match=r"ev.json: refused \(bad_identifier at entities.0.value\)"
    ):
        check_event(f)
    f.write_bytes(b"\xff\xfe not json")
    with pytest.raises(ConfigProblem, match="not_json"):
        check_event(f)
    ce = {
        "specversion": "1.0",
        "id": "1",
        "source": "/p",
        "type": "fr.vigie.event.v1",
        "data": EVENT,
    }
    f.write_text(json.dumps(ce))
    assert "POL-1" in check_event(f)
