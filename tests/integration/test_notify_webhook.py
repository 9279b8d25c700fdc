"""The webhook channel (aiohttp) against real loopback servers.

What notify promises of a webhook POST (docs/notify.md): signed body, keep-alive
connections, at most ``LIMIT_PER_HOST`` at once per origin, TLS certificates
checked, user info as Basic auth, redirects never followed, and which failures
are worth retrying.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from services.notify.cells import Cell, Secrets, WebhookChannel
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.webhook import LIMIT_PER_HOST, WebhookNotifier, deliver, session
from services.notify.delivery import DeliveryConfig
from tests.waiting import until

pytestmark = pytest.mark.integration

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Server:
    """A raw HTTP server: ``answer(request_head)`` gives the bytes to write back
    (``None``: close without answering; ``b""``: answer nothing and hang)."""

    answer: Callable[[bytes], bytes | None]
    port: int = 0
    connections: int = 0
    open: int = 0
    most_open: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append((head, await reader.readexactly(length)))
                if self.gate is not None:
                    await self.gate.wait()
                out = self.answer(head)
                if out is None:
                    break
                if out == b"":
                    await asyncio.sleep(3600)
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(answer: Callable[[bytes], bytes | None], tls: Any = None) -> Server:
        s = Server(answer)

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            await s.handle(r, w)

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        s.port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
        return s

    yield start
    for srv in servers:
        srv.close()
    for t in tasks:
        t.cancel()


def note(i: int = 0) -> Notification:
    alert = {
        "status": "firing",
        "labels": {"rule": "r1", "department": "13"},
        "annotations": {"summary": "s"},
        "fingerprint": f"a{i}",
    }
    return Notification("dept-13", "g", {"rule": "r1"}, [alert], f"n{i}", console_url="https://c/x")


async def test_signed_body_on_one_kept_alive_connection(serve: Serve) -> None:
    s = await serve(lambda _h: OK)
    client = session(5)
    url = f"http://127.0.0.1:{s.port}/cells/dept-13?x=1"
    for i in range(5):
        await deliver(client, url, note(i), b"key")
    await client.close()
    assert s.connections == 1 and len(s.requests) == 5
    head, body = s.requests[0]
    assert head.startswith(b"POST /cells/dept-13?x=1 HTTP/1.1\r\n")
    assert b"Vigie-Notification-Id: n0" in head
    signature = "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert f"Vigie-Signature: {signature}".encode() in head
    sent = json.loads(body)
    assert sent["version"] == "4" and sent["notificationId"] == "n0"
    assert sent["externalURL"] == "https://c/x"
    assert sent["alerts"][0]["consoleURL"] == "https://c/x/alerts/a0"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ],
)
async def test_framings_keep_the_connection(serve: Serve, answer: bytes) -> None:
    s = await serve(lambda _h: answer)
    client = session(5)
    for _ in range(3):
        await deliver(client, f"http://127.0.0.1:{s.port}/", note(), None)
    await client.close()
    assert s.connections == 1 and len(s.requests) == 3


async def test_at_most_limit_per_host_connections_to_one_origin(serve: Serve) -> None:
    s = await serve(lambda _h: OK)
    s.gate = asyncio.Event()
    client = session(10)
    url = f"http://127.0.0.1:{s.port}/"
    sends = [asyncio.create_task(deliver(client, url, note(i), None)) for i in range(40)]
    await until(lambda: len(s.requests) >= LIMIT_PER_HOST, 10, "the first requests arrive")
    assert s.open == LIMIT_PER_HOST  # the other 8 wait for a free connection
    s.gate.set()
    await asyncio.gather(*sends)
    await client.close()
    assert s.most_open == LIMIT_PER_HOST and len(s.requests) == 40


async def test_which_answers_are_worth_retrying(serve: Serve) -> None:
    client = session(0.3)

    async def failure(answer: bytes | None, url: str | None = None) -> DeliveryError:
        s = await serve(lambda _h: answer)
        with pytest.raises(DeliveryError) as info:
            await deliver(client, url or f"http://127.0.0.1:{s.port}/", note(), None)
        return info.value

    def status(code: int) -> bytes:
        return f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode()

    assert (await failure(status(503))).retryable
    assert (await failure(status(429))).retryable
    assert not (await failure(status(404))).retryable
    hang, closed = await failure(b""), await failure(None)
    assert hang.retryable and closed.retryable
    assert (await failure(b"SSH-2.0-OpenSSH\r\n\r\n")).retryable
    bad = await failure(OK, "ftp://user:secret@127.0.0.1/x")
    assert not bad.retryable and "secret" not in str(bad)
    await client.close()


async def test_redirects_are_not_followed(serve: Serve) -> None:
    target = await serve(lambda _h: OK)
    moved = f"HTTP/1.1 307 Moved\r\nLocation: http://127.0.0.1:{target.port}/\r\n"
    s = await serve(lambda _h: (moved + "Content-Length: 0\r\n\r\n").encode())
    client = session(5)
    with pytest.raises(DeliveryError) as info:
        await deliver(client, f"http://127.0.0.1:{s.port}/", note(), None)
    await client.close()
    assert str(info.value) == "HTTP 307" and not info.value.retryable
    assert len(s.requests) == 1 and target.requests == []  # never re-sent elsewhere


async def test_user_info_becomes_basic_auth(serve: Serve) -> None:
    s = await serve(lambda _h: OK)
    client = session(5)
    await deliver(client, f"http://u%40x:p%3Aw@127.0.0.1:{s.port}/h", note(), None)
    await client.close()
    token = base64.b64encode(b"u@x:p:w")
    assert b"Authorization: Basic " + token in s.requests[0][0]


async def test_tls_certificates_are_checked(serve: Serve) -> None:
    ca = trustme.CA()
    s = await serve(lambda _h: OK, tls=_server_tls(ca, "127.0.0.1"))
    channel = WebhookChannel(type="webhook", url=f"https://127.0.0.1:{s.port}/{{cell}}")
    cell = Cell(id="dept-13", channels=[channel])
    notifier = WebhookNotifier(DeliveryConfig(timeout_s=5), Secrets())
    with pytest.raises(DeliveryError) as info:  # a CA the system does not trust
        await notifier.send(cell, channel, note())
    assert "Certificate" in str(info.value) or "SSL" in str(info.value)
    assert s.requests == []
    await notifier.close()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = session(5, trusting)
    await deliver(client, f"https://127.0.0.1:{s.port}/h", note(), None)
    assert len(s.requests) == 1
    other = await serve(lambda _h: OK, tls=_server_tls(ca, "other.example"))
    with pytest.raises(DeliveryError):  # trusted CA, but not this host's certificate
        await deliver(client, f"https://127.0.0.1:{other.port}/h", note(), None)
    await client.close()
    assert other.requests == []


def _server_tls(ca: trustme.CA, host: str) -> ssl.SSLContext:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(tls)
    return tls
