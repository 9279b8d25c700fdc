"""Webhook channel: Alertmanager webhook v4 payload, signed with HMAC-SHA256.

The ``Vigie-Signature`` header is ``sha256=<hex HMAC of the body>`` with the
receiver's secret; ``Vigie-Notification-Id`` lets a receiver drop a repeat.
:func:`deliver` raises :class:`DeliveryError` on a non-2xx answer (retryable
for 5xx and 429; redirects are not followed), a transport error or a timeout
(retryable). A bad URL is an error that is not retried.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.http import HttpPool

__all__ = ["DeliveryError", "deliver", "payload", "sign"]


def payload(n: Notification) -> dict[str, Any]:
    """The Alertmanager webhook v4 body (plus Vigie's ``kind`` and ``notificationId``)."""
    common = dict(n.alerts[0]["labels"]) if n.alerts else {}
    for a in n.alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    common_ann = dict(n.alerts[0]["annotations"]) if n.alerts else {}
    for a in n.alerts[1:]:
        common_ann = {k: v for k, v in common_ann.items() if a["annotations"].get(k) == v}
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common,
        "commonAnnotations": common_ann,
        "externalURL": "",
        "alerts": n.alerts,
        "kind": n.kind,
        "notificationId": n.notification_id,
        **n.extra,
    }


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.digest(secret, body, "sha256").hex()  # OpenSSL's one-shot HMAC


async def deliver(
    client: HttpPool, url: str, n: Notification, secret: bytes | None, timeout: float
) -> None:
    data = json.dumps(payload(n), separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json", "Vigie-Notification-Id": n.notification_id}
    if secret:
        headers["Vigie-Signature"] = sign(data, secret)
    try:
        status = await client.post(url, data, headers, timeout)
    except (OSError, TimeoutError) as exc:
        raise DeliveryError(f"{type(exc).__name__}") from None
    except ValueError as exc:  # not an http(s) URL
        raise DeliveryError(str(exc), retryable=False) from None
    if status >= 300:
        raise DeliveryError(f"HTTP {status}", retryable=status >= 500 or status == 429)
