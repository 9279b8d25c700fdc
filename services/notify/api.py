"""The cells' HTTP API on the notify worker's web server (same port as /metrics).

Every ``/api/v1`` route but the OpenAPI document needs ``Authorization: Bearer
<token>`` (the scheme in any case); the token identifies the cell (secrets
file). No or an unknown token → 401. A cell sees and acts only on its own
alerts (delivered to it, by routing or escalation): another cell's alert →
404 (its existence is not revealed). Silences belong to the cell that creates
them.

Request bodies are validated by the pydantic models of
:mod:`services.notify.console.resources`, from which the OpenAPI document is
generated. Bad input is a 400 (or 413 for a body over :data:`MAX_BODY`) with
a one-line ``error``, never a 5xx; Redis unavailable → 503. The console
(:mod:`services.notify.console`) is registered on the same web server.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from services.notify.console import backend
from services.notify.console.openapi import document
from services.notify.console.resources import (
    AlertList,
    Error,
    Expired,
    SilenceIn,
    SilenceList,
    SilencePreview,
    SilencePreviewIn,
)
from services.notify.dispatch import Dispatcher
from services.notify.matchers import all_match, parse_matchers

log = logging.getLogger("vigie.notify.api")

#: Request bodies larger than this are refused (413) before being read.
MAX_BODY = 64 * 1024
MAX_TOKEN = 512
#: Path parameters (alert and silence ids) longer than this are not ours (404).
MAX_PATH_ID = 128

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response(Error(error=message).model_dump(), status=status, headers=headers)


def answer(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case)."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


class Auth:
    """Token → cell, against the secrets file's token digests and the live cells."""

    def __init__(self, dispatcher: Dispatcher, token_index: dict[str, str]) -> None:
        self.dispatcher = dispatcher
        self.token_index = token_index

    def cell_of_token(self, token: str | None) -> str | None:
        if token is None:
            return None
        cell = self.token_index.get(hashlib.sha256(token.encode()).hexdigest())
        # a cell that a reloaded cells file removed has no API any more
        return cell if cell is not None and cell in self.dispatcher.cells.by_id else None

    def cell_of(self, request: web.Request) -> str | None:
        return self.cell_of_token(bearer(request.headers.get("Authorization", "")))


def guarded(handler: Handler) -> Handler:
    """Redis unavailable → 503; anything unexpected is logged and answered 500
    without a traceback (the fuzz test makes sure no input gets there)."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except RedisError as exc:
            log.warning("redis unavailable", extra={"error": type(exc).__name__})
            return error(503, "state store unavailable, retry later")
        except Exception:
            log.exception("unexpected error", extra={"path": request.path})
            return error(500, "internal error")

    return run


async def body_of(request: web.Request, model: type[M]) -> M | web.Response:
    """The request body validated by ``model``, or the 400/413 answer to send."""
    if (request.content_length or 0) > MAX_BODY:
        return error(413, f"body over {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return error(413, f"body over {MAX_BODY} bytes")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        return error(400, validation_line(exc))


def validation_line(exc: ValidationError) -> str:
    """The first error of ``exc`` as one line: ``field: reason``."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(x) for x in first["loc"]) or "body"
    msg = first["msg"]
    if first["type"] == "string_pattern_mismatch":
        msg = 'not a label matcher such as rule="x"'
    return f"{where}: {msg}"[:300]


