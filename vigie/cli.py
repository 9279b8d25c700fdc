"""The ``vigie`` command line (CONTRACT: command names and their arguments).

Every command exits non-zero with one line on stderr on bad arguments or an
unreachable broker/Redis, and never prints a traceback for a user error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.kafka import BrokerUnreachable, check_broker, ensure_topics
from shared.localstack import LocalStackError
from shared.redis import RedisUnreachable, check_redis
from shared.settings import Settings, SettingsError, load
from shared.topics import Topics

app = typer.Typer(
    name="vigie",
    help="Vigie: real-time cross-agency alerting for the national plan against drug trafficking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Correlation rules: test fixtures.", no_args_is_help=True)
routes_app = typer.Typer(help="Notification routing: test a label set.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(routes_app, name="routes")

from vigie.scenario.cli import scenario_app  # noqa: E402

app.add_typer(scenario_app, name="scenario")

from vigie.cellcli import alerts_app, silences_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")
app.add_typer(silences_app, name="silences")

from vigie.console import err, fail, out  # noqa: E402


class Service(StrEnum):
    ingest = "ingest"
    correlate = "correlate"
    notify = "notify"


def _service_settings(service: Service) -> Settings:
    if service is Service.ingest:
        from services.ingest.settings import IngestSettings

        return load(IngestSettings)
    if service is Service.correlate:
        from services.correlate.settings import CorrelateSettings

        return load(CorrelateSettings)
    from services.notify.settings import NotifySettings

    return load(NotifySettings)


@app.command()
def run(
    service: Annotated[Service, typer.Argument(help="ingest, correlate or notify")],
) -> None:
    """Run one service as a Faust worker, connected by the VIGIE_* settings."""
    from vigie.check import check_port_free, check_service_config

    try:
        settings = _service_settings(service)
        check_service_config(settings)  # offline, before any connection
        check_port_free(settings.web_host, settings.web_port)
        asyncio.run(_preflight(settings))
        if service is Service.ingest:
            from services.ingest.app import build as build_ingest

            faust_app, _ = build_ingest(settings)  # type: ignore[arg-type]
        elif service is Service.correlate:
            from services.correlate.app import build as build_correlate

            faust_app, _ = build_correlate(settings)  # type: ignore[arg-type]
        else:
            from services.notify.app import build as build_notify

            faust_app, _ = build_notify(settings)  # type: ignore[arg-type]
    except (SettingsError, BrokerUnreachable, RedisUnreachable, ValueError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    from shared.app import run_worker

    raise typer.Exit(run_worker(faust_app, service.value, settings))


async def _preflight(settings: Settings) -> None:
    """Fail fast, with one line, when the broker or Redis does not answer (or refuses
    the credentials); create the missing topics this principal may create."""
    from shared.kafkaauth import client_options

    options = client_options(settings)
    await check_broker(settings.kafka_bootstrap, options=options)
    await check_redis(settings.redis_url)
    await ensure_topics(
        settings.kafka_bootstrap,
        Topics(settings.topic_prefix).all(),
        settings.topic_partitions,
        replication=settings.topic_replication,
        min_insync=settings.topic_min_insync_replicas,
        options=options,
    )


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON Lines file: one inbound event a line")],
    rate: Annotated[
        float | None,
        typer.Option(help="events per second (default: as fast as possible)", min=0.001),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="send every line to this topic instead of agency.<agency>.events"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="record the last line delivered here (every 1,000 lines); run again with "
            "the same file to resume after it"
        ),
    ] = None,
) -> None:
    """Publish inbound events to agency.<agency>.events, with a progress bar
    (large files are streamed; --checkpoint makes the replay resumable)."""
    from shared.kafkaauth import client_options
    from vigie.replay import Checkpoint, count_lines, publish, stream_lines

    try:
        settings = load(Settings)
    except SettingsError as exc:
        fail(str(exc), 2)
    mark = Checkpoint(checkpoint, file) if checkpoint else None
    try:
        total, done = count_lines(file), mark.load() if mark else 0
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", 2)
    except ValueError as exc:
        fail(str(exc), 2)
    bad: list[tuple[int, str]] = []
    lines = stream_lines(file, Topics(settings.topic_prefix), topic, bad, after=done)
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=total <= done,
    ) as bar:
        task = bar.add_task("replay", total=total, completed=done)
        try:
            sent = asyncio.run(
                publish(
                    settings.kafka_bootstrap,
                    lines,
                    rate,
                    lambda n: bar.advance(task, n),
                    options=client_options(settings),
                    idempotence=settings.kafka_idempotence,
                    delivered=mark.save if mark else None,
                )
            )
        except (BrokerUnreachable, SettingsError) as exc:
            fail(str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {file}: {exc}", 2)
    for number, reason in bad:
        err.print(f"line {number}: {reason} (skipped)", markup=False, highlight=False)
    out.print(f"sent {sent} event(s), skipped {len(bad)} bad line(s)")
    if bad:
        raise typer.Exit(1)


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


@app.command()
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


@app.command()
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


@rules_app.command("test")
def rules_test(
    path: Annotated[Path | None, typer.Argument(help="rules directory or fixture file")] = None,
) -> None:
    """Run rule fixtures (events in, expected alerts out); non-zero exit on any mismatch."""
    from services.correlate.fixtures import cli_rules_test

    raise typer.Exit(cli_rules_test(path, out, err))


@routes_app.command("test")
def routes_test(
    labels: Annotated[list[str], typer.Argument(help="label=value pairs")],
    config: Annotated[Path, typer.Option("--config", help="Alertmanager-format routing file")],
) -> None:
    """Print the receivers a label set reaches, like `amtool config routes test`."""
    from services.notify.route_cli import cli_routes_test

    raise typer.Exit(cli_routes_test(config, labels, out, err))


BENCHES = ("ingest", "correlate", "notify", "e2e", "scale", "backfill")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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


from vigie.check_cli import check_app  # noqa: E402

app.add_typer(check_app, name="check")


def _usage_error(exc: typer.TyperException) -> int:
    """Print a usage error (bad argument, unknown option...) as one unwrapped line
    and return its exit code. Typer would print a box wrapped at the terminal's
    width (80 columns when stderr is not a terminal: pods, CI)."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help is printed already
        return int(getattr(exc, "exit_code", 2))
    format_message = getattr(exc, "format_message", None)
    message = format_message() if format_message is not None else str(exc)
    message = " ".join(str(message).replace("Value error, ", "").split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    err.print(f"vigie: {message}{hint}", markup=False, highlight=False, soft_wrap=True)
    return int(getattr(exc, "exit_code", 2))


def main() -> None:
    """The console script: usage errors as one line, Ctrl-C as exit code 130."""
    # Library loggers (aiokafka...) must not print tracebacks or noise for user
    # errors; workers install their own JSON handler when they start.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        sys.exit(_usage_error(exc))
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
