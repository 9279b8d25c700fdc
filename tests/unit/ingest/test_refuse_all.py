"""A batch ingest could not decide (a bug) is dead-lettered whole, never dropped."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

from services.ingest.handler import refuse_all
from services.ingest.validate import REASONS
from shared.topics import Topics

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _event(topic: str, offset: int, value: object) -> SimpleNamespace:
    headers = [("ce_id", b"x-%d" % offset)]
    return SimpleNamespace(
        message=SimpleNamespace(topic=topic, partition=3, offset=offset, headers=headers),
        value=value,
    )


def test_every_message_of_the_batch_gets_a_dead_letter_record() -> None:
    topics = Topics("t.")
    batch = [
        _event(topics.inbound("douane"), 7, b'{"event_id": "x"}'),
        _event("t.something.else", 8, b"\x00\xff"),
        _event(topics.inbound("marine"), 9, None),
    ]
    out = refuse_all(batch, topics, NOW, "KeyError while deciding the batch")
    assert [label for label, _ in out] == ["douane", "unknown", "marine"]
    for (_, refused), ev in zip(out, batch, strict=True):
        rec = refused.record
        assert refused.reason == rec["reason"] == "internal_error" and rec["reason"] in REASONS
        assert rec["message"] == "KeyError while deciding the batch"
        assert rec["source"]["offset"] == ev.message.offset
        assert base64.b64decode(rec["original_b64"]) == (ev.value or b"")
        assert rec["headers"] == [["ce_id", base64.b64encode(b"x-%d" % ev.message.offset).decode()]]
