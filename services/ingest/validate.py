"""Decode and validate one inbound message; refusals carry a reason code.

:func:`decode` never raises on bad input: it returns an :class:`InboundEvent`
or a :class:`Rejection` whose ``reason`` is one of :data:`REASONS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import ValidationError

from shared.models import InboundEvent

REASONS: Final = (
    "too_large",
    "not_json",
    "not_object",
    "schema",
    "agency_mismatch",
    "bad_identifier",
    "future_event",
    "unknown_topic",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a machine-readable code and a human message."""

    reason: str
    message: str
    field: str | None = None


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "$"


def decode(
    raw: bytes | None,
    topic_agency: str | None,
    now: datetime,
    max_bytes: int,
    future_tolerance: timedelta,
) -> InboundEvent | Rejection:
    """Parse and validate ``raw`` received on ``topic_agency``'s topic."""
    if topic_agency is None:
        return Rejection("unknown_topic", "not an agency.<agency>.events topic")
    if raw is None:
        return Rejection("not_json", "empty message")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection("not_json", f"not JSON: {str(exc)[:120]}")
    if not isinstance(data, dict):
        return Rejection("not_object", f"expected a JSON object, got {type(data).__name__}")
    try:
        event = InboundEvent.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _path(tuple(err["loc"]))
        return Rejection("schema", f"{where}: {err['msg']}", field=where)
    if event.agency != topic_agency:
        return Rejection(
            "agency_mismatch", f"agency {event.agency!r} on {topic_agency!r}'s topic", "agency"
        )
    if event.occurred_at > now.astimezone(UTC) + future_tolerance:
        return Rejection("future_event", "occurred_at is in the future", "occurred_at")
    return event
