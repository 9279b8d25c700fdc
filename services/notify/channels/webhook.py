"""Webhook channel: Alertmanager webhook v4 payload, signed with HMAC-SHA256.

The ``Vigie-Signature`` header is ``sha256=<hex HMAC of the body>`` with the
receiver's secret. :func:`deliver` raises :class:`DeliveryError` on a
non-2xx answer or a transport error; the caller retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from shared.models import Alert


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def am_alert(alert: Alert) -> dict[str, Any]:
    """One alert in Alertmanager's webhook format."""
    return {
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations.model_dump(),
        "startsAt": alert.starts_at.isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": alert.alert_id,
    }


def payload(receiver: str, group_key: str, alerts: list[Alert],
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Alertmanager webhook v4 body for a group of alerts."""
    common = dict(alerts[0].labels) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [am_alert(a) for a in alerts],
    }
    if extra:
        body.update(extra)
    return body


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def deliver(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                  secret: bytes | None, timeout: float) -> None:
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["Vigie-Signature"] = sign(data, secret)
    try:
        resp = await client.post(url, content=data, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}") from None
    if resp.status_code >= 300:
        raise DeliveryError(f"HTTP {resp.status_code}", retryable=resp.status_code >= 500
                            or resp.status_code == 429)
