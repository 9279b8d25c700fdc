"""The webhook HTTP client against real loopback servers answering in every framing."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from services.notify.channels.http import HttpPool, HttpProtocolError

pytestmark = pytest.mark.integration


@dataclass
class Server:
    """A raw HTTP server: ``answer(request_head)`` gives the bytes to write back
    (``None``: close without answering; ``b""``: answer nothing and hang)."""

    answer: Callable[[bytes], bytes | None]
    port: int = 0
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    close_after: bool = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                out = self.answer(head)
                if out is None:
                    break
                if out == b"":
                    await asyncio.sleep(3600)
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Answer = Callable[[bytes], bytes | None]
Serve = Callable[[Answer], Awaitable["Server"]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(answer: Answer) -> Server:
        s = Server(answer)

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            await s.handle(r, w)

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        s.port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
        return s

    yield start
    for srv in servers:
        srv.close()
    for t in tasks:
        t.cancel()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_keep_alive_reuses_one_connection(serve: Serve) -> None:
    s = await serve(lambda _h: OK)
    pool = HttpPool()
    url = f"http://127.0.0.1:{s.port}/cells/dept-13?x=1"
    for i in range(5):
        assert await pool.post(url, b'{"i":%d}' % i, {"Vigie-Notification-Id": "n"}, 5) == 200
    assert s.connections == 1 and len(s.requests) == 5
    head, body = s.requests[0]
    assert head.startswith(b"POST /cells/dept-13?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{s.port}".encode() in head
    assert b"Vigie-Notification-Id: n" in head and body == b'{"i":0}'
    await pool.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ],
)
async def test_framings_keep_the_connection(serve: Serve, answer: bytes) -> None:
    s = await serve(lambda _h: answer)
    pool = HttpPool()
    url = f"http://127.0.0.1:{s.port}/"
    for _ in range(3):
        assert await pool.post(url, b"{}", {}, 5) in (200, 201, 204)
    assert s.connections == 1
    await pool.close()


async def test_close_delimited_and_connection_close(serve: Serve) -> None:
    answers = iter(
        [
            b"HTTP/1.0 200 OK\r\n\r\nbody until close",
            b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
            OK,
        ]
    )
    s = await serve(lambda _h: next(answers))
    s.close_after = True
    pool = HttpPool()
    url = f"http://127.0.0.1:{s.port}/"
    assert [await pool.post(url, b"{}", {}, 5) for _ in range(3)] == [200, 503, 200]
    assert s.connections == 3
    await pool.close()


async def test_idle_connection_closed_by_the_server_is_retried_once(
    serve: Serve,
) -> None:
    s = await serve(lambda _h: OK)
    s.close_after = True  # closes after each answer, without saying so
    pool = HttpPool()
    url = f"http://127.0.0.1:{s.port}/"
    for _ in range(3):
        assert await pool.post(url, b"{}", {}, 5) == 200
    assert len(s.requests) == 3
    await pool.close()


async def test_errors(serve: Serve) -> None:
    pool = HttpPool()
    hang = await serve(lambda _h: b"")
    with pytest.raises(TimeoutError):
        await pool.post(f"http://127.0.0.1:{hang.port}/", b"{}", {}, 0.2)
    garbage = await serve(lambda _h: b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(HttpProtocolError):
        await pool.post(f"http://127.0.0.1:{garbage.port}/", b"{}", {}, 5)
    gone = await serve(lambda _h: None)
    with pytest.raises(ConnectionError):
        await pool.post(f"http://127.0.0.1:{gone.port}/", b"{}", {}, 5)
    with pytest.raises(ValueError):
        await pool.post("ftp://127.0.0.1/x", b"{}", {}, 5)
    redirect = await serve(
        lambda _h: b"HTTP/1.1 307 Moved\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"
    )
    assert await pool.post(f"http://127.0.0.1:{redirect.port}/", b"{}", {}, 5) == 307
    assert len(redirect.requests) == 1  # not followed
    await pool.close()


async def test_user_info_becomes_basic_auth(serve: Serve) -> None:
    s = await serve(lambda _h: OK)
    pool = HttpPool()
    assert await pool.post(f"http://u%40x:p%3Aw@127.0.0.1:{s.port}/h", b"{}", {}, 5) == 200
    token = base64.b64encode(b"u@x:p:w")
    assert b"Authorization: Basic " + token in s.requests[0][0]
    await pool.close()
