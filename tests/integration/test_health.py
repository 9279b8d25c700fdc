"""Health of one worker on the real broker: ready, not ready without Redis, graceful SIGTERM.

One ``vigie run ingest`` process on the session's Tansu broker and a private
Redis (its own :class:`LocalStack` instance, so stopping it touches nobody
else). The timeline:

* worker started (``/livez`` 200) → ``/readyz`` 200 within 10 s (broker
  answered, consumer joined, Redis PONG);
* Redis stopped → ``/readyz`` 503 naming ``redis``, ``vigie_worker_ready{check="redis"} 0``,
  ``/livez`` still 200 (alive, not ready: Kubernetes stops routing, does not kill);
* Redis back → ready again;
* SIGTERM → exit code 0 within the shutdown bound.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.localstack import LocalStack, free_port
from tests.waiting import wait_for

SHUTDOWN_BOUND_S = 15.0


def tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[LocalStack]:
    """A Redis of this test's own (never the session's), stopped afterwards."""
    (tmp_path / "own").mkdir()
    own = LocalStack(workdir=tmp_path / "own", use_env_redis=False)
    own.start_redis()
    try:
        yield own
    finally:
        own.stop()


def _start_ingest(
    stack: LocalStack,
    redis_url: str,
    tmp_path: Path,
    topic_prefix: str,
    redis_prefix: str,
    shutdown_timeout: float,
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``vigie run ingest`` as a process: (process, base URL, log path)."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "VIGIE_KAFKA_BOOTSTRAP": stack.bootstrap,
            "VIGIE_REDIS_URL": redis_url,
            "VIGIE_WEB_PORT": str(port),
            "VIGIE_WEB_HOST": "127.0.0.1",
            "VIGIE_TOPIC_PREFIX": topic_prefix,
            "VIGIE_REDIS_PREFIX": redis_prefix,
            "VIGIE_BROKER_SESSION_TIMEOUT": "6",
            "VIGIE_TOPIC_PARTITIONS": "2",
            "VIGIE_PSEUDO_KEY": secrets.token_hex(16),
            "VIGIE_SHUTDOWN_TIMEOUT_S": str(shutdown_timeout),
            "VIGIE_DATA_DIR": str(tmp_path / "data"),
        }
    )
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigie", "run", "ingest"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, f"http://127.0.0.1:{port}", log_path


def test_ready_not_ready_and_graceful_sigterm(
    stack: LocalStack,
    private_redis: LocalStack,
    tmp_path: Path,
    topic_prefix: str,
    redis_prefix: str,
) -> None:
    proc, base, log_path = _start_ingest(
        stack, private_redis.redis_url, tmp_path, topic_prefix, redis_prefix, SHUTDOWN_BOUND_S
    )
    try:
        # The worker has started once its web server answers /livez (interpreter
        # start-up and imports, which a loaded machine slows down, come before);
        # ready within 10 s of that: broker answered, consumer joined on Tansu.
        wait_for(lambda: _status(f"{base}/livez") == 200, 30, lambda: f"live: {tail(log_path)}")
        wait_for(lambda: _status(f"{base}/readyz") == 200, 10, lambda: f"ready: {tail(log_path)}")
        body = httpx.get(f"{base}/readyz", timeout=1.0).json()
        assert body["ready"] is True
        assert body["checks"] == {"broker": True, "assigned": True, "redis": True}
        metrics = httpx.get(f"{base}/metrics", timeout=2.0).text
        assert 'vigie_worker_ready{check="redis"} 1.0' in metrics

        # Redis down: not ready (and says why), still alive.
        private_redis.stop_redis()
        wait_for(lambda: _status(f"{base}/readyz") == 503, 10, "not ready without Redis")
        body = httpx.get(f"{base}/readyz", timeout=1.0).json()
        assert body["ready"] is False
        assert body["checks"]["redis"] is False
        assert body["checks"]["broker"] is True
        assert "redis" in body["errors"]
        assert _status(f"{base}/livez") == 200
        metrics = httpx.get(f"{base}/metrics", timeout=2.0).text
        assert 'vigie_worker_ready{check="redis"} 0.0' in metrics

        # Redis back (same port): ready again without a restart.
        private_redis.start_redis()
        wait_for(lambda: _status(f"{base}/readyz") == 200, 10, "ready with Redis back")
        assert proc.poll() is None

        # SIGTERM: a graceful stop, exit code 0, within the bound.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=SHUTDOWN_BOUND_S + 10)
        elapsed = time.monotonic() - started
        assert code == 0, tail(log_path)
        assert elapsed < SHUTDOWN_BOUND_S
        assert _status(f"{base}/livez") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_stop_that_overruns_the_bound_is_cut_short(
    stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str
) -> None:
    """With a bound shorter than any real stop, the watchdog ends the process (code 70)."""
    proc, base, log_path = _start_ingest(
        stack, stack.redis_url, tmp_path, topic_prefix, redis_prefix, shutdown_timeout=0.01
    )
    try:
        wait_for(lambda: _status(f"{base}/livez") == 200, 30, lambda: f"live: {tail(log_path)}")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert code == 70, tail(log_path)
        assert "graceful stop took too long" in log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
