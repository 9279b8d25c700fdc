"""The load of ``vigie bench ingest``: inbound messages as agencies send them.

Contract: :func:`make_messages` returns ``(agency, value, headers)`` tuples, a
realistic mix (1-4 entities of every kind drawn from a pool of recurring
identifiers; plain v1 JSON with 10 % CloudEvents, structured and binary; 5 %
invalid, spread over the refusal reasons), deterministic for a seed apart from
a random run tag in the event ids. :func:`produce` sends them to the agency
topics and returns once the broker acknowledged every one; a broker error
propagates.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.topics import AGENCIES, Topics

TYPES = [
    "seizure",
    "intel_share",
    "deal_point",
    "shooting",
    "death_threat",
    "maritime_intel",
    "suspicious_transaction",
    "arrest",
    "corruption_signal",
    "homicide",
]
DEPTS = ["13", "75", "93", "69", "59", "33", "2A", "971", "974", "76", "06", "34"]
VALID_VALUES: dict[str, list[str]] = {
    "phone": [
        f"06 {a:02d} {b:02d} {c:02d} {d:02d}"
        for a, b, c, d in (
            (i % 97, (i * 7) % 100, (i * 13) % 100, (i * 31) % 100) for i in range(400)
        )
    ],
    "bank_account": [
        "FR76 3000 6000 0112 3456 7890 189",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "ES91 2100 0418 4502 0005 1332",
        "BE68 5390 0754 7034",
        "NL91ABNA0417164300",
    ],
    "vehicle": [
        f"{chr(65 + i % 26)}{chr(65 + (i * 3) % 26)}-{i % 1000:03d}-"
        f"{chr(65 + (i * 5) % 26)}{chr(65 + (i * 7) % 26)}"
        for i in range(400)
    ],
    "vessel": ["IMO 9074729", "IMO 9176187", "IMO 9321483", "227006760", "MSC Anna"],
    "container": ["CSQU3054383", "MSKU9070323", "MSCU1234566", "MAEU1234567"],
    "person": [
        f"{f} {s}"
        for f in ("Jean", "Élodie", "Karim", "Sofia", "Lucas", "Inès", "Yanis")
        for s in ("Dupont", "Martin", "Benali", "Moreau", "Garcia", "N'Diaye", "Lefèvre")
    ],
    "organisation": ["Transports Méditerranée SARL", "SCI Les Pins", "Garage du Port"],
    "weapon": ["AK-47 SN 1234", "Glock 17 SN 998877"],
    "parcel": ["LX 123 456 789 FR", "CP 987 654 321 DE"],
}


def _valid_phones() -> list[str]:
    import phonenumbers

    out = []
    for i in range(600):
        raw = f"06 {(i * 7) % 100:02d} {(i * 13) % 100:02d} {(i * 31) % 100:02d} {i % 100:02d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(raw, "FR")):
            out.append(raw)
    return out[:400]


VALID_VALUES["phone"] = _valid_phones()


def make_event(i: int, run: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    agency = AGENCIES[i % len(AGENCIES)]
    kinds = rng.sample(sorted(VALID_VALUES), rng.randint(1, 4))
    loc: dict[str, Any] = {"department": DEPTS[i % len(DEPTS)]}
    if i % 3 == 0:
        loc = {"lat": 43.2 + rng.random() / 10, "lon": 5.3 + rng.random() / 10, "insee": "13055"}
    return {
        "event_id": f"{run}-{i}",
        "agency": agency,
        "type": TYPES[i % len(TYPES)],
        "occurred_at": (now - timedelta(seconds=rng.randint(0, 86400))).isoformat(),
        "location": loc,
        "entities": [{"kind": k, "value": rng.choice(VALID_VALUES[k])} for k in kinds],
        "details": {"drug": "cocaine", "quantity_kg": round(rng.random() * 50, 1)},
        "case_ref": f"{agency.upper()}-{i % 5000}",
        "contact": "cellule renseignement",
    }


def make_messages(n: int, seed: int = 7) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """(agency, value, headers) for ``n`` messages: 5 % invalid, 10 % CloudEvents."""
    rng = random.Random(seed)
    run = secrets.token_hex(4)
    now = datetime.now(UTC)
    out: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
    for i in range(n):
        ev = make_event(i, run, rng, now)
        agency = ev["agency"]
        headers: list[tuple[str, bytes]] = []
        if i % 20 == 19:  # 5 % invalid, several reasons
            bad = (i // 20) % 4
            if bad == 0:
                value = b"{not json"
            elif bad == 1:
                value = json.dumps(dict(ev, type="picnic")).encode()
            elif bad == 2:
                ev["entities"] = [{"kind": "container", "value": "CSQU3054384"}]
                value = json.dumps(ev).encode()
            else:
                value = json.dumps(dict(ev, agency=AGENCIES[(i + 1) % len(AGENCIES)])).encode()
        elif i % 10 == 3:
            value = json.dumps(
                {
                    "specversion": "1.0",
                    "id": ev["event_id"],
                    "source": f"/{agency}",
                    "type": "fr.vigie.event.v1",
                    "datacontenttype": "application/json",
                    "data": ev,
                }
            ).encode()
        elif i % 10 == 7:
            value = json.dumps(ev).encode()
            headers = [
                ("ce_specversion", b"1.0"),
                ("ce_id", ev["event_id"].encode()),
                ("ce_source", f"/{agency}".encode()),
                ("ce_type", b"fr.vigie.event.v1"),
                ("content-type", b"application/json"),
            ]
        else:
            value = json.dumps(ev).encode()
        out.append((agency, value, headers))
    return out


async def produce(
    bootstrap: str, topics: Topics, messages: list[tuple[str, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(topics.inbound(a), v, headers=h or None) for a, v, h in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
