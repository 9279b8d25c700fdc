"""Read docs/metrics.md: the documented metrics of each service.

The doc has one table per service (``| name | type | labels | meaning |``);
names are in backquotes, labels a comma-separated list of backquoted names or
``-``. Faust's sensor metrics (``vigie_<svc>_faust_*``) and the process/Python
collectors are documented as groups, outside the tables, and are not compared
one by one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"

_ROW = re.compile(
    r"^\|\s*`(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(?P<type>\w+)\s*\|"
    r"\s*(?P<labels>[^|]*)\|"
)


@dataclass(frozen=True)
class Documented:
    name: str
    type: str
    labels: frozenset[str]


def documented(path: Path = DOC) -> dict[str, Documented]:
    """Every metric row of the doc, by name. Raises ValueError on a duplicate row."""
    out: dict[str, Documented] = {}
    for line in path.read_text().splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        labels = frozenset(re.findall(r"`([a-zA-Z_][a-zA-Z0-9_]*)`", m["labels"]))
        if m["name"] in out:
            raise ValueError(f"{m['name']} documented twice")
        out[m["name"]] = Documented(m["name"], m["type"].lower(), labels)
    return out


def is_grouped(name: str) -> bool:
    """Metrics documented as a group: Faust's sensor, process and Python collectors."""
    return re.match(
        r"^vigie_(ingest|correlate|notify)_faust_", name
    ) is not None or name.startswith(("process_", "python_"))


def rows(families: list[tuple[str, str, list[str], str]]) -> str:
    """Markdown rows ``| name | type | labels | meaning |`` (to draft the doc)."""
    lines = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_ in sorted(families):
        shown = ", ".join(f"`{lb}`" for lb in sorted(labels)) or "-"
        lines.append(f"| `{name}` | {kind} | {shown} | {help_} |")
    return "\n".join(lines)
