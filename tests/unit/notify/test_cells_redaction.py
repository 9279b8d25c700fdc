"""The cells file (strict) and need-to-know redaction, proven for every channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.notify.cells import CellsError, default_cells_path, load_cells, parse_cells
from services.notify.channels import email, matrix, webhook
from services.notify.channels.base import Notification
from services.notify.redact import view
from shared.models import Alert, Annotations, Evidence, Handling

SECRET_BITS = ("CASE-SECRET-42", "unit 7 lieutenant X", "tok:abcdef", "secret summary")


def secret_alert() -> Alert:
    return Alert(
        alert_id="f" * 32,
        rule="target_deconfliction",
        severity="high",
        labels={
            "rule": "target_deconfliction",
            "severity": "high",
            "department": "13",
            "axis": "organisations",
            "agencies": "douane,police",
            "entity": "tok:abcdef",
        },
        annotations=Annotations(summary="secret summary", description="tok:abcdef held twice"),
        starts_at=datetime(2026, 11, 27, tzinfo=UTC),
        evidence=[
            Evidence(
                agency="douane",
                event_id="e1",
                occurred_at=datetime(2026, 11, 27, tzinfo=UTC),
                case_ref="CASE-SECRET-42",
                contact="unit 7 lieutenant X",
            )
        ],
        handling=Handling.SECRET,
    )


def test_shipped_cells_file() -> None:
    cells = load_cells(default_cells_path())
    depts = [c for c in cells.by_id if c.startswith("dept-")]
    antennas = [c for c in cells.by_id if c.startswith("antenne-")]
    assert len(depts) == 102 and len(antennas) == 13 and "hq" in cells
    for d in depts:
        chain = cells.chain(d)
        assert len(chain) == 2 and chain[0].startswith("antenne-") and chain[1] == "hq"
    assert cells.chain("dept-13") == ["antenne-marseille", "hq"]
    assert cells["hq"].clearance is Handling.SECRET
    assert cells["dept-13"].clearance is Handling.RESTRICTED


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"cells": {"dept-99": {}}}, "bad cell id"),
        ({"cells": {"hq": {"escalate_to": "nowhere"}}}, "not a cell"),
        (
            {"cells": {"hq": {"escalate_to": "antenne-a"}, "antenne-a": {"escalate_to": "hq"}}},
            "cycle",
        ),
        ({"cells": {"hq": {"clearance": "top"}}}, "clearance"),
        ({"cells": {"hq": {"channels": [{"type": "pager"}]}}}, "channels"),
        ({"cells": {"hq": {"typo": 1}}}, "typo"),
        ({"cells": {"hq": {"channels": [{"type": "email", "to": ["nope"]}]}}}, "to"),
    ],
)
def test_cells_file_is_strict(doc: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(CellsError, match=message):
        parse_cells(doc)


def notification(cell_id: str) -> Notification:
    cells = load_cells(default_cells_path())
    return Notification(
        receiver=cell_id,
        group_key="g",
        group_labels={},
        alerts=[view(secret_alert(), cells[cell_id], cells)],
        notification_id="n1",
    )


def rendered(n: Notification) -> dict[str, str]:
    """What each channel would put on the wire for ``n``."""
    msg = email.message(n, "vigie@test", ["cell@test"])
    return {
        "webhook": json.dumps(webhook.payload(n)),
        "email": msg.as_string(),
        "matrix": json.dumps(matrix.content(n)),
    }


def test_pointer_only_below_clearance_for_every_channel() -> None:
    n = notification("dept-13")  # restricted cell, secret alert
    (a,) = n.alerts
    assert a["redacted"] and a["evidence"] == [] and a["contact"] == "antenne-marseille"
    assert set(a["labels"]) == {"rule", "severity", "department", "axis"}
    for channel, wire in rendered(n).items():
        for bit in SECRET_BITS:
            assert bit not in wire, (channel, bit)
        assert "target_deconfliction" in wire and "antenne-marseille" in wire, channel


def test_full_detail_when_cleared_for_every_channel() -> None:
    n = notification("hq")
    (a,) = n.alerts
    assert not a["redacted"] and a["evidence"][0]["case_ref"] == "CASE-SECRET-42"
    for channel, wire in rendered(n).items():
        assert "CASE-SECRET-42" in wire, channel


def test_every_channel_links_the_alert_in_the_console() -> None:
    """With VIGIE_CONSOLE_URL set, each channel's message carries the alert's
    console page (a pointer too: the console shows the cell what it may see)."""
    cells = load_cells(default_cells_path())
    alert = secret_alert()
    for cell in ("dept-13", "hq"):
        n = Notification(
            receiver=cell,
            group_key="g",
            group_labels={},
            alerts=[view(alert, cells[cell], cells)],
            notification_id="n1",
            console_url="https://vigie.example/console/",
        )
        link = f"https://vigie.example/console/alerts/{alert.alert_id}"
        for channel, wire in rendered(n).items():
            assert link in wire, (cell, channel)
    assert "consoleURL" not in json.dumps(rendered(notification("hq")))  # none without a URL
