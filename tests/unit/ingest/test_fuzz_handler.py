"""Property-based fuzz of ingest's whole decision: batches of inbound Kafka messages
(arbitrary bytes, mutated v1 events, structured and binary CloudEvents with
arbitrary ``ce_*`` headers, arbitrary keys and headers) through
:class:`~services.ingest.handler.IngestHandler` on in-memory fakes, with Redis
or the producer failing at random.

Properties: ``decide`` and ``flush`` never raise (except
:class:`~services.ingest.handler.DeadLetterFailed` when the dead-letter topic
itself refuses); every message is published, dead-lettered or dropped as a
duplicate, exactly once; the counters reconcile with what was written; a
dead-letter record keeps the original key and headers, fits the cap and names
a known reason; ``internal_error`` appears only when a failure was injected.

Run size: ``VIGIE_FUZZ_EXAMPLES`` examples per property (default 200; the
figures in docs/ingest.md come from a run with 5000).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.deadletter import framed_size
from services.ingest.handler import DeadLetterFailed
from services.ingest.validate import REASONS
from tests.unit.ingest.fakes import handler, message, total
from tests.unit.ingest.test_pipeline import event
from tests.unit.ingest.test_properties import corruptions, json_values

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
AGENCY_TOPICS = ["t.agency.police.events", "t.agency.douane.events", "t.agency.marine.events"]
TOPICS = st.sampled_from([*AGENCY_TOPICS, "t.agency.nobody.events", "t.other"])
CE_NAMES = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"]
HEADER_NAMES = st.one_of(st.sampled_from([*CE_NAMES, "content-type", "traceparent"]), st.text())
CAP = 2048


def _agency_of(topic: str) -> str:
    return topic.split(".")[2] if topic.count(".") >= 3 else "police"


@st.composite
def values(draw: st.DrawFn, topic: str) -> bytes | None:
    """One inbound value: bytes, a (mutated) event, or a structured CloudEvent."""
    ev = event(agency=_agency_of(topic), event_id=draw(st.sampled_from(["A", "B", "C", "D"])))
    ev["occurred_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for field in draw(st.lists(st.sampled_from([*ev, "extra"]), max_size=2)):
        ev[field] = draw(st.one_of(corruptions, json_values))
    kind = draw(st.sampled_from(["event", "cloudevent", "bytes", "none", "big"]))
    if kind == "bytes":
        return draw(st.binary(max_size=600))
    if kind == "none":
        return None
    if kind == "big":
        ev["details"] = {"blob": "x" * draw(st.integers(3000, 9000))}
    doc: Any = ev
    if kind == "cloudevent":
        doc = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": ev}
        for name in draw(st.lists(st.sampled_from(["id", "source", "type", "specversion"]))):
            doc[name] = draw(json_values)
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def messages(draw: st.DrawFn) -> list[Any]:
    out = []
    for offset in range(draw(st.integers(1, 12))):
        topic = draw(TOPICS)
        headers = draw(
            st.none()
            | st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=60)), max_size=6)
            | st.just([(n, b"1.0" if n == "ce_specversion" else b"x") for n in CE_NAMES[:4]])
        )
        key = draw(st.none() | st.binary(max_size=40))
        out.append(message(topic, offset, draw(values(topic)), key, headers, offset % 3))
    return out


def _check_dead_letter(record: tuple[Any, bytes, Any], by_offset: dict[int, Any]) -> str:
    key, value, headers = record
    rec = json.loads(value)
    msg = by_offset[rec["source"]["offset"]]
    assert rec["reason"] in REASONS
    assert key == msg.message.key
    assert headers == (list(msg.message.headers) or None if msg.message.headers else None)
    assert framed_size(key, len(value), headers) <= CAP
    original = msg.value or b""
    assert rec["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert original.startswith(base64.b64decode(rec["original_b64"]))
    return str(rec["reason"])


@FUZZ
@given(
    batches=st.lists(messages(), min_size=1, max_size=3),
    redis_down=st.booleans(),
    publish_down=st.booleans(),
    dlq_down=st.booleans(),
)
async def test_every_message_is_published_dead_lettered_or_a_duplicate(
    batches: list[list[Any]], redis_down: bool, publish_down: bool, dlq_down: bool
) -> None:
    h, dedup, sender, m = handler(dlq_max_bytes=CAP, retries=1)  # no backoff sleeps
    dedup.fail = redis_down
    if publish_down:
        sender.fail.add("t.vigie.events.v1")
    if dlq_down:
        sender.fail.add("t.vigie.events.dlq")
    flat = [msg for batch in batches for msg in batch]
    for i, msg in enumerate(flat):  # unique offsets across the batches
        msg.message.offset = i
    decided = [h.decide(batch) for batch in batches]  # never raises
    try:
        await h.flush(decided)
    except DeadLetterFailed:
        assert dlq_down
    published = sender.topics.get("t.vigie.events.v1", [])
    dead = sender.topics.get("t.vigie.events.dlq", [])
    n = len(flat)
    dups, failed = total(m.duplicates), total(m.dead_letter_failed)
    assert total(m.consumed) == n
    assert total(m.published) == len(published)
    assert total(m.rejected) == len(dead)
    assert len(published) + len(dead) + dups + failed == n  # each message once
    by_offset = {msg.message.offset: msg for msg in flat}
    reasons = [_check_dead_letter(r, by_offset) for r in dead]
    if not (redis_down or publish_down):
        assert "internal_error" not in reasons  # a bug otherwise
    assert not failed or dlq_down


@pytest.mark.parametrize("seed", range(3))
async def test_a_bug_in_the_decision_dead_letters_the_batch(seed: int) -> None:
    """``process`` raising (a bug) still dead-letters every message of the batch."""
    h, _, sender, m = handler()
    h.pseudo = None  # type: ignore[assignment] - any use raises
    batch = [message(AGENCY_TOPICS[0], i, json.dumps(event()).encode()) for i in range(seed + 1)]
    await h.flush([h.decide(batch)])
    dead = sender.topics["t.vigie.events.dlq"]
    assert len(dead) == seed + 1 and total(m.rejected, reason="internal_error") == seed + 1
