"""Run the whole pipeline locally: broker + Redis + the three services + a receiver.

:class:`Pipeline` is what ``vigie up``, ``vigie demo``, the end-to-end tests
and the benchmarks use. Each service runs as its own process (``vigie run``),
exactly as in production; all are stopped on exit, and they die with the
parent (PR_SET_PDEATHSIG) so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, LocalStackError, free_port, run_sync, spawn
from shared.topics import Topics
from vigie.receiver import WebhookReceiver

SERVICES = ("ingest", "correlate", "notify")


@dataclass
class ServiceProcess:
    """One ``vigie run <name>`` child process."""

    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(
            [sys.executable, "-m", "vigie", "run", self.name], self.log_path, self.env
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> None:
        """Send SIGTERM (graceful stop) without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for a graceful exit, SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Pipeline:
    """The local stack plus the three services and a webhook receiver."""

    workdir: Path
    stack: LocalStack | None = None
    receiver: WebhookReceiver | None = None
    topic_prefix: str = ""
    redis_prefix: str = "vigie"
    session_timeout: float = 6.0
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Per service (``ingest``...), applied after ``extra_env``: e.g. each its own
    #: Kafka principal (``VIGIE_KAFKA_SASL_USERNAME``...).
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _own_stack: bool = False

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def env(self, name: str, port: int) -> dict[str, str]:
        assert self.stack is not None and self.receiver is not None
        env = dict(os.environ)
        env.update(self.stack.env())
        env.update(
            {
                "VIGIE_WEB_PORT": str(port),
                "VIGIE_WEB_HOST": "127.0.0.1",
                "VIGIE_TOPIC_PREFIX": self.topic_prefix,
                "VIGIE_REDIS_PREFIX": self.redis_prefix,
                "VIGIE_BROKER_SESSION_TIMEOUT": str(self.session_timeout),
                "VIGIE_TOPIC_PARTITIONS": str(self.partitions),
                "VIGIE_NOTIFY_WEBHOOK_URL": self.receiver.url_template,
            }
        )
        env.setdefault("VIGIE_PSEUDO_KEY", self._pseudo_key)
        if self.receiver.secret:
            env["VIGIE_WEBHOOK_SECRET"] = self.receiver.secret.decode()
        env.update(self.extra_env)
        env.update(self.service_env.get(name, {}))
        return env

    def start(self, wait: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A throwaway key per local run: tokens are only compared within the run.
        self._pseudo_key = secrets.token_hex(32)
        if self.stack is None:
            self.stack = LocalStack(workdir=self.workdir / "stack")
            self._own_stack = True
            self.stack.start()
        if self.receiver is None:
            self.receiver = WebhookReceiver(secret=secrets.token_hex(16).encode()).start()
        run_sync(lambda: ensure_topics(self.stack.bootstrap, self.topics.all(), self.partitions))  # type: ignore[union-attr]
        for name in SERVICES:
            self.start_service(name)
        self.wait_ready(wait)

    def start_service(self, name: str, instance: str = "") -> ServiceProcess:
        port = free_port()
        key = name + instance
        proc = ServiceProcess(key, self.env(name, port), port, self.workdir / f"{key}.log")
        proc.name = name
        proc.start()
        self.services[key] = proc
        return proc

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.services) if names is None else {n: self.services[n] for n in names}
        while pending:
            for key, proc in list(pending.items()):
                if not proc.running:
                    raise LocalStackError(f"{key} exited at start:\n{proc.tail(15)}")
                if proc.ready():
                    del pending[key]
            if time.monotonic() > deadline:
                raise LocalStackError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the services (in parallel), then the receiver and the stack."""
        for proc in self.services.values():
            proc.terminate()
        for proc in self.services.values():
            with contextlib.suppress(Exception):
                proc.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self._own_stack and self.stack is not None:
            self.stack.stop()
