"""Webhook channel: Alertmanager webhook v4 payload, signed with HMAC-SHA256, POSTed with aiohttp.

The ``Vigie-Signature`` header is ``sha256=<hex HMAC of the body>`` with the
receiver's secret; ``Vigie-Notification-Id`` lets a receiver drop a repeat.
One :class:`aiohttp.ClientSession` per process: keep-alive connections, at
most ``LIMIT_PER_HOST`` to one origin at once, TLS with certificate and host
name checks (the system's trust store), user info in the URL sent as Basic
auth. **Redirects are not followed**: a signed alert is never re-sent to
another address; a ``3xx`` answer is a failure that is not retried.

:func:`deliver` raises :class:`DeliveryError` on a non-2xx answer (retryable
for 5xx and 429), a transport error or a timeout (retryable); a URL that is
not ``http(s)://`` fails for good (the URL is not repeated in the error: it
may hold credentials).
"""

from __future__ import annotations

import hmac
import json
import ssl
from typing import Any

import aiohttp
from yarl import URL

from services.notify.cells import Cell, Secrets, WebhookChannel
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.registry import register
from services.notify.delivery import DeliveryConfig

__all__ = ["LIMIT_PER_HOST", "DeliveryError", "WebhookNotifier", "deliver", "payload", "sign"]

#: Connections to one origin (scheme, host, port) at once, per process.
LIMIT_PER_HOST = 32


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
        "externalURL": n.console_url or "",
        "alerts": n.alerts,
        "kind": n.kind,
        "notificationId": n.notification_id,
        **n.extra,
    }


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.digest(secret, body, "sha256").hex()  # OpenSSL's one-shot HMAC


def session(timeout: float, tls: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """The client webhooks are POSTed with (call it in the running event loop);
    ``tls``: the trust settings (default: the system's, host names checked)."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=LIMIT_PER_HOST, ssl=tls or ssl.create_default_context()
    )
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


_URLS: dict[str, URL] = {}


def _target(url: str) -> URL:
    """``url`` parsed (once); :class:`DeliveryError` if not an http(s) URL."""
    hit = _URLS.get(url)
    if hit is None:
        try:
            hit = URL(url)
        except (ValueError, TypeError):
            hit = URL()
        if hit.scheme not in ("http", "https") or not hit.host:
            raise DeliveryError("not an http(s) URL", retryable=False)
        if len(_URLS) < 4096:
            _URLS[url] = hit
    return hit


async def deliver(
    client: aiohttp.ClientSession, url: str, n: Notification, secret: bytes | None
) -> None:
    """POST ``n`` to ``url``, signed with ``secret``; see the module for errors."""
    target = _target(url)
    data = json.dumps(payload(n), separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json", "Vigie-Notification-Id": n.notification_id}
    if secret:
        headers["Vigie-Signature"] = sign(data, secret)
    try:
        async with client.post(target, data=data, headers=headers, allow_redirects=False) as answer:
            await answer.read()  # the whole answer: the connection can be reused
            status = answer.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise DeliveryError(type(exc).__name__) from None
    if status >= 300:
        raise DeliveryError(f"HTTP {status}", retryable=status >= 500 or status == 429)


class WebhookNotifier:
    """POSTs to the channel's URL (else ``VIGIE_NOTIFY_WEBHOOK_URL``), ``{cell}``
    filled in, signed with the cell's secret (else ``VIGIE_WEBHOOK_SECRET``)."""

    def __init__(self, config: DeliveryConfig, secrets: Secrets) -> None:
        self.config, self.secrets = config, secrets
        self._client: aiohttp.ClientSession | None = None

    async def send(self, cell: Cell, channel: WebhookChannel, n: Notification) -> None:
        url = (channel.url or self.config.webhook_url).format(cell=cell.id)
        secret = self.secrets.webhook_secrets.get(cell.id)
        key = secret.encode() if secret else self.config.webhook_secret
        if self._client is None:
            self._client = session(self.config.timeout_s)
        await deliver(self._client, url, n, key)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


@register("webhook")
def _webhook(config: DeliveryConfig, secrets: Secrets) -> WebhookNotifier:
    return WebhookNotifier(config, secrets)
