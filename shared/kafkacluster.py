"""A local Apache Kafka cluster: three KRaft nodes on loopback, for tests, demo and benches.

:class:`KafkaCluster` runs the real broker (``kafka.Kafka`` from the jars that
``make kafka`` copies from Maven Central into ``.cache/kafka/libs``; the version
is pinned in ``deploy/kafka/pom.xml``) as ``nodes`` JVMs, each both broker and
controller (a static KRaft quorum), with

* free loopback ports (one client listener, one controller listener and, with
  a :class:`~shared.kafkasecurity.ClusterSecurity`, one ``SASL_SSL`` listener);
* data in ``<workdir>/node-<id>``, formatted once (``StorageTool``) and kept:
  :meth:`stop` then :meth:`start` brings the cluster back on its own log;
* production's topic defaults: replication factor 3 (capped at the node count),
  ``min.insync.replicas`` 2, no unclean leader election;
* small heaps and few threads (2-core machines): at rest about 2 % of a core and
  320 MB resident per node; formatted and serving in 6-10 s.

Every JVM is a child of :func:`shared.localstack.spawn`: its own session, killed
when the parent dies. :class:`KafkaNode` stops (SIGTERM), kills (SIGKILL),
pauses (SIGSTOP) and resumes (SIGCONT) one node, for fault tests.

Failures raise :class:`~shared.localstack.LocalStackError` with one line.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiokafka.client import AIOKafkaClient
from aiokafka.structs import TopicPartition

from shared.localproc import LocalStackError, Process, free_port, run_sync, spawn, wait_port


class ClusterSecurity(Protocol):
    """What a secured cluster adds (see :mod:`shared.kafkasecurity`)."""

    def prepare(self, workdir: Path) -> None:
        """Write the CA, keystores and secrets the nodes need under ``workdir``."""

    def broker_properties(self, node: KafkaNode) -> dict[str, Any]:
        """The ``SASL_SSL`` listener's and the authorizer's broker settings."""

    def format_args(self) -> list[str]:
        """Extra ``StorageTool format`` arguments (the SCRAM users)."""


#: JVM options of every node: small heap, serial GC, few compiler threads, and
#: the C1 compiler only (``TieredStopAtLevel=1``): on 2 cores, C2's compiler
#: threads took over half the brokers' CPU for minutes and starved them (e2e
#: at 500 events/s, back to back: p50 2,787 -> 281 ms, p99 4,930 -> 891 ms; the
#: raw hop's p50 58 -> 1.7 ms). A production broker keeps C2.
JVM_OPTS = (
    "-Xms128m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:CICompilerCount=2",
    "-XX:TieredStopAtLevel=1",
    "-XX:ActiveProcessorCount=2",
    "-Djava.awt.headless=true",
)

_LOG4J = """\
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def kafka_libs() -> Path:
    """The folder of the broker's jars: ``VIGIE_KAFKA_LIBS``, else ``.cache/kafka/libs``.

    Raises :class:`LocalStackError` naming ``make kafka`` when it holds no broker jar.
    """
    libs = Path(os.environ.get("VIGIE_KAFKA_LIBS") or repo_root() / ".cache" / "kafka" / "libs")
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise LocalStackError(f"no Kafka jars in {libs}: run 'make kafka' (Maven and Java 17)")
    return libs


def java_binary() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH; raises :class:`LocalStackError`."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return str(Path(home, "bin", "java"))
    found = shutil.which("java")
    if not found:
        raise LocalStackError("no java on PATH: apt-get install openjdk-17-jre-headless")
    return found


@dataclass
class KafkaNode:
    """One broker+controller JVM of the cluster."""

    node_id: int
    port: int
    controller_port: int
    data: Path
    sasl_port: int = 0
    process: Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        proc = self.process.proc if self.process is not None else None
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (controlled shutdown: leadership moves away first); SIGKILL after ``timeout``."""
        if self.process is not None:
            self.process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no flush."""
        if self.process is not None:
            self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: the node stays connected but answers nothing."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)


