"""Ingest's decision per message: encodings, refusals with reasons, tokens, keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.pipeline import Accepted, Refused, Source, normalize, process, serialize
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.validate import REASONS, decode
from shared.models import InboundEvent, NormalizedEvent

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PSEUDO = Pseudonymizer(b"unit-test-key-0123456789abcdef", "t1")


def event(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": "POL-2026-000123",
        "agency": "police",
        "type": "seizure",
        "occurred_at": "2026-11-26T10:15:00+01:00",
        "location": {"lat": 43.2965, "lon": 5.3698, "insee": "13055"},
        "entities": [
            {"kind": "phone", "value": "06 12 34 56 78"},
            {"kind": "person", "value": "Élodie DUPONT"},
            {"kind": "bank_account", "value": "FR76 3000 6000 0112 3456 7890 189"},
        ],
        "details": {"drug": "cocaine", "quantity_kg": 12.5, "vector": "road"},
        "case_ref": "PJ-13-2026-42",
        "contact": "OFAST Marseille",
    }
    ev.update(over)
    return ev


def run(
    raw: bytes | None, agency: str | None = "police", headers: list[tuple[str, bytes]] | None = None
) -> Accepted | Refused:
    src = Source(f"agency.{agency}.events", 2, 41, 1_700_000_000_000, agency)
    return process(raw, src, PSEUDO, NOW, 4096, timedelta(minutes=5), headers)


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_plain_event_is_normalised_and_pseudonymised() -> None:
    out = run(enc(event()))
    assert isinstance(out, Accepted)
    ev = out.event
    assert ev.occurred_at == datetime(2026, 11, 26, 9, 15, tzinfo=UTC)
    assert ev.location.department == "13"
    assert ev.location.h3 is not None
    assert out.key == b"dept:13"
    body = ev.model_dump_json(by_alias=True)
    for clear in ("0612345678", "+33612345678", "Dupont", "dupont", "FR76", "30006000"):
        assert clear not in body
    assert all(t.token.startswith("t1:") for t in ev.entities)


def test_same_identifier_from_two_agencies_gives_the_same_token() -> None:
    a = run(enc(event()))
    b = run(
        enc(
            event(
                agency="douane",
                entities=[
                    {"kind": "phone", "value": "+33612345678"},
                    {"kind": "person", "value": "dupont  elodie"},
                    {"kind": "bank_account", "value": "fr7630006000011234567890189"},
                ],
            )
        ),
        agency="douane",
    )
    assert isinstance(a, Accepted) and isinstance(b, Accepted)
    assert [t.token for t in a.event.entities] == [t.token for t in b.event.entities]
    other_key = Pseudonymizer(b"another-key-0123456789abcdef!!", "t2")
    assert other_key.token("phone", "+33612345678") != a.event.entities[0].token


def test_structured_cloudevent() -> None:
    ce = {
        "specversion": "1.0",
        "id": "abc",
        "source": "/police/pnj",
        "type": "fr.vigie.event.v1",
        "datacontenttype": "application/json",
        "data": event(),
    }
    out = run(enc(ce))
    assert isinstance(out, Accepted) and out.event.event_id == "POL-2026-000123"
    bad = dict(ce)
    del bad["source"]
    refused = run(enc(bad))
    assert isinstance(refused, Refused) and refused.reason == "bad_cloudevent"


def test_binary_cloudevent() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"abc"),
        ("ce_source", b"/police"),
        ("ce_type", b"fr.vigie.event.v1"),
        ("content-type", b"application/json"),
    ]
    out = run(enc(event()), headers=headers)
    assert isinstance(out, Accepted)
    refused = run(enc(event()), headers=headers[:2])
    assert isinstance(refused, Refused) and refused.reason == "bad_cloudevent"
    assert refused.record["headers"][0] == ["ce_specversion", base64.b64encode(b"1.0").decode()]


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"", "not_json", None),
        (b"\xff\xfe{", "not_json", None),
        (b"{not json", "not_json", None),
        (b"[1, 2]", "not_object", None),
        (b"x" * 5000, "too_large", None),
        (enc(event(type="picnic")), "schema", "type"),
        (enc(event(occurred_at="2026-11-26T10:15:00")), "schema", "occurred_at"),
        (enc(event(location={"department": "20"})), "schema", "location.department"),
        (enc(event(location={"lat": 91, "lon": 0})), "schema", "location.lat"),
        (enc(event(location={"lat": 43.0})), "schema", "location"),
        (enc(event(colour="red")), "schema", "colour"),
        (enc(event(event_id="x" * 129)), "schema", "event_id"),
        (enc(event(agency="douane")), "agency_mismatch", "agency"),
        (enc(event(occurred_at="2026-11-26T13:00:00+00:00")), "future_event", "occurred_at"),
        (
            enc(event(entities=[{"kind": "container", "value": "CSQU3054384"}])),
            "bad_identifier",
            "entities.0.value",
        ),
        (
            enc(
                event(
                    entities=[
                        {"kind": "phone", "value": "+33612345678"},
                        {"kind": "bank_account", "value": "DE89370400440532013001"},
                    ]
                )
            ),
            "bad_identifier",
            "entities.1.value",
        ),
    ],
)
def test_refusals_carry_reason_field_and_original_bytes(
    raw: bytes, reason: str, field: str | None
) -> None:
    out = run(raw)
    assert isinstance(out, Refused), out
    assert out.reason == reason and reason in REASONS
    rec = out.record
    assert rec["field"] == field
    assert base64.b64decode(rec["original_b64"]) == raw
    assert rec["source"] == {
        "topic": "agency.police.events",
        "partition": 2,
        "offset": 41,
        "timestamp_ms": 1_700_000_000_000,
    }
    assert rec["message"]
    assert "DE89370400440532013001" not in rec["message"]


def test_corsica_and_overseas_departments() -> None:
    for loc, dept in [
        ({"department": "2a"}, "2A"),
        ({"insee": "2B033"}, "2B"),
        ({"insee": "97411"}, "974"),
        ({"department": "976"}, "976"),
    ]:
        out = run(enc(event(location=loc)))
        assert isinstance(out, Accepted) and out.event.location.department == dept
        assert out.key == f"dept:{dept}".encode()


def test_unknown_topic() -> None:
    out = run(enc(event()), agency=None)
    assert isinstance(out, Refused) and out.reason == "unknown_topic"


def test_events_without_department_are_keyed_by_agency() -> None:
    out = run(enc(event(location=None)))
    assert isinstance(out, Accepted) and out.key == b"agency:police"


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"location": None, "entities": []},
        {"location": {"department": "2A", "site": "FR MRS"}, "reported_at": "2026-11-26T11:00:00Z"},
        {"entities": [{"kind": "phone", "value": "06 12 34 56 78"}] * 2, "handling": "secret"},
        {"details": {"nested": {"a": [1, 2.5, None, "é"]}, "flag": True}},
        {"details": {"tiny": 5e-324, "big": 1e100, "round": 1e15, "neg": -0.0, "u": "\u2028"}},
        # beyond 64 bits: orjson refuses it, pydantic's serializer writes it
        {"details": {"huge": 10**30, "n": -(2**63) - 1}},
    ],
)
def test_the_fast_serialisation_is_the_models_own(over: dict[str, Any]) -> None:
    """normalize() skips building the model; the model must accept its dict as is
    and write the very same bytes."""
    inbound = decode(enc(event(**over)), "police", NOW, 4096, timedelta(minutes=5))
    assert isinstance(inbound, InboundEvent)
    src = Source("agency.police.events", 2, 41, 1_700_000_000_000, "police")
    normalized = normalize(inbound, PSEUDO, src, NOW)
    model = NormalizedEvent.model_validate(normalized)
    assert serialize(normalized) == model.model_dump_json(by_alias=True).encode()
    assert model.model_dump(by_alias=True) == normalized
