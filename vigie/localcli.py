"""``vigie up``, ``vigie demo`` and ``vigie bench``: the commands that start a local stack.

Contract (CONTRACT names and arguments, registered on the ``vigie`` app by
:mod:`vigie.cli`): ``--broker`` and ``--redis`` choose the local broker and
Redis for every :class:`~shared.localstack.LocalStack` of the process (through
``VIGIE_LOCAL_BROKER`` / ``VIGIE_LOCAL_REDIS``); an unknown choice, an unknown
benchmark, or a stack that cannot start is one line on stderr and a non-zero
exit, never a traceback. SIGTERM stops ``up`` and ``demo`` like Ctrl-C: every
child is stopped.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from shared.kafka import BrokerUnreachable
from shared.localstack import LocalStackError
from shared.redis import RedisUnreachable
from vigie.console import err, fail, out


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM (and SIGINT, even if inherited as ignored) as Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


#: ``--broker``: which local broker ``up``, ``demo`` and ``bench`` start.
BrokerOption = Annotated[
    str | None,
    typer.Option(
        help="local broker: tansu (quick, in memory) or kafka (3-node Apache Kafka cluster); "
        "default VIGIE_LOCAL_BROKER, else tansu"
    ),
]


def _choose_local(variable: str, what: str, value: str | None, choices: tuple[str, ...]) -> None:
    """Pass a ``--broker``/``--redis`` choice to every LocalStack of this process
    (through ``variable``); an unknown one is a one-line usage error."""
    if value is None:
        return
    if value not in choices:
        fail(f"unknown {what} {value!r}; choose from {', '.join(choices)}", 2)
    os.environ[variable] = value


def _choose_broker(broker: str | None) -> None:
    """``--broker``: VIGIE_LOCAL_BROKER."""
    from shared.localstack import BROKERS

    _choose_local("VIGIE_LOCAL_BROKER", "broker", broker, BROKERS)


#: ``--redis``: which local Redis ``up``, ``demo`` and ``bench`` start.
RedisOption = Annotated[
    str | None,
    typer.Option(
        help="local Redis: single, or cluster (3 masters + 3 replicas on loopback); "
        "default VIGIE_LOCAL_REDIS, else single"
    ),
]


def _choose_redis(redis: str | None) -> None:
    """``--redis``: VIGIE_LOCAL_REDIS."""
    _choose_local("VIGIE_LOCAL_REDIS", "local Redis", redis, ("single", "cluster"))


def up(
    session_timeout: Annotated[
        float, typer.Option(help="consumer-group session timeout (s)")
    ] = 6.0,
    broker: BrokerOption = None,
    redis: RedisOption = None,
) -> None:
    """The whole local stack in the foreground: broker, Redis, the three services, a
    local receiver that shows what each cell gets. Ctrl-C stops everything cleanly."""
    from vigie.receiver import Delivery
    from vigie.stack import Pipeline

    _choose_broker(broker)
    _choose_redis(redis)

    def show(d: Delivery) -> None:
        for a in d.body.get("alerts", []):
            out.print(
                f"[bold]{d.cell}[/] ← {a['labels'].get('severity', '?')} "
                f"{a['labels'].get('rule', '?')}: {a['annotations'].get('summary', '')}"
            )

    _interrupt_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="vigie-up-"))
    pipeline = Pipeline(workdir=workdir, session_timeout=session_timeout)
    try:
        pipeline.start()
        assert pipeline.stack is not None and pipeline.receiver is not None
        pipeline.receiver.on_delivery = show
        out.print(
            f"Vigie is up. Broker {pipeline.stack.bootstrap}, Redis {pipeline.stack.redis_url}"
        )
        for name, proc in pipeline.services.items():
            out.print(
                f"  {name:<10} http://127.0.0.1:{proc.port}/metrics  /readyz  (log {proc.log_path})"
            )
        kafka_env = " ".join(
            f"{k}={v}" for k, v in pipeline.stack.env().items() if k.startswith("VIGIE_KAFKA")
        )
        out.print(f"Publish with: {kafka_env} vigie replay FILE.jsonl")
        out.print("Ctrl-C to stop.")
        while all(p.running for p in pipeline.services.values()):
            time.sleep(0.5)
        fail("a service stopped; see the logs in " + str(workdir))
    except KeyboardInterrupt:
        out.print("stopping…")
    except LocalStackError as exc:
        fail(str(exc).splitlines()[0])
    finally:
        pipeline.stop()


def demo(
    scenario: Annotated[
        Path | None, typer.Option(help="JSONL scenario (default: the bundled one)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the notifications")] = 30.0,
    broker: BrokerOption = None,
    keep: Annotated[
        bool | None,
        typer.Option(help="keep the stack up until Ctrl-C (default: when stdin is a terminal)"),
    ] = None,
) -> None:
    """Run the bundled scenario end to end, show what each cell received, then the console."""
    from vigie.demo import run_demo

    _choose_broker(broker)
    _interrupt_on_sigterm()
    try:
        code = run_demo(scenario, timeout, out, keep)
    except (LocalStackError, BrokerUnreachable, RedisUnreachable) as exc:
        fail(str(exc).splitlines()[0])
    raise typer.Exit(code)


BENCHES = ("ingest", "correlate", "notify", "e2e", "scale", "backfill")


def bench(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="ingest, correlate, notify, e2e, scale or backfill")],
    json_out: Annotated[
        bool, typer.Option("--json", help="print one JSON object of figures")
    ] = False,
    broker: BrokerOption = None,
    redis: RedisOption = None,
) -> None:
    """Benchmarks; --json prints one JSON object of figures; --broker kafka|tansu;
    --redis single|cluster.

    Options after the name go to the benchmark, e.g.
    `vigie bench e2e --rate 1000 --duration 20 --json`; `vigie bench NAME --help` lists them.
    """
    if which not in BENCHES:
        fail(f"unknown benchmark {which!r}; choose from {', '.join(BENCHES)}", 2)
    _choose_broker(broker)
    _choose_redis(redis)
    import importlib

    module = importlib.import_module(f"vigie.bench.{which}")
    try:
        raise typer.Exit(module.cli(list(ctx.args), json_out, out, err))
    except (LocalStackError, BrokerUnreachable, RedisUnreachable) as exc:
        fail(str(exc).splitlines()[0])
