"""``vigie routes test --config FILE label=value...``: the receivers a label set reaches.

Prints them on one line, comma-separated, in route order (as
``amtool config routes test`` does). A bad file or label prints one line on
``err`` and returns 1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from services.notify.route import RoutingError, load_routing

_LABEL = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)=(.*)$")


def parse_labels(items: list[str]) -> dict[str, str]:
    """``name=value`` pairs (value optionally double-quoted); ``ValueError`` otherwise."""
    labels: dict[str, str] = {}
    for item in items:
        m = _LABEL.match(item.strip())
        if not m:
            raise ValueError(f"bad label {item!r} (expected name=value)")
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        labels[m.group(1)] = value
    return labels


def cli_routes_test(config: Path, labels: list[str], out: Any, err: Any) -> int:
    try:
        routing = load_routing(config)
        lset = parse_labels(labels)
    except (RoutingError, ValueError) as exc:
        err.print(f"vigie: {exc}", markup=False, highlight=False)
        return 1
    out.print(",".join(routing.receivers_for(lset)), markup=False, highlight=False)
    return 0
