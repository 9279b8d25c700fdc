"""The JSON Schema of the inbound event (v1), generated from :class:`~shared.models.InboundEvent`.

``schemas/inbound-event.v1.schema.json`` is this module's output, checked in
for agency developers; a unit test fails when model and file diverge.
Regenerate with ``python -m services.ingest.schema > schemas/inbound-event.v1.schema.json``.

The schema is the *structural* contract. Ingest also checks what a schema
cannot say well: identifier check digits, ``lat``/``lon`` together, the
event's agency against the topic's, and ``occurred_at`` not in the future.
"""

from __future__ import annotations

import json
from typing import Any

from shared.models import InboundEvent

SCHEMA_ID = "https://vigie.example/schemas/inbound-event.v1.schema.json"


def inbound_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what agencies publish."""
    schema = InboundEvent.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def render() -> str:
    return json.dumps(inbound_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
