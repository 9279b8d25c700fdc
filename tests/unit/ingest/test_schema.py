"""The checked-in JSON Schema is the one generated from the model."""

from __future__ import annotations

import json
from pathlib import Path

from services.ingest.schema import inbound_schema, render

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schemas" / "inbound-event.v1.schema.json"


def test_checked_in_schema_matches_the_model() -> None:
    on_disk = SCHEMA_FILE.read_text(encoding="utf-8")
    assert json.loads(on_disk) == inbound_schema(), (
        "schemas/inbound-event.v1.schema.json is stale: regenerate it with "
        "python -m services.ingest.schema > schemas/inbound-event.v1.schema.json"
    )
    assert on_disk == render()


def test_schema_states_the_contract() -> None:
    schema = inbound_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"event_id", "agency", "type", "occurred_at"}
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
    assert len(schema["properties"]["agency"]["enum"]) == 8
