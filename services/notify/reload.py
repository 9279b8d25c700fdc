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

import logging
from collections.abc import Callable
from pathlib import Path

from services.notify.cells import Cells, check_receivers, load_cells
from services.notify.route import Routing, load_routing
from shared.config import Reloader

log = logging.getLogger("vigie.notify")

Check = Callable[[Routing, Cells], None]


class ConfigReloader(Reloader[tuple[Routing, Cells]]):
    """The active (routing, cells) pair, on :class:`shared.config.Reloader`."""

    def __init__(self, routing_path: Path, cells_path: Path, check: Check | None = None) -> None:
        """Load both files; ``ValueError`` (one line) when they are not valid."""
        self.routing_path = Path(routing_path)
        self.cells_path = Path(cells_path)
        self.check = check
        super().__init__(
            [self.routing_path, self.cells_path],
            self._load_pair,
            "notify configuration",
            log,
            lambda pair: {"routes": len(pair[0].by_id()), "cells": len(pair[1].by_id)},
        )

    def _load_pair(self) -> tuple[Routing, Cells]:
        routing = load_routing(self.routing_path)
        cells = load_cells(self.cells_path)
        check_receivers(routing, cells)
        if self.check is not None:
            self.check(routing, cells)
        return routing, cells

    @property
    def routing(self) -> Routing:
        return self.active[0]

    @property
    def cells(self) -> Cells:
        return self.active[1]
