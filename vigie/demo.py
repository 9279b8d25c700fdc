"""``vigie demo``: the bundled scenario through the whole local pipeline.

Expected outcome of the bundled scenario (``vigie/data/demo.jsonl``):

* the same phone held by police and customs in Marseille → an alert to the
  Bouches-du-Rhône cell (``dept-13``);
* the same vessel tipped by the navy and seized by customs at Le Havre → an
  alert to the Seine-Maritime cell (``dept-76``);
* a vehicle seen twice by the police only, a gendarmerie arrest in Corsica:
  no alert;
* an event with an unknown type and one on the wrong agency's topic: refused
  to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vigie.replay import parse_lines, publish
from vigie.stack import Pipeline

EXPECTED_CELLS = {"dept-13", "dept-76"}


def bundled_scenario() -> Path:
    return Path(str(resources.files("vigie") / "data" / "demo.jsonl"))


def _pointer(evidence: dict[str, str | None]) -> str:
    """``agency case (contact)``: who to call, never the file."""
    case = evidence.get("case_ref") or "-"
    return f"{evidence.get('agency')} {case} ({evidence.get('contact') or '-'})"


#: The cell whose console the demo opens (its alert is in the bundled scenario).
CONSOLE_CELL = "dept-13"


def _secrets_file(workdir: Path) -> tuple[Path, str]:
    """A secrets file with a fresh API token per run for the demo's cells (0600)."""
    tokens = {cell: secrets.token_urlsafe(24) for cell in sorted(EXPECTED_CELLS)}
    path = workdir / "secrets.yml"
    path.touch(mode=0o600)
    path.write_text(json.dumps({"api_tokens": tokens}))
    return path, tokens[CONSOLE_CELL]


def keep_up(out: Console, keep: bool | None) -> None:
    """Keep the stack up until Ctrl-C when ``keep`` (default: when stdin is a
    terminal, so a non-interactive run never hangs); else say how to."""
    if keep is None:
        keep = sys.stdin.isatty()
    if not keep:
        out.print(
            "stack stopped; run `vigie demo --keep` (or `make demo` in a terminal) to keep it up"
        )
        return
    out.print("the stack stays up: press Ctrl-C to stop it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        out.print("stopping")


def run_demo(scenario: Path | None, timeout: float, out: Console, keep: bool | None = None) -> int:
    """Run the scenario; return 0 when the expected cells were notified. Ends by
    printing the console's URL and a token for one cell (:func:`keep_up`)."""
    path = scenario or bundled_scenario()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="vigie-demo-"))
    secrets_path, token = _secrets_file(workdir)
    env = {"VIGIE_NOTIFY_SECRETS_FILE": str(secrets_path)}
    with Pipeline(workdir=workdir, extra_env=env) as pipeline:
        assert pipeline.stack is not None and pipeline.receiver is not None
        out.print(
            f"stack ready in {time.monotonic() - started:.1f}s "
            f"(broker {pipeline.stack.bootstrap}, Redis {pipeline.stack.redis_url})"
        )
        lines, bad = parse_lines(path.read_text().splitlines(), pipeline.topics)
        # One line on purpose goes to another agency's topic to show the DLQ.
        lines = [
            ln
            if b'"event_id":"dip-2026-0003"' not in ln.value
            else type(ln)(ln.number, pipeline.topics.inbound("diplomatie"), ln.key, ln.value)
            for ln in lines
        ]
        sent = asyncio.run(publish(pipeline.stack.bootstrap, lines))
        out.print(f"replayed {sent} events from {path.name} ({len(bad)} unparsable lines)")
        receiver = pipeline.receiver
        expected = EXPECTED_CELLS if scenario is None else set()
        receiver.wait_for(lambda r: expected <= set(r.by_cell()), timeout)
        time.sleep(1.0)  # let stragglers (which would be wrong) show up
        table = Table(title="What each cell received")
        for col in ("cell", "severity", "rule", "summary", "evidence (pointers)"):
            table.add_column(col)
        for cell, deliveries in sorted(receiver.by_cell().items()):
            for d in deliveries:
                for a in d.body["alerts"]:
                    table.add_row(
                        cell,
                        a["labels"].get("severity", ""),
                        a["labels"].get("rule", ""),
                        a["annotations"].get("summary", ""),
                        "; ".join(_pointer(e) for e in a.get("evidence", []))
                        or "pointer only (handling above the cell's clearance)",
                    )
        out.print(table)
        got = set(receiver.by_cell())
        out.print(f"done in {time.monotonic() - started:.1f}s")
        if scenario is None and got != EXPECTED_CELLS:
            out.print(f"[red]expected cells {sorted(EXPECTED_CELLS)}, got {sorted(got)}[/]")
            return 1
        port = pipeline.services["notify"].port
        out.print(f"console: http://127.0.0.1:{port}/console/  (cell {CONSOLE_CELL})")
        out.print(f"sign-in token for {CONSOLE_CELL}: {token}", markup=False, highlight=False)
        out.print(f"terminal: VIGIE_TOKEN=… vigie alerts list --url http://127.0.0.1:{port}")
        keep_up(out, keep)
    return 0
