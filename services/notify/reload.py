"""Hot reload of the routing and cells files.

:class:`ConfigReloader` keeps the active routing and cells and swaps them only
for a valid new pair: both files parse, every receiver is a cell, and the
caller's extra check passes (channels need their settings, the secrets file
names only cells). A bad new version is logged (one error line naming the
problem, once per version) and ignored: the previous configuration stays
active. Changes are detected by content, so a file rewritten within the same
second, or swapped by a Kubernetes ConfigMap update, is seen.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from services.notify.cells import Cells, check_receivers, load_cells
from services.notify.route import Routing, load_routing

log = logging.getLogger("vigie.notify")

Check = Callable[[Routing, Cells], None]


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        try:
            h.update(path.read_bytes())
        except OSError as exc:  # missing for a moment: a version of its own
            h.update(f"unreadable:{exc.errno}".encode())
        h.update(b"\0")
    return h.hexdigest()


class ConfigReloader:
    def __init__(self, routing_path: Path, cells_path: Path, check: Check | None = None) -> None:
        """Load both files; ``ValueError`` (one line) when they are not valid."""
        self.routing_path = Path(routing_path)
        self.cells_path = Path(cells_path)
        self.check = check
        self.seen = _digest(self.routing_path, self.cells_path)
        self.routing, self.cells = self._load()
        self.last_error: str | None = None

    def _load(self) -> tuple[Routing, Cells]:
        routing = load_routing(self.routing_path)
        cells = load_cells(self.cells_path)
        check_receivers(routing, cells)
        if self.check is not None:
            self.check(routing, cells)
        return routing, cells

    def maybe_reload(self, force: bool = False) -> bool:
        """Load the files if they changed (or ``force``); True when a new pair is active."""
        digest = _digest(self.routing_path, self.cells_path)
        if digest == self.seen and not force:
            return False
        self.seen = digest
        try:
            routing, cells = self._load()
        except ValueError as exc:
            self.last_error = str(exc)
            log.error(
                "notify configuration rejected, the previous one stays active",
                extra={"error": self.last_error},
            )
            return False
        self.routing, self.cells, self.last_error = routing, cells, None
        log.info(
            "notify configuration reloaded",
            extra={"routes": len(routing.by_id()), "cells": len(cells.by_id)},
        )
        return True
