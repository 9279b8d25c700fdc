"""The CLI's consoles: one line per message, never wrapped.

Rich wraps at the terminal's width, 80 columns when the output is not a
terminal (pods, CI): ``soft_wrap=True`` keeps every message on its line.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``vigie: message`` as one line on stderr (line breaks in ``message``
    folded to spaces) and exit with ``code``."""
    line = " ".join(str(message).splitlines())
    err.print(f"vigie: {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)
