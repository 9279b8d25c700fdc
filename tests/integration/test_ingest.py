"""Ingest on the real broker and Redis: one worker, a mixed batch from all eight agencies.

Exact counts on each output topic, the metrics invariant (consumed = published
+ rejected + duplicates), equal tokens across agencies, and no clear
identifier of the valid input in vigie.events.v1, in Redis or in the log.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from shared.topics import AGENCIES, Topics
from tests.kafkautil import consume_all, produce, wait_services_caught_up
from vigie.bench.ingest import scrape, start_ingest

NOW = datetime.now(UTC)
PHONES = ["06 12 34 56 78", "+33 7 81 23 45 67", "+34 612 345 678", "+44 20 7946 0958"]
IBANS = ["FR76 3000 6000 0112 3456 7890 189", "DE89 3704 0044 0532 0130 00"]
PLATES = ["AB-123-CD", "GH-456-JK"]
PEOPLE = ["Élodie Dupont", "Karim Benali"]
VESSELS = ["IMO 9074729"]
CONTAINERS = ["CSQU3054383", "MSKU9070323"]
#: What must never appear outside the dead-letter topic (normalised forms too).
CLEAR = [
    "0612345678",
    "+33612345678",
    "781234567",
    "+34612345678",
    "7946",
    "30006000",
    "FR7630006000011234567890189",
    "DE89370400440532013000",
    "AB123CD",
    "AB-123-CD",
    "GH456JK",
    "Dupont",
    "dupont",
    "Benali",
    "benali",
    "9074729",
    "CSQU3054383",
    "MSKU9070323",
]


def event(agency: str, n: int, **over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": f"{agency[:3].upper()}-{n}",
        "agency": agency,
        "type": ["seizure", "intel_share", "shooting"][n % 3],
        "occurred_at": (NOW - timedelta(hours=n)).isoformat(),
        "location": {"lat": 43.2965, "lon": 5.3698, "insee": "13055"}
        if n % 2
        else {"department": "2A"},
        "entities": [
            {"kind": "phone", "value": PHONES[n % len(PHONES)]},
            {"kind": "bank_account", "value": IBANS[n % len(IBANS)]},
            {"kind": "vehicle", "value": PLATES[n % len(PLATES)]},
            {"kind": "person", "value": PEOPLE[n % len(PEOPLE)]},
            {"kind": "vessel", "value": VESSELS[0]},
            {"kind": "container", "value": CONTAINERS[n % len(CONTAINERS)]},
        ],
        "case_ref": f"{agency}-case-{n}",
        "contact": f"cellule {agency}",
    }
    ev.update(over)
    return ev


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


async def test_mixed_batch_from_all_agencies(
    stack: LocalStack,
    tmp_path: Path,
    topic_prefix: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,
    redis_url: str,
) -> None:
    topics = Topics(topic_prefix)
    await ensure_topics(stack.bootstrap, topics.all(), 2)
    key_file = tmp_path / "pseudo.key"
    key_file.write_text("integration-test-key-" + "x" * 24)
    proc = start_ingest(
        stack,
        tmp_path,
        topic_prefix,
        redis_prefix,
        partitions=2,
        VIGIE_PSEUDO_KEY_FILE=str(key_file),
        VIGIE_REDIS_URL=redis_url,  # the test's Redis: a single one, or a cluster
        VIGIE_PSEUDO_KEY_ID="it1",
        VIGIE_MAX_MESSAGE_BYTES="4096",
    )
    try:
        valid = 0
        for agency in AGENCIES:  # three valid events each, plain JSON
            await produce(
                stack.bootstrap, topics.inbound(agency), [enc(event(agency, n)) for n in range(3)]
            )
            valid += 3
        # CloudEvents: structured (douane) and binary (marine)
        ce = {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/douane/delta",
            "type": "fr.vigie.event.v1",
            "datacontenttype": "application/json",
            "data": event("douane", 10),
        }
        await produce(stack.bootstrap, topics.inbound("douane"), [enc(ce)])
        await produce(
            stack.bootstrap,
            topics.inbound("marine"),
            [enc(event("marine", 11))],
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"m-11"),
                ("ce_source", b"/marine/cross"),
                ("ce_type", b"fr.vigie.event.v1"),
                ("content-type", b"application/json"),
            ],
        )
        valid += 2
        # duplicates: re-sent events (new messages, same agency and event_id)
        dups = [
            ("police", event("police", 0)),
            ("ofast", event("ofast", 2)),
            ("douane", event("douane", 10)),
            ("justice", event("justice", 1)),
        ]
        for agency, ev in dups:
            await produce(stack.bootstrap, topics.inbound(agency), [enc(ev)])
        bad = {
            "not_json": ("sgmer", b"{oops"),
            "not_object": ("sgmer", b"[1,2,3]"),
            "schema": ("gendarmerie", enc(event("gendarmerie", 20, type="picnic"))),
            "agency_mismatch": ("diplomatie", enc(event("police", 21))),
            "bad_identifier": (
                "douane",
                enc(
                    event(
                        "douane",
                        22,
                        entities=[{"kind": "bank_account", "value": "DE89370400440532013001"}],
                    )
                ),
            ),
            "future_event": (
                "justice",
                enc(event("justice", 23, occurred_at=(NOW + timedelta(hours=2)).isoformat())),
            ),
            "too_large": ("marine", enc(event("marine", 24, details={"blob": "x" * 5000}))),
            "bad_cloudevent": (
                "police",
                enc({"specversion": "1.0", "id": "x", "data": event("police", 25)}),
            ),
        }
        for agency, raw in bad.values():
            await produce(stack.bootstrap, topics.inbound(agency), [raw])

        total = valid + len(dups) + len(bad)
        await wait_services_caught_up(stack.bootstrap, topics, ["ingest"])  # all handled
        published = await consume_all(stack.bootstrap, topics.events, expect=valid)
        dead = await consume_all(stack.bootstrap, topics.events_dlq, expect=len(bad))
        metrics = scrape(proc.port)
    finally:
        code = proc.stop()
    assert code == 0, proc.tail(20)

    # exact counts on each output topic
    assert len(published) == valid
    assert len(dead) == len(bad)
    events = [json.loads(r.value) for r in published]
    assert len({(e["agency"], e["event_id"]) for e in events}) == valid
    expected = Counter({a: 3 for a in AGENCIES})
    expected.update(["douane", "marine"])
    assert Counter(e["agency"] for e in events) == expected

    # DLQ: reason, field, source coordinates and the original bytes
    records = [json.loads(r.value) for r in dead]
    assert sorted(r["reason"] for r in records) == sorted(bad)
    for rec in records:
        agency, raw = bad[rec["reason"]]
        assert base64.b64decode(rec["original_b64"]) == raw
        assert rec["source"]["topic"] == topics.inbound(agency)
        assert isinstance(rec["source"]["offset"], int) and rec["message"]
    by_reason = {r["reason"]: r for r in records}
    assert by_reason["schema"]["field"] == "type"
    assert by_reason["bad_identifier"]["field"] == "entities.0.value"

    # metrics: consumed = published + rejected + duplicates, and each is exact
    assert metrics["vigie_ingest_consumed_total"] == total
    assert metrics["vigie_ingest_published_total"] == valid
    assert metrics["vigie_ingest_rejected_total"] == len(bad)
    assert metrics["vigie_ingest_duplicates_total"] == len(dups)
    assert metrics["vigie_ingest_processing_seconds_count"] == total

    # normalised: départements (also derived from INSEE), H3, keyed tokens
    by_id = {(e["agency"], e["event_id"]): e for e in events}
    odd, even = by_id[("police", "POL-1")], by_id[("police", "POL-0")]
    assert odd["location"]["department"] == "13" and odd["location"]["h3"]
    assert even["location"]["department"] == "2A"
    assert all(t["token"].startswith("it1:") for e in events for t in e["entities"])
    assert {r.key for r in published} >= {b"dept:13", b"dept:2A"}
    # the same identifier from two agencies gives the same token
    tokens = {
        e["agency"]: [t["token"] for t in e["entities"]]
        for e in events
        if e["event_id"].endswith("-1")
    }
    assert tokens["police"] == tokens["gendarmerie"] == tokens["sgmer"]

    # no clear identifier of the valid input outside the DLQ
    blob = b"\n".join(r.value for r in published).decode()
    redis_dump = []
    async for key in redis_client.scan_iter(match=f"{redis_prefix}*", count=1000):
        redis_dump.append(key.decode())
        kind = await redis_client.type(key)
        if kind == b"string":
            value = await redis_client.get(key) or b""
            redis_dump.append(value.decode() if isinstance(value, bytes) else value)
    assert len(redis_dump) == 2 * (valid)  # one dedup key (and its value) per event
    log_text = (tmp_path / "ingest.log").read_text(errors="replace")
    assert '"rejected"' in log_text  # the log does say what happened
    for clear in CLEAR:
        assert clear not in blob, clear
        assert not any(clear in item for item in redis_dump), clear
        assert clear not in log_text, clear
