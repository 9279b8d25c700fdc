"""How notify reaches channels and how hard it tries (built from the settings by ``app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the channels import this module
    from services.notify.channels.email import SmtpConfig


@dataclass(frozen=True)
class DeliveryConfig:
    """How channels are reached and how hard to try."""

    webhook_url: str = "http://127.0.0.1:9095/cells/{cell}"
    webhook_secret: bytes | None = None
    attempts: int = 4
    retry_base_s: float = 0.2
    timeout_s: float = 5.0
    #: Keep retrying a notification at later flushes until this long after its first try.
    give_up_s: float = 3600.0
    #: How soon a failed or busy notification is tried again.
    redeliver_s: float = 5.0
    #: A claim (notification being sent) expires after this long (crashed sender).
    claim_s: float = 30.0
    #: A due group is leased for this long by the replica flushing it.
    lease_s: float = 30.0
    #: Per-receiver concurrent deliveries (per process).
    per_receiver: int = 4
    #: Flush batches in flight at once (per process).
    batches: int = 16
    nflog_ttl_s: int = 7 * 86400
    smtp: SmtpConfig | None = None
    matrix_homeserver: str | None = None
    #: The console's base URL (``VIGIE_CONSOLE_URL``): each message links its alerts there.
    console_url: str | None = None

    @property
    def claim_ttl(self) -> int:
        """A claim's expiry in whole seconds (at least one)."""
        return int(self.claim_s) or 1

    def keep_s(self, repeat_s: float) -> int:
        """How long Redis keeps a sent mark: its repeat interval, at least a day."""
        return int(max(repeat_s, 86400.0, self.give_up_s))
