"""The ``vigie`` command line (CONTRACT: command names and their arguments).

Every command exits non-zero with one line on stderr on bad arguments or an
unreachable broker/Redis, and never prints a traceback for a user error.

Here: ``run``, ``replay``, ``rules test``, ``routes test`` and the entry point.
The other commands live beside it and are registered on :data:`app` here:
``up``/``demo``/``bench`` in :mod:`vigie.localcli`, ``check`` in
:mod:`vigie.check_cli`, ``alerts``/``silences`` in :mod:`vigie.cellcli`,
``scenario`` in :mod:`vigie.scenario.cli`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.kafka import BrokerUnreachable, check_broker, ensure_topics
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


from vigie.localcli import bench, demo, up  # noqa: E402

app.command()(up)
app.command()(demo)


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


app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench)


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
