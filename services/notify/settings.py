"""Notify settings (prefix ``VIGIE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr

from shared.settings import Settings


class NotifySettings(Settings):
    #: Default webhook URL template; ``{cell}`` is replaced by the cell id. A cell's
    #: webhook channel may give its own URL in the cells file.
    notify_webhook_url: str = "http://127.0.0.1:9095/cells/{cell}"
    #: Default HMAC-SHA256 key for ``Vigie-Signature`` when the secrets file has
    #: none for the cell (a secret; none → unsigned).
    webhook_secret: SecretStr | None = None
    #: The routing file (an Alertmanager configuration); default: the shipped one.
    notify_routing_file: Path | None = None
    #: The cells file; default: the shipped one.
    notify_cells_file: Path | None = None
    #: The secrets file (API tokens, webhook keys, SMTP password, Matrix token).
    notify_secrets_file: Path | None = None
    #: Delivery attempts within one flush.
    delivery_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    #: First retry delay (seconds); doubles each time, with full jitter.
    retry_base_s: Annotated[float, Field(gt=0)] = 0.2
    #: Per-request timeout (seconds).
    delivery_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    #: A notification that keeps failing is retried at later flushes for this
    #: long after its first try, then written to vigie.notifications.dlq.
    notify_give_up_s: Annotated[float, Field(ge=0)] = 3600.0
    #: How soon a failed notification is tried again (seconds).
    notify_redeliver_s: Annotated[float, Field(gt=0)] = 5.0
    #: A notification claim (being sent) expires after this (a crashed sender).
    notify_claim_s: Annotated[float, Field(ge=1)] = 30.0
    #: A due group is leased this long by the replica flushing it.
    notify_lease_s: Annotated[float, Field(ge=1)] = 30.0
    #: Concurrent deliveries per receiver (per process).
    notify_per_receiver: Annotated[int, Field(ge=1, le=256)] = 4
    #: At most this many alerts per batch (one Redis round trip per step for the
    #: batch); a batch is what arrived while the previous one was being recorded.
    notify_batch_max: Annotated[int, Field(ge=1, le=10000)] = 256
    #: How often the routing and cells files are checked for a change (seconds).
    notify_reload_s: Annotated[float, Field(gt=0)] = 5.0
    #: How long the notification log remembers a delivery (seconds).
    nflog_ttl_s: Annotated[int, Field(ge=60)] = 7 * 86400
    #: SMTP for the e-mail channel (required when a cell has an e-mail channel).
    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_sender: str = "vigie@localhost"
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str | None = None
    #: Matrix homeserver for the matrix channel (token in the secrets file).
    matrix_homeserver: str | None = None
    #: The console's public base URL (``https://vigie.example/console``): every
    #: notification links each alert to ``<console_url>/alerts/<alert id>``.
    console_url: Annotated[str | None, Field(pattern=r"^https?://\S+$")] = None
