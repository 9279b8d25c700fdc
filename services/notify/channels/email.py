"""E-mail channel over SMTP (``aiosmtplib``): a plain-text and an HTML part.

STARTTLS is used when ``starttls`` is true (the server must offer it);
implicit TLS with ``use_tls``. SMTP errors and transport errors raise
:class:`DeliveryError` (a 5xx answer is not retryable, anything else is).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from services.notify.cells import Cell, EmailChannel, Secrets
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.registry import register
from services.notify.delivery import DeliveryConfig


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "vigie@localhost"
    starttls: bool = False
    use_tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


def message(n: Notification, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = n.subject()
    msg["Message-ID"] = make_msgid(idstring=n.notification_id[:32], domain="vigie")
    msg["X-Vigie-Notification-Id"] = n.notification_id
    msg.set_content(n.text())
    msg.add_alternative(n.html(), subtype="html")
    return msg


async def deliver(cfg: SmtpConfig, n: Notification, to: list[str]) -> None:
    try:
        await aiosmtplib.send(
            message(n, cfg.sender, to),
            hostname=cfg.host,
            port=cfg.port,
            start_tls=cfg.starttls,
            use_tls=cfg.use_tls,
            username=cfg.username,
            password=cfg.password,
            timeout=cfg.timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.code}", retryable=exc.code < 500) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(type(exc).__name__) from None


class EmailNotifier:
    """Mails the channel's addresses through the configured SMTP server."""

    def __init__(self, smtp: SmtpConfig) -> None:
        self.smtp = smtp

    async def send(self, cell: Cell, channel: EmailChannel, n: Notification) -> None:
        await deliver(self.smtp, n, channel.to)

    async def close(self) -> None:
        """Nothing to close: one SMTP connection per message."""


@register("email")
def _email(config: DeliveryConfig, secrets: Secrets) -> EmailNotifier | None:
    return EmailNotifier(config.smtp) if config.smtp is not None else None
