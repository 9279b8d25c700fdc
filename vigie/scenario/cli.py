"""``vigie scenario generate``: write a seeded scenario and its expectations to a folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

scenario_app = typer.Typer(
    help="Seeded scenarios: events plus expected alerts and notifications.", no_args_is_help=True
)


@scenario_app.command("generate")
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", help="folder to write the files into")],
    seed: Annotated[int, typer.Option(help="random seed: same seed, same files")] = 1,
    days: Annotated[int, typer.Option(help="days of background traffic", min=3, max=366)] = 14,
    start: Annotated[
        str, typer.Option(help="first day (YYYY-MM-DD, UTC); fixed so output is reproducible")
    ] = "2026-10-01",
    volume: Annotated[
        float, typer.Option(help="background volume multiplier (1.0: ~30 events/day)", min=0)
    ] = 1.0,
) -> None:
    """Write events, expected alerts, expected notifications and near-misses (JSON Lines)."""
    from vigie.scenario.generate import generate, write

    err = Console(stderr=True, soft_wrap=True)  # one line, never wrapped
    try:
        first = datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        err.print(f"vigie: --start {start!r} is not a YYYY-MM-DD date", markup=False)
        raise typer.Exit(2) from None
    try:
        scenario = generate(seed, days, first, volume)
        paths = write(scenario, out)
    except ValueError as exc:
        err.print(f"vigie: {exc}", markup=False)
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"vigie: cannot write to {out}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None
    Console(soft_wrap=True).print(
        f"{len(scenario.events)} events, {len(scenario.expected_alerts)} expected alerts, "
        f"{len(scenario.expected_notifications)} expected notifications, "
        f"{len(scenario.near_misses)} near-misses → {paths['events'].parent}",
        markup=False,
        highlight=False,
    )
