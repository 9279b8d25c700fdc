"""One :class:`Notifier` per channel type, found by the type's name (no ``isinstance`` chain).

A cells file's channel (``{type: webhook}``, ``email``, ``matrix``) is sent by
the notifier registered under its ``type``. :func:`notifiers` builds those the
configuration can reach; a channel whose notifier is missing (no SMTP server,
no Matrix homeserver) fails for good with :class:`DeliveryError` (the
configuration check at start and at reload refuses such cells anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from services.notify.cells import Cell, Secrets
from services.notify.channels.base import DeliveryError, Notification
from services.notify.delivery import DeliveryConfig


class Notifier(Protocol):
    """Sends one notification on one channel of a cell; raises :class:`DeliveryError`."""

    async def send(self, cell: Cell, channel: Any, n: Notification) -> None: ...

    async def close(self) -> None: ...


#: channel type -> (config, secrets) -> its notifier, or None when not configured
Factory = Callable[[DeliveryConfig, Secrets], Notifier | None]
FACTORIES: dict[str, Factory] = {}
_MISSING = {"email": "no SMTP server configured", "matrix": "no Matrix homeserver configured"}


def register(kind: str) -> Callable[[Factory], Factory]:
    """Register the factory of channel type ``kind``."""

    def add(factory: Factory) -> Factory:
        FACTORIES[kind] = factory
        return factory

    return add


class Notifiers:
    """The notifiers of every channel type, by type name."""

    def __init__(self, by_type: dict[str, Notifier]) -> None:
        self.by_type = by_type

    async def send(self, cell: Cell, channel: Any, n: Notification) -> None:
        notifier = self.by_type.get(channel.type)
        if notifier is None:
            why = _MISSING.get(channel.type, f"unknown channel {channel.type!r}")
            raise DeliveryError(why, retryable=False)
        await notifier.send(cell, channel, n)

    async def close(self) -> None:
        for notifier in self.by_type.values():
            await notifier.close()


def notifiers(config: DeliveryConfig, secrets: Secrets) -> Notifiers:
    """The notifiers ``config`` and ``secrets`` can reach (every registered type)."""
    from services.notify.channels import email, matrix, webhook  # noqa: F401  (they register)

    built = {kind: make(config, secrets) for kind, make in FACTORIES.items()}
    return Notifiers({kind: n for kind, n in built.items() if n is not None})
