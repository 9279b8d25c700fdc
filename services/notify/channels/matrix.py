"""Matrix channel (``matrix-nio``): a message in the cell's room.

Tchap, the French state's messenger, is built on Matrix, so a duty officer
reads it on the phone. The homeserver and the access token come from the
settings and the secrets file; the room from the cells file. An error answer
or a transport error raises :class:`DeliveryError` (retryable).
"""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, AsyncClientConfig, RoomSendError  # type: ignore[import-untyped]

from services.notify.cells import Cell, MatrixChannel, Secrets
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.registry import register
from services.notify.delivery import DeliveryConfig


def content(n: Notification) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": n.text(),
        "format": "org.matrix.custom.html",
        "formatted_body": n.html(),
    }


class MatrixSender:
    """One logged-in client per process, reused for every room."""

    def __init__(
        self,
        homeserver: str,
        access_token: str,
        user_id: str = "@vigie:local",
        timeout: float = 10.0,
    ) -> None:
        self._client = AsyncClient(
            homeserver, user_id, config=AsyncClientConfig(request_timeout=timeout, max_timeouts=1)
        )
        self._client.access_token = access_token

    async def deliver(self, room_id: str, n: Notification) -> None:
        try:
            resp = await self._client.room_send(
                room_id,
                "m.room.message",
                content(n),
                tx_id=n.notification_id,
                ignore_unverified_devices=True,
            )
        except Exception as exc:  # nio raises transport errors of several kinds
            raise DeliveryError(type(exc).__name__) from None
        if isinstance(resp, RoomSendError):
            raise DeliveryError(f"matrix {resp.status_code or 'error'}")

    async def close(self) -> None:
        await self._client.close()


class MatrixNotifier:
    """Posts in the channel's room with the process's one :class:`MatrixSender`."""

    def __init__(self, sender: MatrixSender) -> None:
        self.sender = sender

    async def send(self, cell: Cell, channel: MatrixChannel, n: Notification) -> None:
        await self.sender.deliver(channel.room_id, n)

    async def close(self) -> None:
        await self.sender.close()


@register("matrix")
def _matrix(config: DeliveryConfig, secrets: Secrets) -> MatrixNotifier | None:
    if not (config.matrix_homeserver and secrets.matrix_access_token):
        return None
    return MatrixNotifier(MatrixSender(config.matrix_homeserver, secrets.matrix_access_token))
