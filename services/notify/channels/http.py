"""A small keep-alive HTTP/1.1 client for webhook POSTs.

Webhook delivery is the hot path of notify: one POST per notification.
aiohttp's client costs about 250-400 µs of CPU per request here; this client,
an :class:`asyncio.Protocol` per connection and a pool of idle connections per
origin, costs well under 100 µs. It does only what delivery needs:

* ``POST`` a body with headers to an ``http://`` or ``https://`` URL (TLS with
  certificate and host name verification; user info in the URL becomes Basic
  auth); answers the status code;
* reads the answer's body (``Content-Length``, ``chunked`` or until close) and
  throws it away; ``1xx`` answers are skipped;
* keeps the connection for the next request unless the server says
  ``Connection: close`` (or speaks HTTP/1.0 without keep-alive); an idle
  connection older than ``idle_s`` is not reused;
* a request on a *reused* connection that the server closed before answering
  (the keep-alive race) is sent once more on a new connection;
* redirects are **not** followed: a signed alert is not re-sent to another
  address (``3xx`` is an answer like any other for the caller).

Errors: :class:`OSError` (connection refused, reset...), :class:`TimeoutError`
(``timeout`` covers connecting, sending and the whole answer) and
:class:`HttpProtocolError` (an answer that is not HTTP/1.x).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from urllib.parse import unquote, urlsplit

__all__ = ["HttpPool", "HttpProtocolError"]

_MAX_HEAD = 64 * 1024


class HttpProtocolError(OSError):
    """The peer's answer is not valid HTTP/1.x."""


class _Conn(asyncio.Protocol):
    """One connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True
        self.got_bytes = False
        self.idle_since = time.monotonic()
        # parse state of the current answer
        self._status = 0
        self._mode = ""  # "" head | "length" | "chunked" | "close"
        self._left = 0
        self._trailers = False

    # asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.got_bytes = True
        self.buf += data
        try:
            self._parse()
        except HttpProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._mode == "close" and self.waiter is not None:
            self._done()  # the body ended with the connection
            return
        self._fail(ConnectionResetError("connection closed before the answer ended"))

    # requests -------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self._mode = ""
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if not self.closed:
            self.close()

    def _done(self) -> None:
        waiter, self.waiter = self.waiter, None
        self._mode = ""
        self.idle_since = time.monotonic()
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    # parsing ------------------------------------------------------------------
    def _parse(self) -> None:
        while self.waiter is not None:
            if self._mode == "":
                if not self._head():
                    return
            elif self._mode == "length":
                take = min(self._left, len(self.buf))
                del self.buf[:take]
                self._left -= take
                if self._left:
                    return
                self._done()
            elif self._mode == "chunked":
                if not self._chunks():
                    return
                self._done()
            else:  # "close": the body runs until the connection ends
                self.buf.clear()
                return

    def _head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                raise HttpProtocolError("answer head too large")
            return False
        lines = bytes(self.buf[:end]).split(b"\r\n")
        del self.buf[: end + 4]
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpProtocolError(f"not an HTTP/1.x answer: {lines[0][:40]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpProtocolError("bad header line")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            return True  # informational: the real answer follows
        self._status = status
        conn = headers.get(b"connection", b"").lower()
        http10 = parts[0] == b"HTTP/1.0"
        self.keep_alive = b"close" not in conn and (not http10 or b"keep-alive" in conn)
        if status in (204, 304):
            self._mode, self._left = "length", 0
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._mode, self._left, self._trailers = "chunked", -1, False
        elif b"content-length" in headers:
            try:
                self._mode, self._left = "length", int(headers[b"content-length"])
            except ValueError:
                raise HttpProtocolError("bad Content-Length") from None
            if self._left < 0:
                raise HttpProtocolError("bad Content-Length")
        else:
            self._mode, self.keep_alive = "close", False
        return True

    def _chunks(self) -> bool:
        """Consume chunks; True once the last one (and its trailers) is in."""
        while True:
            if self._trailers:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return False
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                if not line:
                    return True
                continue
            if self._left < 0:  # expecting a size line
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > 1024:
                        raise HttpProtocolError("bad chunk size line")
                    return False
                size = bytes(self.buf[:end]).split(b";", 1)[0].strip()
                del self.buf[: end + 2]
                try:
                    n = int(size, 16)
                except ValueError:
                    raise HttpProtocolError("bad chunk size") from None
                if n == 0:
                    self._trailers = True
                    continue
                self._left = n + 2  # data and its CRLF
            take = min(self._left, len(self.buf))
            del self.buf[:take]
            self._left -= take
            if self._left:
                return False
            self._left = -1


class HttpPool:
    """Idle keep-alive connections per origin, at most ``limit_per_host`` busy at once."""

    def __init__(self, limit_per_host: int = 32, idle_s: float = 15.0) -> None:
        self.limit_per_host = limit_per_host
        self.idle_s = idle_s
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._sems: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._busy: set[_Conn] = set()
        self._ssl: ssl.SSLContext | None = None
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        """(origin, request head prefix) of a URL, parsed once."""
        hit = self._targets.get(url)
        if hit is not None:
            return hit
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        default = port == (443 if u.scheme == "https" else 80)
        host = u.hostname if ":" not in u.hostname else f"[{u.hostname}]"
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        head = f"POST {path} HTTP/1.1\r\nHost: {host if default else f'{host}:{port}'}\r\n"
        if u.username is not None:
            cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            head += f"Authorization: Basic {base64.b64encode(cred).decode()}\r\n"
        hit = ((u.scheme, u.hostname, port), head.encode("latin-1"))
        if len(self._targets) < 4096:
            self._targets[url] = hit
        return hit

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST ``body``; the answer's status code."""
        origin, head = self._target(url)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        data = b"".join(
            (head, f"{extra}Content-Length: {len(body)}\r\n\r\n".encode("latin-1"), body)
        )
        sem = self._sems.get(origin)
        if sem is None:
            sem = self._sems[origin] = asyncio.Semaphore(self.limit_per_host)
        async with sem, asyncio.timeout(timeout):
            conn = self._take(origin)
            if conn is not None:
                try:
                    return await self._exchange(origin, conn, data)
                except OSError:
                    if conn.got_bytes:
                        raise
                    # the server closed the idle connection as we reused it: once more
            return await self._exchange(origin, await self._connect(origin), data)

    def _take(self, origin: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_s:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Conn:
        scheme, host, port = origin
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        _, conn = await asyncio.get_running_loop().create_connection(
            _Conn, host, port, ssl=ctx, server_hostname=host if ctx else None
        )
        return conn

    async def _exchange(self, origin: tuple[str, str, int], conn: _Conn, data: bytes) -> int:
        self._busy.add(conn)
        try:
            status = await conn.send(data)
        except BaseException:
            conn.close()  # an answer may still be on its way: never reuse
            raise
        finally:
            self._busy.discard(conn)
        if conn.keep_alive and not conn.closed and not conn.buf:
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
        return status

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
