"""Console sessions: a cell signs in with its API token and gets a session cookie.

The cookie holds a random session id (256 bits); Redis holds, under the
id's SHA-256 (``{console}:session:<digest>``, with a TTL), the cell and the
session's CSRF token — never the API token. The cookie is ``HttpOnly``,
``SameSite=Strict``, ``Path=/console``, ``Secure`` when the console is served
over TLS (``VIGIE_CONSOLE_URL`` in ``https://`` or ``X-Forwarded-Proto: https``
from the ingress) and expires with the session (``VIGIE_CONSOLE_SESSION_S``,
8 h by default). Signing out deletes the Redis entry. Every state-changing
request must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import Field

from shared.redis import Keys
from shared.settings import Settings

COOKIE = "vigie_session"
LANG_COOKIE = "vigie_lang"
PATH = "/console"


class ConsoleSettings(Settings):
    #: The console's public base URL (``https://vigie.example/console``); notifications
    #: link to ``<console_url>/alerts/<alert_id>``. ``https://`` makes cookies Secure.
    console_url: str | None = None
    #: A session lasts this long after sign-in (seconds).
    console_session_s: Annotated[int, Field(ge=60, le=7 * 86400)] = 8 * 3600


@dataclass(frozen=True)
class Session:
    cell: str
    csrf: str
    sid_digest: str


class Sessions:
    """Sessions in Redis under ``keys``; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: ConsoleSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    def _key(self, digest: str) -> str:
        return self.keys.tagged("console", "session", digest)

    async def open(self, cell: str) -> tuple[str, Session]:
        """A new session for ``cell``: (cookie value, session)."""
        sid = secrets.token_urlsafe(32)
        digest = hashlib.sha256(sid.encode()).hexdigest()
        s = Session(cell, secrets.token_urlsafe(32), digest)
        await self.redis.set(
            self._key(digest),
            json.dumps({"cell": cell, "csrf": s.csrf}),
            ex=self.settings.console_session_s,
        )
        return sid, s

    async def of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        if not sid or len(sid) > 128:
            return None
        digest = hashlib.sha256(sid.encode()).hexdigest()
        raw = await self.redis.get(self._key(digest))
        if raw is None:
            return None
        d = json.loads(raw)
        return Session(str(d["cell"]), str(d["csrf"]), digest)

    def key_of(self, s: Session) -> str:
        """The Redis key of the session (gone once it expires or is signed out)."""
        return self._key(s.sid_digest)

    async def close(self, s: Session) -> None:
        await self.redis.delete(self._key(s.sid_digest))

    def secure(self, request: web.Request) -> bool:
        url = self.settings.console_url or ""
        return (
            url.startswith("https://")
            or request.secure
            or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )

    def set_cookie(self, response: web.StreamResponse, request: web.Request, sid: str) -> None:
        response.set_cookie(
            COOKIE,
            sid,
            max_age=self.settings.console_session_s,
            path=PATH,
            httponly=True,
            samesite="Strict",
            secure=self.secure(request),
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path=PATH)


def csrf_ok(s: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(s.csrf.encode(), (given or "").encode())
