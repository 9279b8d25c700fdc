"""A dead-letter record that a real broker accepts: under the topic's size cap.

:func:`encode` turns a :class:`~.pipeline.Refused` into the Kafka record sent
to ``vigie.events.dlq``: the original message's **key** as the record key, its
**headers** as the record's headers, and the ``vigie.dlq.v1`` JSON as the value.

A Kafka broker refuses a record batch larger than the topic's
``max.message.bytes`` (``RecordTooLargeException``), and the JSON copies the
original (base64, 4/3 of its size) and its headers: a message close to the
inbound cap would make a dead-letter record over the cap. So when the whole
record does not fit in ``cap`` bytes (batch and record framing counted), the
copy of the original is truncated to what fits, ``original_truncated`` is
set, and ``original_size`` and ``original_sha256`` (always present) still
describe the whole message. If even an empty copy does not fit (huge
headers), the JSON's copy of the headers is dropped (``headers_truncated``),
then, last, the Kafka headers themselves. Never raises.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from services.ingest.pipeline import Refused
from services.ingest.validate import Headers
from shared.kafka import Record

#: Record batch header (v2) plus one record's framing, worst-case varints.
_FRAMING = 61 + 5 + 1 + 10 + 5 + 5 + 5 + 5
#: Per header: two length varints.
_PER_HEADER = 10


def framed_size(key: bytes | None, value_len: int, headers: Headers) -> int:
    """An upper bound of the size a one-record batch takes on the broker."""
    size = _FRAMING + len(key or b"") + value_len
    for name, val in headers or ():
        size += _PER_HEADER + len(name.encode()) + len(val or b"")
    return size


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def encode(refused: Refused, cap: int) -> Record:
    """The Kafka record ``(key, value, headers)`` of ``refused``, at most ``cap``
    bytes on the broker whenever the original key alone leaves room for it."""
    key, headers = refused.key, list(refused.headers or ())
    value = _dump(refused.record)
    if framed_size(key, len(value), headers) <= cap:
        return key, value, headers or None
    slim = dict(refused.record, original_b64="", original_truncated=True)
    for step in ("as is", "drop body headers", "drop kafka headers"):
        if step == "drop body headers":
            slim.update(headers=[], headers_truncated=True)
        elif step == "drop kafka headers":
            headers = []
        room = cap - framed_size(key, len(_dump(slim)), headers)
        if room >= 0:
            break
    keep = max(0, room) // 4 * 3  # base64: 4 characters per 3 bytes
    original = base64.b64decode(refused.record["original_b64"])[:keep]
    slim["original_b64"] = base64.b64encode(original).decode()
    return key, _dump(slim), headers or None