def register(app: faust.App, dispatcher: Dispatcher, token_index: dict[str, str]) -> None:
    """Add the API routes (and the console) to ``app``'s web server.

    ``token_index`` maps sha256(token) → cell id.
    """
    from services.notify import console  # the console's routes use this module

    auth = Auth(dispatcher, token_index)
    router = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver
    doc = document()

    def authed(
        handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
    ) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            cell = auth.cell_of(request)
            if cell is None:
                return error(401, "unauthorized", **{"WWW-Authenticate": 'Bearer realm="vigie"'})
            return await handler(request, cell)

        return guarded(run)

    def path_id(request: web.Request, name: str) -> str | None:
        value = request.match_info[name]
        return value if 0 < len(value) <= MAX_PATH_ID else None

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    async def list_alerts(request: web.Request, cell: str) -> web.StreamResponse:
        return answer(AlertList(cell=cell, alerts=await backend.alerts(dispatcher, cell)))

    async def get_alert(request: web.Request, cell: str) -> web.StreamResponse:
        aid = path_id(request, "alert_id")
        found = await backend.one(dispatcher, cell, aid) if aid else None
        return answer(found) if found else error(404, "no such alert for this cell")

    def action(name: str) -> Callable[[web.Request, str], Awaitable[web.StreamResponse]]:
        async def act(request: web.Request, cell: str) -> web.StreamResponse:
            aid = path_id(request, "alert_id")
            do = dispatcher.acknowledge if name == "ack" else dispatcher.resolve
            inc = await do(cell, aid) if aid else None
            if inc is None:
                return error(404, "no such alert for this cell")
            return answer(backend.incident_out(aid or "", inc))

        return act

    async def list_silences(request: web.Request, cell: str) -> web.StreamResponse:
        active = await dispatcher.silences.active(cell, dispatcher.clock())
        return answer(SilenceList(silences=[backend.silence_out(s) for s in active]))

    async def create_silence(request: web.Request, cell: str) -> web.StreamResponse:
        body = await body_of(request, SilenceIn)
        if isinstance(body, web.Response):
            return body
        made = await create(dispatcher, cell, body)
        return made if isinstance(made, web.Response) else answer(made, 201)

    async def preview(request: web.Request, cell: str) -> web.StreamResponse:
        body = await body_of(request, SilencePreviewIn)
        if isinstance(body, web.Response):
            return body
        return answer(await muted_by(dispatcher, cell, body.matchers))

    async def expire_silence(request: web.Request, cell: str) -> web.StreamResponse:
        sid = path_id(request, "silence_id")
        if not sid or not await expire(dispatcher, cell, sid):
            return error(404, "no such silence for this cell")
        return answer(Expired(expired=sid))

    router.add_get("/api/v1/openapi.json", guarded(openapi))
    router.add_get("/api/v1/alerts", authed(list_alerts))
    router.add_get("/api/v1/alerts/{alert_id}", authed(get_alert))
    router.add_post("/api/v1/alerts/{alert_id}/ack", authed(action("ack")))
    router.add_post("/api/v1/alerts/{alert_id}/resolve", authed(action("resolve")))
    router.add_get("/api/v1/silences", authed(list_silences))
    router.add_post("/api/v1/silences", authed(create_silence))
    router.add_post("/api/v1/silence-preview", authed(preview))
    router.add_delete("/api/v1/silences/{silence_id}", authed(expire_silence))
    console.register(app, dispatcher, auth)


async def create(dispatcher: Dispatcher, cell: str, body: SilenceIn) -> Any:
    """Store the silence (audited); a 400 answer when its period is wrong."""
    now = dispatcher.clock()
    try:
        start, end = body.period(datetime.fromtimestamp(now, UTC))
        silence = await dispatcher.silences.create(
            cell, list(body.matchers), start.timestamp(), end.timestamp(), body.comment, now
        )
    except ValueError as exc:
        return error(400, f"bad silence: {exc}"[:300])
    dispatcher.invalidate_silences(cell)
    await dispatcher.audit(
        {
            "kind": "silence",
            "action": "create",
            "cell": cell,
            "silence_id": silence.id,
            "ends_at": silence.ends_at,
        }
    )
    return backend.silence_out(silence)


async def expire(dispatcher: Dispatcher, cell: str, sid: str) -> bool:
    """Expire the cell's silence (audited); ``False`` when it has none of that id."""
    if not await dispatcher.silences.expire(cell, sid):
        return False
    dispatcher.invalidate_silences(cell)
    await dispatcher.audit({"kind": "silence", "action": "expire", "cell": cell, "silence_id": sid})
    return True


async def muted_by(dispatcher: Dispatcher, cell: str, matchers: list[str]) -> SilencePreview:
    """The cell's open alerts that a silence with ``matchers`` would mute now."""
    parsed = parse_matchers(matchers)
    current = await backend.alerts(dispatcher, cell)
    return SilencePreview(
        alerts=[a for a in current if a.status != "resolved" and all_match(parsed, a.labels)]
    )
