"""Decode and validate one inbound message; refusals carry a reason code.

Accepted encodings (one event per Kafka message):

* the v1 JSON event itself (:class:`~shared.models.InboundEvent`);
* a CloudEvents 1.0 *structured* message: a JSON object with ``specversion``
  whose ``data`` is the v1 event;
* a CloudEvents 1.0 *binary* message: ``ce_*`` Kafka headers, the value is
  the v1 event.

CloudEvents are read with the ``cloudevents`` SDK, which checks the required
attributes (``specversion``, ``id``, ``source``, ``type``).

:func:`decode` never raises on bad input: it returns an :class:`InboundEvent`
or a :class:`Rejection` whose ``reason`` is one of :data:`REASONS`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, from_structured
from cloudevents.core.formats.json import JSONFormat
from pydantic import ValidationError

from shared.models import InboundEvent

#: Every reason code a dead-letter record may carry.
REASONS: Final = (
    "too_large",  # the message is larger than VIGIE_MAX_MESSAGE_BYTES
    "not_json",  # empty, not UTF-8 or not JSON
    "not_object",  # JSON, but not an object
    "bad_cloudevent",  # CloudEvents attributes missing or invalid
    "schema",  # the v1 contract is violated (``field`` holds the path)
    "agency_mismatch",  # the event's agency is not the topic's
    "bad_identifier",  # an entity fails its format or check digit
    "future_event",  # occurred_at beyond the clock-skew tolerance
    "unknown_topic",  # not an agency.<agency>.events topic
    "internal_error",  # a bug or a dependency failed after retries
)

_FORMAT: Final = JSONFormat()
Headers = Sequence[tuple[str, bytes]] | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a machine-readable code and a human message.

    The message never quotes the refused value (it may be a clear identifier).
    """

    reason: str
    message: str
    field: str | None = None


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "$"


def _is_binary_ce(headers: Headers) -> bool:
    return bool(headers) and any(k.lower().startswith("ce_") for k, _ in headers or ())


def _cloudevent_data(raw: bytes, headers: Headers, structured: bool) -> Any:
    """The ``data`` of a CloudEvent; raises on a malformed one."""
    msg = KafkaMessage(headers=dict(headers or ()), key=None, value=raw)
    event = from_structured(msg, _FORMAT) if structured else from_binary(msg, _FORMAT)
    data = event.get_data()
    if isinstance(data, bytes | str):
        data = json.loads(data)
    return data


def _check(event: InboundEvent) -> Rejection | None:
    loc = event.location
    if loc is not None and (loc.lat is None) != (loc.lon is None):
        return Rejection("schema", "location: lat and lon go together", "location")
    return None


def decode(
    raw: bytes | None,
    topic_agency: str | None,
    now: datetime,
    max_bytes: int,
    future_tolerance: timedelta,
    headers: Headers = None,
) -> InboundEvent | Rejection:
    """Parse and validate ``raw`` received on ``topic_agency``'s topic."""
    if topic_agency is None:
        return Rejection("unknown_topic", "not an agency.<agency>.events topic")
    if not raw:
        return Rejection("not_json", "empty message")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    data: Any
    if _is_binary_ce(headers):
        try:
            data = _cloudevent_data(raw, headers, structured=False)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return Rejection("not_json", f"CloudEvent data is not JSON: {type(exc).__name__}")
        except Exception as exc:  # the SDK raises its own validation errors
            return Rejection("bad_cloudevent", f"binary CloudEvent: {str(exc)[:200]}")
    elif b'"specversion"' not in raw:
        # The common case, a plain v1 event: parsed and validated in one pass
        # by pydantic's JSON parser (no intermediate dict).
        return _finish(_validate_json(raw), topic_agency, now, future_tolerance)
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return Rejection(
                "not_json", f"not JSON: {type(exc).__name__} at {getattr(exc, 'pos', '?')}"
            )
        if isinstance(data, dict) and "specversion" in data:
            try:
                data = _cloudevent_data(raw, headers, structured=True)
            except Exception as exc:  # the SDK raises its own validation errors
                return Rejection("bad_cloudevent", f"structured CloudEvent: {str(exc)[:200]}")
    if not isinstance(data, dict):
        return Rejection("not_object", f"expected a JSON object, got {type(data).__name__}")
    try:
        event = InboundEvent.model_validate(data)
    except ValidationError as exc:
        return _schema_rejection(exc)
    except RecursionError:
        return Rejection("schema", "nesting too deep", field="$")
    return _finish(event, topic_agency, now, future_tolerance)


def _schema_rejection(exc: ValidationError) -> Rejection:
    err = exc.errors(include_input=False, include_url=False)[0]
    where = _path(tuple(err["loc"]))
    return Rejection("schema", f"{where}: {err['msg']}", field=where)


def _validate_json(raw: bytes) -> InboundEvent | Rejection:
    """Parse and validate a plain v1 event; the same reasons as the two-step path."""
    try:
        return InboundEvent.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        if err["type"] == "json_invalid":
            return Rejection("not_json", f"not JSON: {err['msg']}")
        if err["type"] in ("model_type", "model_attributes_type") and not err["loc"]:
            return Rejection("not_object", "expected a JSON object")
        return _schema_rejection(exc)
    except RecursionError:
        return Rejection("schema", "nesting too deep", field="$")


def _finish(
    event: InboundEvent | Rejection,
    topic_agency: str,
    now: datetime,
    future_tolerance: timedelta,
) -> InboundEvent | Rejection:
    """The checks after the schema: coordinates pair, agency, future events."""
    if isinstance(event, Rejection):
        return event
    bad = _check(event)
    if bad is not None:
        return bad
    if event.agency != topic_agency:
        return Rejection(
            "agency_mismatch", f"agency {event.agency!r} on {topic_agency!r}'s topic", "agency"
        )
    if event.occurred_at > now.astimezone(UTC) + future_tolerance:
        return Rejection("future_event", "occurred_at is in the future", "occurred_at")
    return event
