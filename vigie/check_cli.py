"""``vigie check``: the broker and Redis answer (no subcommand), or files offline.

``vigie check config`` validates the routing, cells, secrets and rules files and
``vigie check event FILE.json`` one inbound event, with no broker and no Redis
(:mod:`vigie.check`). Errors are one unwrapped line on stderr, exit code 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from shared.kafka import BrokerUnreachable, check_broker
from shared.redis import RedisUnreachable, check_redis
from shared.settings import Settings, SettingsError, load
from vigie.console import err, fail, out

check_app = typer.Typer(
    help="Check the broker and Redis (no subcommand), or files offline (config, event).",
    invoke_without_command=True,
)


@check_app.callback()
def check(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="seconds per check")] = 3.0,
) -> None:
    """Without a subcommand: check that the configured broker and Redis answer."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        settings = load(Settings)
        from shared.kafkaauth import client_options

        asyncio.run(check_broker(settings.kafka_bootstrap, timeout, client_options(settings)))
        asyncio.run(check_redis(settings.redis_url, timeout))
    except (SettingsError, BrokerUnreachable, RedisUnreachable) as exc:
        fail(str(exc))
    out.print(f"broker {settings.kafka_bootstrap} and Redis answer")


@check_app.command("config")
def check_config(
    routing: Annotated[
        Path | None, typer.Option(help="routing file (default: VIGIE_NOTIFY_ROUTING_FILE)")
    ] = None,
    cells: Annotated[
        Path | None, typer.Option(help="cells file (default: VIGIE_NOTIFY_CELLS_FILE)")
    ] = None,
    secrets: Annotated[
        Path | None, typer.Option(help="secrets file (default: VIGIE_NOTIFY_SECRETS_FILE)")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="rules directory (default: VIGIE_RULES_DIR)")
    ] = None,
) -> None:
    """Validate the routing, cells, secrets and rules files offline (no broker, no Redis).

    Every receiver must be a cell; with a secrets file, every cell needs an API
    token and every cell with a webhook channel a webhook secret.
    """
    from dataclasses import replace

    from services.correlate.rules import DEFAULT_DIR
    from services.correlate.settings import CorrelateSettings
    from services.notify.settings import NotifySettings
    from vigie.check import ConfigProblem, check_notify, check_rules, notify_files

    try:
        files = notify_files(load(NotifySettings))
        rules_dir = rules or load(CorrelateSettings).rules_dir or DEFAULT_DIR
    except SettingsError as exc:
        fail(str(exc), 2)
    files = replace(
        files,
        routing=routing or files.routing,
        cells=cells or files.cells,
        secrets=secrets or files.secrets,
    )
    failed = False
    checks: list[Callable[[], str]] = [
        lambda: check_notify(files, complete=files.secrets is not None),
        lambda: check_rules(rules_dir),
    ]
    for run_check in checks:
        try:
            out.print(f"ok: {run_check()}", markup=False, highlight=False, soft_wrap=True)
        except ConfigProblem as exc:
            err.print(f"vigie: {exc}", markup=False, highlight=False, soft_wrap=True)
            failed = True
    if files.secrets is None:
        out.print(
            "note: no secrets file (VIGIE_NOTIFY_SECRETS_FILE or --secrets): "
            "API tokens and webhook secrets not checked",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(1 if failed else 0)


@check_app.command("event")
def check_event(
    file: Annotated[Path, typer.Argument(help="a JSON file: one inbound event (v1 or CloudEvent)")],
    agency: Annotated[
        str | None, typer.Option(help="the agency whose topic it goes to (default: its own)")
    ] = None,
) -> None:
    """Check an inbound event against the v1 contract exactly as ingest would, offline."""
    from services.ingest.settings import IngestSettings
    from vigie.check import ConfigProblem
    from vigie.check import check_event as check_one

    try:
        ingest = load(IngestSettings)
        line = check_one(file, agency, ingest.max_message_bytes, ingest.future_tolerance_s)
    except (SettingsError, ConfigProblem) as exc:
        fail(str(exc))
    out.print(f"ok: {line}", markup=False, highlight=False, soft_wrap=True)
