"""Ingest's decision for one message, as a pure function (no Kafka, no Redis).

:func:`process` returns an :class:`Accepted` (the normalised event and its
partition key) or a :class:`Refused` (the dead-letter record). It never raises.
Deduplication, which needs Redis, happens at the edge (:mod:`.app`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.ingest.normalize import BadIdentifier, normalize_entity
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.validate import Rejection, decode
from shared.models import EntityToken, InboundEvent, NormalizedEvent, NormalizedLocation


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    agency: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    event: NormalizedEvent
    key: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    record: dict[str, Any]


def dlq_record(raw: bytes | None, source: Source, rejection: Rejection, now: datetime) -> dict[str, Any]:
    """The dead-letter record: original bytes (base64), source, reason code, message."""
    return {
        "reason": rejection.reason,
        "message": rejection.message,
        "field": rejection.field,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": source.timestamp_ms,
        },
        "original_b64": base64.b64encode(raw or b"").decode(),
        "rejected_at": now.isoformat(),
    }


def normalize(event: InboundEvent, pseudo: Pseudonymizer, source: Source, now: datetime) -> NormalizedEvent:
    """Normalise and pseudonymise; raises :class:`BadIdentifier`."""
    entities = []
    for ent in event.entities:
        canonical = normalize_entity(ent.kind.value, ent.value)
        entities.append(EntityToken(kind=ent.kind, token=pseudo.token(ent.kind.value, canonical)))
    loc = event.location
    location = NormalizedLocation(
        lat=loc.lat if loc else None,
        lon=loc.lon if loc else None,
        insee=loc.insee if loc else None,
        department=loc.department if loc else None,
        site=loc.site if loc else None,
    )
    return NormalizedEvent(
        event_id=event.event_id,
        agency=event.agency,
        type=event.type,
        occurred_at=event.occurred_at,
        reported_at=event.reported_at,
        location=location,
        entities=list(dict.fromkeys(entities)),
        details=event.details,
        handling=event.handling,
        case_ref=event.case_ref,
        contact=event.contact,
        published_ms=source.timestamp_ms,
        ingested_ms=int(now.timestamp() * 1000),
    )


def partition_key(event: NormalizedEvent) -> bytes:
    """Events of one département share a partition; others spread by agency."""
    dept = event.location.department
    return (f"dept:{dept}" if dept else f"agency:{event.agency}").encode()


def process(
    raw: bytes | None,
    source: Source,
    pseudo: Pseudonymizer,
    now: datetime,
    max_bytes: int,
    future_tolerance: timedelta,
) -> Accepted | Refused:
    """Decide what becomes of one inbound message. Never raises."""
    decoded = decode(raw, source.agency, now, max_bytes, future_tolerance)
    if isinstance(decoded, Rejection):
        return Refused(decoded.reason, dlq_record(raw, source, decoded, now))
    try:
        event = normalize(decoded, pseudo, source, now)
    except BadIdentifier as exc:
        rej = Rejection("bad_identifier", str(exc), "entities")
        return Refused(rej.reason, dlq_record(raw, source, rej, now))
    return Accepted(event, partition_key(event))
