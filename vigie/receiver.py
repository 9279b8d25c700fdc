"""A local webhook receiver that records what each cell gets.

Used by ``vigie up``, the demo, the tests and the benchmarks. It runs an
aiohttp server on its own event loop in a thread, so sync and async callers
can both use it. ``POST /cells/<cell>`` records the JSON body; when a secret
is set, a request whose ``Vigie-Signature`` does not verify is refused (401).
``status_for`` lets a test make a cell answer 500 or hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Delivery:
    cell: str
    body: dict[str, Any]
    received_at: float


@dataclass
class WebhookReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    secret: bytes | None = None
    on_delivery: Callable[[Delivery], None] | None = None
    #: cell -> HTTP status to answer (0: hang until the client gives up).
    status_for: dict[str, int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _release: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url_template(self) -> str:
        return f"http://{self.host}:{self.port}/cells/{{cell}}"

    async def _handle(self, request: web.Request) -> web.Response:
        cell = request.match_info["cell"]
        raw = await request.read()
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, request.headers.get("Vigie-Signature", "")):
                self.rejected += 1
                return web.Response(status=401, text="bad signature")
        status = self.status_for.get(cell)
        if status == 0:
            # hang until the client gives up or the receiver stops
            assert self._release is not None
            await self._release.wait()
            return web.Response(status=503, text="receiver stopping")
        if status is not None and status >= 300:
            return web.Response(status=status, text="configured failure")
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        delivery = Delivery(cell, body, time.time())
        with self._lock:
            self.deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return web.Response(status=200, text="ok")

    def start(self) -> WebhookReceiver:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._release = asyncio.Event()
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_post("/cells/{cell}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            try:
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port)
                loop.run_until_complete(site.start())
                server = site._server
                assert server is not None
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            if self._release is not None:  # free handlers told to hang
                self._loop.call_soon_threadsafe(self._release.set)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def by_cell(self) -> dict[str, list[Delivery]]:
        out: dict[str, list[Delivery]] = {}
        with self._lock:
            for d in self.deliveries:
                out.setdefault(d.cell, []).append(d)
        return out

    def alert_ids(self, cell: str | None = None) -> list[str]:
        """Fingerprints of every alert delivered (to ``cell``), in arrival order."""
        with self._lock:
            return [
                a["fingerprint"]
                for d in self.deliveries
                if cell in (None, d.cell)
                for a in d.body.get("alerts", [])
            ]

    def wait_for(self, predicate: Callable[[WebhookReceiver], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)
