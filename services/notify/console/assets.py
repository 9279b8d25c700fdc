"""Where the console's front-end packages are: the repository's ``node_modules``.

``make install`` runs ``npm ci --ignore-scripts`` at the repository root from
``package.json`` and ``package-lock.json`` (DSFR, its chart package, axe-core).
``VIGIE_CONSOLE_ASSETS`` points elsewhere (a container image copies them).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DSFR_DIST = ("@gouvfr", "dsfr", "dist")


def node_modules() -> Path:
    return Path(os.environ.get("VIGIE_CONSOLE_ASSETS") or REPO / "node_modules")


def dsfr_dist() -> Path:
    return node_modules().joinpath(*DSFR_DIST)
