"""The console's pages (server-rendered with Jinja2) under ``/console`` on notify's port.

Every page but sign-in needs a session (:mod:`.session`); without one a GET
goes to the sign-in page and a POST is refused (403). Every POST needs the
session's CSRF token (403 without). A cell only ever sees its own alerts and
silences: another cell's id → 404, as the API. Bad form input → the page again
with a one-line error (400); Redis unavailable → 503 page; never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.notify import api
from services.notify.console import backend
from services.notify.console.mapdata import NAMES_OVERSEAS, OVERSEAS, outlines
from services.notify.console.pending import pending
from services.notify.console.resources import AlertOut, SilenceIn
from services.notify.console.session import (
    LANG_COOKIE,
    PATH,
    Session,
    Sessions,
    csrf_ok,
)
from services.notify.dispatch import Dispatcher

log = logging.getLogger("vigie.notify.console")
HERE = Path(__file__).parent
CATALOGUE: dict[str, dict[str, str]] = {
    k: v
    for k, v in json.loads((HERE / "catalogue.json").read_text(encoding="utf-8")).items()
    if not k.startswith("_")
}
LANGS = ("fr", "en")
MAX_FORM = 16 * 1024

Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def translate(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        entry = CATALOGUE.get(key)
        return entry.get(lang, entry["fr"]) if entry else key

    return t


def lang_of(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "fr")
    return lang if lang in LANGS else "fr"


def map_level(n: int) -> int:
    return 0 if n == 0 else 1 if n == 1 else 2 if n < 5 else 3


class Console:
    """The pages of one notify worker; :meth:`routes` lists them."""

    def __init__(self, dispatcher: Dispatcher, auth: api.Auth, sessions: Sessions) -> None:
        self.d = dispatcher
        self.auth = auth
        self.sessions = sessions
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    # rendering ------------------------------------------------------------
    def html(self, request: web.Request, s: Session | None, name: str, **ctx: Any) -> str:
        lang = lang_of(request)
        return self.env.get_template(name).render(
            lang=lang,
            t=translate(lang),
            base=PATH,
            path=request.path_qs,
            cell=s.cell if s else None,
            csrf=s.csrf if s else "",
            **ctx,
        )

    def render(
        self, request: web.Request, s: Session | None, name: str, status: int = 200, **ctx: Any
    ) -> web.Response:
        ctx.setdefault("title", translate(lang_of(request))("service"))
        return web.Response(
            text=self.html(request, s, name, **ctx),
            status=status,
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    def error(self, request: web.Request, s: Session | None, status: int, key: str) -> web.Response:
        message = translate(lang_of(request))(key)
        return self.render(request, s, "error.html", status, message=message, page="")

    # guards -----------------------------------------------------------------
    def page(self, handler: Page, *, post: bool = False) -> api.Handler:
        """Session required (GET: else to sign-in; POST: else 403), CSRF on POST,
        Redis errors → 503 page."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                s = await self.sessions.of(request)
                if s is None:
                    if post:
                        return self.error(request, None, 403, "error.csrf")
                    raise web.HTTPSeeOther(f"{PATH}/login?next={request.path_qs}")
                if post:
                    if (request.content_length or 0) > MAX_FORM:
                        return self.error(request, s, 413, "error.bad")
                    form = await request.post()
                    given = request.headers.get("X-CSRF-Token") or form.get("csrf")
                    if not csrf_ok(s, given if isinstance(given, str) else None):
                        return self.error(request, s, 403, "error.csrf")
                return await handler(request, s)
            except RedisError as exc:
                log.warning("redis unavailable", extra={"error": type(exc).__name__})
                return self.error(request, None, 503, "error.unavailable")

        return api.guarded(run)

    # pages ------------------------------------------------------------------
    async def alerts(self, request: web.Request, s: Session) -> web.StreamResponse:
        dept = request.query.get("dept", "")[:3] or None
        rows = await self.rows(s.cell, dept)
        return self.render(request, s, "alerts.html", alerts=rows, dept=dept, page="/alerts")

    async def rows(self, cell: str, dept: str | None) -> list[AlertOut]:
        """Routed-but-not-sent alerts (newest, :mod:`.pending`), then those the cell holds."""
        waiting = await pending(self.d, cell, self.d.clock())
        held = await backend.alerts(self.d, cell)
        ids = {a.id for a in held}  # held meanwhile: listed once, as held
        rows = [a for a in waiting if a.id not in ids] + held
        return [a for a in rows if dept is None or a.department == dept]

    def rows_html(self, request: web.Request, s: Session, rows: list[AlertOut]) -> str:
        return self.html(request, s, "_rows.html", alerts=rows)

    async def detail(self, request: web.Request, s: Session) -> web.StreamResponse:
        aid = request.match_info["alert_id"][: api.MAX_PATH_ID]
        found = await backend.one(self.d, s.cell, aid)
        if found is None:
            return self.error(request, s, 404, "error.notfound")
        done = request.query.get("done")
        return self.render(
            request,
            s,
            "detail.html",
            a=found,
            done=done if done in ("ack", "resolve") else None,
            page="/alerts",
        )

    def act(self, name: str) -> Page:
        async def run(request: web.Request, s: Session) -> web.StreamResponse:
            aid = request.match_info["alert_id"][: api.MAX_PATH_ID]
            do = self.d.acknowledge if name == "ack" else self.d.resolve
            if await do(s.cell, aid) is None:
                return self.error(request, s, 404, "error.notfound")
            raise web.HTTPSeeOther(f"{PATH}/alerts/{aid}?done={name}")

        return run

    async def silences(
        self, request: web.Request, s: Session, status: int = 200, **ctx: Any
    ) -> web.StreamResponse:
        active = await self.d.silences.active(s.cell, self.d.clock())
        ctx.setdefault("form", {"matchers": "", "duration": "60", "comment": ""})
        ctx.setdefault("preview", None)
        ctx.setdefault("error", None)
        done = request.query.get("done")
        ctx.setdefault("done", done if done in ("created", "expired") else None)
        return self.render(
            request,
            s,
            "silences.html",
            status,
            silences=[backend.silence_out(x) for x in active],
            page="/silences",
            **ctx,
        )

    async def silence_post(self, request: web.Request, s: Session) -> web.StreamResponse:
        form = await request.post()
        raw = {k: str(form.get(k, ""))[:20000] for k in ("matchers", "duration", "comment")}
        lines = [m.strip() for m in raw["matchers"].splitlines() if m.strip()]
        try:
            minutes = float(raw["duration"] or "0")
            body = SilenceIn(matchers=lines, duration=minutes * 60, comment=raw["comment"])
        except (ValueError, ValidationError) as exc:
            return await self.silences(request, s, 400, form=raw, error=one_line(exc))
        if form.get("action") == "preview":
            muted = await api.muted_by(self.d, s.cell, body.matchers)
            return await self.silences(request, s, form=raw, preview=muted.alerts)
        made = await api.create(self.d, s.cell, body)
        if isinstance(made, web.Response):
            return await self.silences(
                request, s, 400, form=raw, error=json.loads(made.text or "{}").get("error")
            )
        raise web.HTTPSeeOther(f"{PATH}/silences?done=created")

    async def silence_expire(self, request: web.Request, s: Session) -> web.StreamResponse:
        sid = request.match_info["silence_id"][: api.MAX_PATH_ID]
        if not await api.expire(self.d, s.cell, sid):
            return self.error(request, s, 404, "error.notfound")
        raise web.HTTPSeeOther(f"{PATH}/silences?done=expired")

    async def history(self, request: web.Request, s: Session) -> web.StreamResponse:
        every = backend.since(
            await backend.alerts(self.d, s.cell, 5000), backend.HISTORY_S, self.d.clock()
        )
        rule, dept = request.query.get("rule", "")[:128], request.query.get("dept", "")[:3]
        shown = [
            a for a in every if (not rule or a.rule == rule) and (not dept or a.department == dept)
        ]
        return self.render(
            request,
            s,
            "history.html",
            alerts=shown,
            rules=sorted({a.rule for a in every}),
            depts=sorted({a.department for a in every if a.department}),
            rule=rule,
            dept=dept,
            page="/history",
        )

    async def map(self, request: web.Request, s: Session) -> web.StreamResponse:
        counts: dict[str, int] = {}
        for a in await self.rows(s.cell, None):
            if a.status != "resolved" and not a.mutedBy and a.department:
                counts[a.department] = counts.get(a.department, 0) + 1
        shapes = outlines()
        return self.render(
            request,
            s,
            "map.html",
            metro=[o for o in shapes if o.code not in OVERSEAS],
            overseas=[o for o in shapes if o.code in OVERSEAS],
            names=NAMES_OVERSEAS,
            counts=counts,
            level=map_level,
            page="/map",
        )


def one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return api.validation_line(exc)
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
