"""IngestHandler on in-memory fakes: outcomes, counters, and the dead-letter failure path."""

from __future__ import annotations

import json

import pytest

from services.ingest.handler import DeadLetterFailed
from tests.unit.ingest.fakes import handler, message, total
from tests.unit.ingest.test_pipeline import enc, event

POLICE = "t.agency.police.events"


async def test_published_rejected_and_duplicates_reconcile() -> None:
    h, _, sender, m = handler()
    batch = [
        message(POLICE, 0, enc(event())),
        message(POLICE, 1, b"{oops", key=b"orig-key", headers=[("trace", b"1")]),
        message(POLICE, 2, enc(event())),  # same event_id, other message: duplicate
    ]
    await h.flush([h.decide(batch)])
    assert len(sender.topics["t.vigie.events.v1"]) == 1
    [(key, value, headers)] = sender.topics["t.vigie.events.dlq"]
    assert key == b"orig-key" and headers == [("trace", b"1")]
    assert json.loads(value)["reason"] == "not_json"
    assert total(m.consumed) == 3
    assert total(m.published) + total(m.rejected) + total(m.duplicates) == 3


async def test_redis_down_dead_letters_with_internal_error_and_the_key() -> None:
    h, dedup, sender, m = handler()
    dedup.fail = True
    await h.flush([h.decide([message(POLICE, 5, enc(event()), key=b"k5")])])
    [(key, value, _)] = sender.topics["t.vigie.events.dlq"]
    assert key == b"k5" and json.loads(value)["reason"] == "internal_error"
    assert total(m.rejected, reason="internal_error") == 1


async def test_a_failed_dead_letter_send_raises_and_counts() -> None:
    h, _, sender, m = handler()
    sender.fail.add("t.vigie.events.dlq")
    decided = h.decide([message(POLICE, 7, b"[1]"), message(POLICE, 8, enc(event()))])
    with pytest.raises(DeadLetterFailed):
        await h.flush([decided])
    assert sender.calls == 1 + 2  # the events once, the dead letters twice (retries=2)
    assert total(m.dead_letter_failed, agency="police") == 1
    assert total(m.rejected) == 0
    assert total(m.consumed) == (
        total(m.published) + total(m.rejected) + total(m.duplicates) + total(m.dead_letter_failed)
    )


async def test_the_cap_comes_from_the_handler() -> None:
    h, _, sender, _ = handler(dlq_max_bytes=2048)
    h.dlq_cap = 1500
    await h.flush([h.decide([message(POLICE, 9, b"x" * 3000)])])
    [(_, value, _)] = sender.topics["t.vigie.events.dlq"]
    rec = json.loads(value)
    assert rec["original_truncated"] and rec["original_size"] == 3000 and len(value) < 1500
