"""Sign-in, sign-out, the language switch, the live stream, and the route table.

Live alerts are pushed with Server-Sent Events (``GET /console/alerts/stream``):
the server looks at the cell's held-alerts index (its size and newest score,
two commands in one round trip) every :data:`WATCH_S`, and at the states of
the listed alerts every :data:`REFRESH_S`; when anything changed it sends the
re-rendered rows as one ``rows`` event. The page does not poll. A new alert is
on the page within WATCH_S + one render of notify recording it. The stream
ends when the session does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets

from aiohttp import web
from redis.exceptions import RedisError

from services.notify import api
from services.notify.console.assets import dsfr_dist
from services.notify.console.pending import firing_key
from services.notify.console.session import COOKIE, LANG_COOKIE, PATH, Session, Sessions
from services.notify.console.views import HERE, LANGS, MAX_FORM, Console

WATCH_S = 0.25
REFRESH_S = 5.0
LOGIN_CSRF = "vigie_login_csrf"


def safe_next(value: str) -> str:
    """Only a console path (no open redirect)."""
    return value if value.startswith(PATH + "/") and "//" not in value[1:] else f"{PATH}/alerts"


class Entry:
    """Sign-in/out, language and the SSE stream of one :class:`Console`."""

    def __init__(self, console: Console) -> None:
        self.c = console

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if await self.c.sessions.of(request) is not None:
            raise web.HTTPSeeOther(safe_next(request.query.get("next", "")))
        token = secrets.token_urlsafe(24)
        resp = self.c.render(
            request,
            None,
            "login.html",
            login_csrf=token,
            next=safe_next(request.query.get("next", "")),
            error=None,
            needed="next" in request.query,
            page="",
        )
        resp.set_cookie(
            LOGIN_CSRF,
            token,
            path=PATH,
            httponly=True,
            samesite="Strict",
            secure=self.c.sessions.secure(request),
            max_age=3600,
        )
        return resp

    async def login(self, request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_FORM:
            return self.c.error(request, None, 413, "error.bad")
        form = await request.post()
        given, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF, "")
        if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
            return self.c.error(request, None, 403, "error.csrf")
        cell = self.c.auth.cell_of_token(str(form.get("token", "")).strip()[: api.MAX_TOKEN])
        if cell is None:
            t = self.c.render(
                request,
                None,
                "login.html",
                401,
                login_csrf=expected,
                next=safe_next(str(form.get("next", ""))),
                error=translate_bad(request, self.c),
                needed=False,
                page="",
            )
            return t
        sid, _ = await self.c.sessions.open(cell)
        resp = web.HTTPSeeOther(safe_next(str(form.get("next", ""))))
        self.c.sessions.set_cookie(resp, request, sid)
        resp.del_cookie(LOGIN_CSRF, path=PATH)
        return resp

    async def logout(self, request: web.Request, s: Session) -> web.StreamResponse:
        await self.c.sessions.close(s)
        resp = web.HTTPSeeOther(f"{PATH}/login")
        self.c.sessions.clear_cookie(resp)
        return resp

    async def lang(self, request: web.Request) -> web.StreamResponse:
        lang = request.match_info["lang"]
        resp = web.HTTPSeeOther(safe_next(request.query.get("next", "")))
        if lang in LANGS:
            resp.set_cookie(
                LANG_COOKIE, lang, path=PATH, samesite="Strict", max_age=365 * 86400, httponly=True
            )
        return resp

    async def stream(self, request: web.Request, s: Session) -> web.StreamResponse:
        dept = request.query.get("dept", "")[:3] or None
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        try:
            await resp.write(b"retry: 1000\n\n")
            await self._push(request, resp, s, dept)
        except ConnectionError:  # the page went away
            pass
        return resp

    async def _push(
        self, request: web.Request, resp: web.StreamResponse, s: Session, dept: str | None
    ) -> None:
        """Send the rows whenever they change, until the page or the session goes.
        Redis errors: an ``unavailable`` event, then the next look a second later."""
        index = self.c.d.keys.tagged(f"c:{s.cell}", "alerts")
        loop = asyncio.get_running_loop()
        seen: object = None
        sent, refresh_at = "", 0.0
        while request.transport is not None and not request.transport.is_closing():
            try:
                async with self.c.d.redis.pipeline(transaction=False) as p:
                    p.zcard(index)
                    p.zrevrange(index, 0, 0, withscores=True)
                    p.exists(self.c.sessions.key_of(s))
                    p.hlen(firing_key(self.c.d))  # recorded, maybe not sent yet
                    size, top, alive, firing = await p.execute()
                if not alive:
                    await resp.write(b"event: signedout\ndata: {}\n\n")
                    return
                if (size, top, firing) != seen or loop.time() >= refresh_at:
                    seen, refresh_at = (size, top, firing), loop.time() + REFRESH_S
                    html = self.c.rows_html(request, s, await self.c.rows(s.cell, dept))
                    digest = hashlib.sha256(html.encode()).hexdigest()
                    if digest != sent:
                        sent = digest
                        data = json.dumps({"html": html})
                        await resp.write(f"event: rows\ndata: {data}\n\n".encode())
            except RedisError:
                await resp.write(b"event: unavailable\ndata: {}\n\n")
                await asyncio.sleep(1.0)
            await asyncio.sleep(WATCH_S)


def translate_bad(request: web.Request, console: Console) -> str:
    from services.notify.console.views import lang_of, translate

    return translate(lang_of(request))("signin.bad")


def add_routes(router: web.UrlDispatcher, console: Console) -> None:
    e, page = Entry(console), console.page
    router.add_get(PATH, _to_alerts)
    router.add_get(f"{PATH}/", _to_alerts)
    router.add_get(f"{PATH}/login", api.guarded(e.login_form))
    router.add_post(f"{PATH}/login", api.guarded(e.login))
    router.add_post(f"{PATH}/logout", page(e.logout, post=True))
    router.add_get(f"{PATH}/lang/{{lang}}", api.guarded(e.lang))
    router.add_get(f"{PATH}/alerts", page(console.alerts))
    router.add_get(f"{PATH}/alerts/stream", page(e.stream))
    router.add_get(f"{PATH}/alerts/{{alert_id}}", page(console.detail))
    router.add_post(f"{PATH}/alerts/{{alert_id}}/ack", page(console.act("ack"), post=True))
    router.add_post(f"{PATH}/alerts/{{alert_id}}/resolve", page(console.act("resolve"), post=True))
    router.add_get(f"{PATH}/silences", page(console.silences))
    router.add_post(f"{PATH}/silences", page(console.silence_post, post=True))
    router.add_post(
        f"{PATH}/silences/{{silence_id}}/expire", page(console.silence_expire, post=True)
    )
    router.add_get(f"{PATH}/history", page(console.history))
    router.add_get(f"{PATH}/map", page(console.map))
    router.add_static(f"{PATH}/static/app", HERE / "static")
    if dsfr_dist().is_dir():
        router.add_static(f"{PATH}/static/dsfr", dsfr_dist())


async def _to_alerts(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(f"{PATH}/alerts")


__all__ = ["COOKIE", "Sessions", "add_routes"]
