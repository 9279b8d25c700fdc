"""France by département (metropolitan and overseas) as SVG paths, for the map page.

The outlines are those the State's design system ships in its chart package
``@gouvfr/dsfr-chart`` (``dist/MapChart/MapChart.js``, MIT licence, Service
d'information du Gouvernement), installed from npm by ``make install`` with the
lockfile. They are read from that file once, at first use: each
``class: "FR-<code>" ... d: "<path>"`` pair; the metropolitan map's viewBox is
1010 x 1010, each overseas département has its own small viewBox (the one
before its path). No tile or outline is fetched from the internet.
A missing package gives an empty map (the page says so), never an error.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from services.notify.console.assets import node_modules

MAP_JS = ("@gouvfr", "dsfr-chart", "dist", "MapChart", "MapChart.js")
METRO_VIEWBOX = "0 0 1010 1010"
OVERSEAS = ("971", "972", "973", "974", "976")
NAMES_OVERSEAS = {
    "971": "Guadeloupe",
    "972": "Martinique",
    "973": "Guyane",
    "974": "La Réunion",
    "976": "Mayotte",
}

_PATH = re.compile(r'class: "FR-(\w{2,3})",\s*(?:style: [^\n]*\n\s*)?d: "([^"]+)"')
_SMALL_VIEWBOX = re.compile(r'viewBox: "(0 0 \d+ 50)"')


@dataclass(frozen=True)
class Outline:
    code: str
    path: str
    viewbox: str


@functools.cache
def outlines() -> tuple[Outline, ...]:
    """Every département's outline (regions of the chart package left out)."""
    js = node_modules().joinpath(*MAP_JS)
    try:
        text = js.read_text(encoding="utf-8")
    except OSError:
        return ()
    return parse(text)


def parse(text: str) -> tuple[Outline, ...]:
    boxes = [(m.start(), m.group(1)) for m in _SMALL_VIEWBOX.finditer(text)]
    out: dict[str, Outline] = {}
    for m in _PATH.finditer(text):
        code = m.group(1)
        if not (code[:2].isdigit() or code in ("2A", "2B")) or code in out:
            continue
        box = METRO_VIEWBOX
        if code in OVERSEAS:
            before = [b for pos, b in boxes if pos < m.start()]
            box = before[-1] if before else "0 0 50 50"
        out[code] = Outline(code, m.group(2), box)
    return tuple(sorted(out.values(), key=lambda o: o.code))


def source_file() -> Path:
    return node_modules().joinpath(*MAP_JS)
