"""Ingest's decision for one message, as a pure function (no Kafka, no Redis).

:func:`process` returns an :class:`Accepted` (the normalised event, serialised,
and its partition key) or a :class:`Refused` (the dead-letter record). It never
raises.
Deduplication, which needs Redis, happens at the edge (:mod:`.app`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from pydantic_core import to_json

from services.ingest.normalize import BadIdentifier, department_of_insee, h3_cell, normalize_entity
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.validate import Headers, Rejection, decode
from shared.models import InboundEvent, NormalizedEvent


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
    """An event to publish: ``body`` is its ``vigie.event.v1`` JSON, ``key`` its
    partition key; ``agency`` and ``event_id`` identify it for dedup."""

    body: bytes
    key: bytes
    agency: str
    event_id: str

    @property
    def event(self) -> NormalizedEvent:
        """The body parsed back into the model (tests and tools; not the hot path)."""
        return NormalizedEvent.model_validate_json(self.body)


@dataclass(frozen=True, slots=True)
class Refused:
    """A message refused: its reason code, its dead-letter record, and the
    original Kafka key and headers (the dead-letter record is sent with them)."""

    reason: str
    record: dict[str, Any]
    key: bytes | None = None
    headers: Headers = None

    @classmethod
    def of(
        cls,
        raw: bytes | None,
        source: Source,
        rejection: Rejection,
        now: datetime,
        headers: Headers = None,
        key: bytes | None = None,
    ) -> Refused:
        """The refusal of ``raw`` for ``rejection``, with its :func:`dlq_record`."""
        record = dlq_record(raw, source, rejection, now, headers)
        return cls(rejection.reason, record, key, headers)


def dlq_record(
    raw: bytes | None, source: Source, rejection: Rejection, now: datetime, headers: Headers = None
) -> dict[str, Any]:
    """The dead-letter record (``vigie.dlq.v1``): original bytes and headers (base64),
    the original's size and SHA-256 (so a record truncated to fit the topic's size
    cap, :mod:`.deadletter`, still identifies the whole), source coordinates,
    reason code, field path and a human message."""
    body = raw or b""
    return {
        "schema": "vigie.dlq.v1",
        "reason": rejection.reason,
        "message": rejection.message,
        "field": rejection.field,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp_ms": source.timestamp_ms,
        },
        "original_b64": base64.b64encode(body).decode(),
        "original_size": len(body),
        "original_sha256": hashlib.sha256(body).hexdigest(),
        "original_truncated": False,
        "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in headers or ()],
        "rejected_at": now.isoformat(),
    }


class TokenCache:
    """``(kind, clear value) -> token``, normalising and hashing each value once.

    Identifiers recur (the same targets appear in many events), and the
    normalisers (phonenumbers, schwifty, stdnum) cost tens of microseconds a
    call. Bounded (LRU); the clear values live only in this process's memory,
    like the message being processed. A value that fails its check raises
    :class:`BadIdentifier` every time (failures are not cached).
    """

    def __init__(self, pseudo: Pseudonymizer, size: int = 65536) -> None:
        self.pseudo = pseudo

        @lru_cache(maxsize=size)
        def _token(kind: str, value: str) -> str:
            return pseudo.token(kind, normalize_entity(kind, value))

        self.token = _token


def normalize(
    event: InboundEvent, pseudo: Pseudonymizer | TokenCache, source: Source, now: datetime
) -> dict[str, Any]:
    """The normalised, pseudonymised event as the plain dict :func:`serialize` writes.

    Raises :class:`BadIdentifier` (message names the entity). The département
    is derived from the INSEE code when absent; the H3 cell comes from the
    coordinates. Entities are deduplicated by (kind, token), first one kept.
    The dict has exactly the fields of :class:`~shared.models.NormalizedEvent`
    (in its order, ``schema`` by alias), with values that model accepts as
    they are: building it skips re-validating what the inbound model already
    validated (a unit test checks that the model reads it back unchanged).
    """
    tokenize: Callable[[str, str], str] = (
        pseudo.token
        if isinstance(pseudo, TokenCache)
        else lambda kind, value: pseudo.token(kind, normalize_entity(kind, value))
    )
    tokens: dict[tuple[str, str], None] = {}
    for i, ent in enumerate(event.entities):
        try:
            tokens[(ent.kind, tokenize(ent.kind, ent.value))] = None
        except BadIdentifier as exc:
            raise BadIdentifier(f"entities.{i}.value: {exc}") from None
    loc = event.location
    if loc is None:
        location: dict[str, Any] = dict(_NO_LOCATION)
    else:
        dept = loc.department
        if dept is None and loc.insee is not None:
            dept = department_of_insee(loc.insee)
        location = {
            "lat": loc.lat,
            "lon": loc.lon,
            "insee": loc.insee,
            "department": dept,
            "site": loc.site,
            "h3": h3_cell(loc.lat, loc.lon),
        }
    return {
        "schema": "vigie.event.v1",
        "event_id": event.event_id,
        "agency": event.agency,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "reported_at": event.reported_at,
        "location": location,
        "entities": [{"kind": kind, "token": token} for kind, token in tokens],
        "details": event.details,
        "handling": event.handling,
        "case_ref": event.case_ref,
        "contact": event.contact,
        "published_ms": source.timestamp_ms,
        "ingested_ms": int(now.timestamp() * 1000),
        "source_partition": source.partition,
    }


_NO_LOCATION: dict[str, Any] = dict.fromkeys(("lat", "lon", "insee", "department", "site", "h3"))


def serialize(normalized: dict[str, Any]) -> bytes:
    """The ``vigie.event.v1`` JSON of :func:`normalize`'s dict: the same bytes as
    ``NormalizedEvent.model_validate(normalized).model_dump_json(by_alias=True)``.

    Written by orjson (about ten times faster here than pydantic's serializer
    on an untyped dict), whose output for these values is pydantic's own:
    compact, UTF-8, key order kept, UTC as ``Z``, NaN and infinities as
    ``null``. What orjson refuses (an integer beyond 64 bits in ``details``)
    falls back to pydantic's serializer. Unit and property tests compare both
    with the model's dump.
    """
    try:
        return orjson.dumps(normalized, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return to_json(normalized, inf_nan_mode="null")


def partition_key(normalized: dict[str, Any]) -> bytes:
    """Events of one département share a partition; others spread by agency."""
    dept = normalized["location"]["department"]
    return (f"dept:{dept}" if dept else f"agency:{normalized['agency']}").encode()


def process(
    raw: bytes | None,
    source: Source,
    pseudo: Pseudonymizer | TokenCache,
    now: datetime,
    max_bytes: int,
    future_tolerance: timedelta,
    headers: Headers = None,
) -> Accepted | Refused:
    """Decide what becomes of one inbound message. Never raises: an unexpected
    error (a bug) becomes a :class:`Refused` with reason ``internal_error``."""
    try:
        return _process(raw, source, pseudo, now, max_bytes, future_tolerance, headers)
    except Exception as exc:  # never let one message crash the worker
        rej = Rejection("internal_error", f"{type(exc).__name__} while processing")
        return Refused.of(raw, source, rej, now, headers)


def _process(
    raw: bytes | None,
    source: Source,
    pseudo: Pseudonymizer | TokenCache,
    now: datetime,
    max_bytes: int,
    future_tolerance: timedelta,
    headers: Headers,
) -> Accepted | Refused:
    decoded = decode(raw, source.agency, now, max_bytes, future_tolerance, headers)
    if isinstance(decoded, Rejection):
        return Refused.of(raw, source, decoded, now, headers)
    try:
        normalized = normalize(decoded, pseudo, source, now)
    except BadIdentifier as exc:
        field = str(exc).split(":", 1)[0]
        rej = Rejection("bad_identifier", str(exc), field)
        return Refused.of(raw, source, rej, now, headers)
    return Accepted(
        serialize(normalized), partition_key(normalized), decoded.agency, decoded.event_id
    )
