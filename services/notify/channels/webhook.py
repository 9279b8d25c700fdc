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

from services.notify.cells import Cell, Secrets, WebhookChannel
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.http import HttpPool
from services.notify.channels.registry import register
from services.notify.delivery import DeliveryConfig

__all__ = ["DeliveryError", "WebhookNotifier", "deliver", "payload", "sign"]


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


class WebhookNotifier:
    """POSTs to the channel's URL (else ``VIGIE_NOTIFY_WEBHOOK_URL``), ``{cell}``
    filled in, signed with the cell's secret (else ``VIGIE_WEBHOOK_SECRET``)."""

    def __init__(self, config: DeliveryConfig, secrets: Secrets) -> None:
        self.config, self.secrets = config, secrets
        self._http: HttpPool | None = None

    async def send(self, cell: Cell, channel: WebhookChannel, n: Notification) -> None:
        url = (channel.url or self.config.webhook_url).format(cell=cell.id)
        secret = self.secrets.webhook_secrets.get(cell.id)
        key = secret.encode() if secret else self.config.webhook_secret
        if self._http is None:
            self._http = HttpPool(limit_per_host=32)
        await deliver(self._http, url, n, key, self.config.timeout_s)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


@register("webhook")
def _webhook(config: DeliveryConfig, secrets: Secrets) -> WebhookNotifier:
    return WebhookNotifier(config, secrets)
