"""Dead-letter records keep the original key and headers and fit the topic's cap."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.deadletter import encode, framed_size
from services.ingest.pipeline import Refused, Source
from services.ingest.validate import Rejection

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SRC = Source("agency.douane.events", 1, 42, None, "douane")
REJ = Rejection("too_large", "message of 9000 bytes exceeds the limit")


def refused(raw: bytes, key: bytes | None = b"k-1", headers: list[tuple[str, bytes]] | None = None):
    hdrs = headers if headers is not None else [("ce_id", b"abc"), ("trace", b"\x00\xff")]
    return Refused.of(raw, SRC, REJ, NOW, hdrs, key)


def test_small_record_is_whole_with_key_and_headers() -> None:
    raw = b'{"event_id": "x"}'
    key, value, headers = encode(refused(raw), 1_000_000)
    rec = json.loads(value)
    assert key == b"k-1"
    assert headers == [("ce_id", b"abc"), ("trace", b"\x00\xff")]
    assert base64.b64decode(rec["original_b64"]) == raw
    assert rec["original_size"] == len(raw) and not rec["original_truncated"]
    assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()


def test_big_record_is_truncated_under_the_cap_with_size_and_digest() -> None:
    raw = bytes(range(256)) * 40  # 10 240 bytes, 13 656 in base64
    cap = 4096
    key, value, headers = encode(refused(raw), cap)
    assert framed_size(key, len(value), headers) <= cap
    assert framed_size(key, len(value), headers) > cap - 64  # it uses the room it has
    rec = json.loads(value)
    kept = base64.b64decode(rec["original_b64"])
    assert rec["original_truncated"] is True and raw.startswith(kept) and len(kept) > 2000
    assert rec["original_size"] == len(raw)
    assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert key == b"k-1" and headers == [("ce_id", b"abc"), ("trace", b"\x00\xff")]


def test_huge_headers_drop_the_body_copy_first() -> None:
    headers = [("blob", b"h" * 3000)]
    key, value, out_headers = encode(refused(b"x" * 500, headers=headers), 4096)
    rec = json.loads(value)
    assert out_headers == headers and rec["headers"] == [] and rec["headers_truncated"]
    assert framed_size(key, len(value), out_headers) <= 4096


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=6000),
    key=st.none() | st.binary(max_size=200),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=1500)), max_size=4),
    cap=st.integers(min_value=1024, max_value=8192),
)
def test_any_record_fits_any_cap(
    raw: bytes, key: bytes | None, headers: list[tuple[str, bytes]], cap: int
) -> None:
    out_key, value, out_headers = encode(refused(raw, key, headers), cap)
    assert out_key == key
    assert framed_size(out_key, len(value), out_headers) <= cap
    rec = json.loads(value)
    assert raw.startswith(base64.b64decode(rec["original_b64"]))
    assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()
