"""Notify settings (prefix ``VIGIE_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from shared.settings import Settings


class NotifySettings(Settings):
    #: Webhook URL template; ``{cell}`` is replaced by the receiving cell's id.
    notify_webhook_url: str = "http://127.0.0.1:9095/cells/{cell}"
    #: HMAC-SHA256 key for the ``Vigie-Signature`` header (a secret; none → unsigned).
    webhook_secret: SecretStr | None = None
    #: Delivery attempts before the notification goes to the DLQ.
    delivery_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    #: First retry delay (seconds); doubles each time, with full jitter.
    retry_base_s: Annotated[float, Field(gt=0)] = 0.2
    #: Per-request timeout (seconds).
    delivery_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    #: How long the notification log remembers a delivery (seconds).
    nflog_ttl_s: Annotated[int, Field(ge=60)] = 7 * 86400
