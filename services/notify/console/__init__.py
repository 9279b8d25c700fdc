"""The duty officers' web console, served by notify under ``/console`` on its web port.

Why in notify rather than a process of its own: the console needs exactly what
the API has — the cells' token index, the dispatcher's Redis and its
acknowledge/resolve/silence actions, reloaded with the cells file — and one
process less to deploy, secure and scale. Pages are rendered on the server
(Jinja2, :mod:`.views`), with a little JavaScript for the live rows (SSE,
:mod:`.routes`) and the ticking countdowns. French by default, English with
the switch in the header; every string is in ``catalogue.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.notify.api import Auth
    from services.notify.dispatch import Dispatcher


def register(app: Any, dispatcher: Dispatcher, auth: Auth) -> None:
    """Add the console's routes to ``app``'s (aiohttp) web server."""
    from services.notify.console.routes import add_routes
    from services.notify.console.session import ConsoleSettings, Sessions
    from services.notify.console.views import Console

    sessions = Sessions(dispatcher.redis, dispatcher.keys, ConsoleSettings())
    add_routes(app.web.web_app.router, Console(dispatcher, auth, sessions))