@dataclass
class KafkaCluster:
    """``nodes`` combined KRaft nodes on loopback, data under ``workdir``; a context manager."""

    workdir: Path
    nodes: int = 3
    security: ClusterSecurity | None = None
    start_timeout: float = 90.0
    members: list[KafkaNode] = field(default_factory=list)
    cluster_id: str = ""

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bootstrap(self) -> str:
        """The plaintext listeners, ``host:port,...`` (every node, so any one may be down)."""
        return ",".join(n.address for n in self.members)

    @property
    def secure_bootstrap(self) -> str:
        """The ``SASL_SSL`` listeners (empty without :attr:`security`)."""
        return ",".join(f"localhost:{n.sasl_port}" for n in self.members if n.sasl_port)

    def _plan(self) -> None:
        if self.members:
            return
        secure = self.security is not None
        for i in range(1, self.nodes + 1):
            self.members.append(
                KafkaNode(
                    i,
                    free_port(),
                    free_port(),
                    self.workdir / f"node-{i}",
                    sasl_port=free_port() if secure else 0,
                )
            )
        self.cluster_id = "-"
        while self.cluster_id.startswith("-"):  # as Kafka's Uuid: never an option's look
            self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    def properties(self, node: KafkaNode) -> str:
        """The ``server.properties`` of ``node``."""
        rf = min(3, self.nodes)
        isr = min(2, rf)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.members)
        listeners = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        if node.sasl_port:
            listeners.append(f"SASL_SSL://127.0.0.1:{node.sasl_port}")
            advertised.append(f"SASL_SSL://localhost:{node.sasl_port}")
        listeners.append(f"CONTROLLER://127.0.0.1:{node.controller_port}")
        props: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "log.dirs": str(node.data),
            "num.partitions": 4,
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.replica.fetchers": 1,
            "log.cleaner.threads": 1,
            "num.recovery.threads.per.data.dir": 1,
            "log.segment.bytes": 16 * 1024 * 1024,
            "controlled.shutdown.enable": "true",
        }
        if self.security is not None:
            props.update(self.security.broker_properties(node))
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _write_config(self, node: KafkaNode) -> Path:
        conf = self.workdir / f"node-{node.node_id}.properties"
        conf.write_text(self.properties(node))
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        return conf

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            str(kafka_libs() / "*"),
            main,
            *args,
        ]

    def _format(self) -> None:
        """Format every node's folder that has no ``meta.properties`` yet (in parallel)."""
        procs = []
        for node in self.members:
            if (node.data / "meta.properties").exists():
                continue
            conf = self._write_config(node)
            argv = self._java("kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c")
            argv.append(str(conf))
            if self.security is not None:
                argv += self.security.format_args()
            log = self.workdir / f"node-{node.node_id}.format.log"
            procs.append((node, log, spawn(argv, log)))
        for node, log, proc in procs:
            if proc.wait(60) != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise LocalStackError(f"formatting Kafka node {node.node_id} failed: {tail}")

    def start(self) -> None:
        """Start every node (formatting new folders first) and wait until the cluster serves."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._plan()
        if self.security is not None:
            self.security.prepare(self.workdir)
        try:
            self._format()
            for node in self.members:
                if not node.running:
                    self.start_node(node, wait=False)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def start_node(self, node: KafkaNode, wait: bool = True) -> None:
        """Start (or restart) one node on its data folder; ``wait``: until the cluster serves."""
        conf = self._write_config(node)
        node.process = Process(
            f"kafka-{node.node_id}",
            self._java("kafka.Kafka", str(conf)),
            self.workdir / f"node-{node.node_id}.log",
        )
        node.process.start()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return when every running node is a live broker and a metadata request works."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        want = {n.node_id for n in self.members if n.running}
        for node in self.members:
            if node.running:
                wait_port("127.0.0.1", node.port, deadline)
        while True:
            for node in self.members:
                if node.process is not None and node.process.proc is not None and not node.running:
                    raise LocalStackError(
                        f"Kafka node {node.node_id} exited at start: {node.process.tail(3)}"
                    )
            seen: set[int] = set()
            with contextlib.suppress(Exception):
                seen = run_sync_result(lambda: _live_brokers(self.bootstrap))
            if want <= seen:
                return
            if time.monotonic() > deadline:
                missing = sorted(want - seen)
                raise LocalStackError(f"Kafka nodes {missing} not serving after the timeout")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop every node (in parallel; SIGKILL after 30 s). Data folders are kept."""
        for node in self.members:
            if node.process is not None and node.process.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    node.resume()  # a paused node cannot shut down
                    node.process.proc.terminate()
        for node in self.members:
            with contextlib.suppress(Exception):
                node.stop()

    def pids(self) -> list[int]:
        return [n.pid for n in self.members if n.pid is not None]

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.members if n.node_id == node_id)

    def leaders(self, topics: list[str]) -> Counter[int]:
        """How many partitions of ``topics`` each node leads (from cluster metadata)."""
        counts: Counter[int] = run_sync_result(lambda: _leaders(self.bootstrap, topics))
        return counts

    def busiest_leader(self, topics: list[str]) -> KafkaNode:
        """The running node leading the most partitions of ``topics``."""
        counts = self.leaders(topics)
        return self.node(max(counts, key=lambda n: counts[n]))


def run_sync_result(factory: Any) -> Any:
    """:func:`shared.localstack.run_sync`, returning the coroutine's result."""
    out: list[Any] = []

    async def wrapped() -> None:
        out.append(await factory())

    run_sync(wrapped)
    return out[0]


async def _metadata(bootstrap: str) -> Any:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return await client.fetch_all_metadata()
    finally:
        await client.close()


async def _live_brokers(bootstrap: str) -> set[int]:
    meta = await _metadata(bootstrap)
    return {b.nodeId for b in meta.brokers()}


async def _leaders(bootstrap: str, topics: list[str]) -> Counter[int]:
    meta = await _metadata(bootstrap)
    counts: Counter[int] = Counter()
    for topic in topics:
        for part in meta.partitions_for_topic(topic) or ():
            leader = meta.leader_for_partition(TopicPartition(topic, part))
            if leader is not None and leader >= 0:
                counts[leader] += 1
    return counts
