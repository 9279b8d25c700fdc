"""The duty officers' web console, served by notify on its web port (see views)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.notify.api import Auth
    from services.notify.dispatch import Dispatcher


def register(app: Any, dispatcher: Dispatcher, auth: Auth) -> None:
    """Add the console's routes to ``app``'s web server (a no-op until it lands)."""
