"""Property tests: whatever arrives, ingest decides without raising, and every
message ends published or rejected with a known reason (duplicates are the
edge's business, see the integration test)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.pipeline import Accepted, Refused, Source, process
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.validate import REASONS
from tests.unit.ingest.test_pipeline import event

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PSEUDO = Pseudonymizer(b"property-test-key-0123456789abc", "p1")
SRC = Source("agency.police.events", 0, 7, None, "police")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(raw: bytes, headers: list[tuple[str, bytes]] | None = None) -> Accepted | Refused:
    out = process(raw, SRC, PSEUDO, NOW, 64 * 1024, timedelta(minutes=5), headers)
    if isinstance(out, Refused):
        assert out.reason in REASONS and out.reason != "internal_error", out.record
        assert base64.b64decode(out.record["original_b64"]) == raw
        json.dumps(out.record)  # the record is serialisable
    else:
        assert isinstance(out, Accepted)
        # the body is exactly what the contract model writes for itself
        again = out.event.model_dump_json(by_alias=True).encode()
        assert out.body == again
    return out


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    check(json.dumps(value).encode())


@FAST
@given(st.dictionaries(st.sampled_from([*event(), "extra"]), json_values, max_size=6))
def test_arbitrary_json_objects_shaped_like_events(over: dict[str, Any]) -> None:
    check(json.dumps(event(**over)).encode())


FIELDS = [
    "event_id",
    "agency",
    "type",
    "occurred_at",
    "reported_at",
    "location",
    "entities",
    "details",
    "handling",
    "case_ref",
    "contact",
]
corruptions = st.one_of(
    json_values,
    st.text(max_size=300),
    st.just(""),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.lists(
        st.fixed_dictionaries(
            {
                "kind": st.sampled_from(
                    [
                        "person",
                        "phone",
                        "vehicle",
                        "vessel",
                        "container",
                        "organisation",
                        "bank_account",
                        "weapon",
                        "parcel",
                        "nope",
                    ]
                ),
                "value": st.text(max_size=40),
            }
        ),
        max_size=5,
    ),
    st.fixed_dictionaries(
        {
            "lat": st.floats(),
            "lon": st.floats(),
            "insee": st.text(max_size=6),
            "department": st.text(max_size=4),
        }
    ),
)


@FAST
@given(st.sampled_from(FIELDS), corruptions)
def test_valid_event_with_one_field_corrupted(field: str, bad: Any) -> None:
    ev = event()
    ev[field] = bad
    try:
        raw = json.dumps(ev).encode()
    except ValueError:  # NaN is not JSON; send its Python spelling anyway
        raw = json.dumps(ev, allow_nan=True).encode()
    check(raw)


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "x"]
            ),
            st.binary(max_size=30),
        ),
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_arbitrary_binary_cloudevent_headers(headers: list[tuple[str, bytes]], raw: bytes) -> None:
    check(raw, headers)
    check(json.dumps(event()).encode(), headers)
