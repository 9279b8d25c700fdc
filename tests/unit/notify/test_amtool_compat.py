"""Vigie picks the same receivers as Alertmanager's own ``amtool config routes test``.

Needs ``amtool`` (Debian ``prometheus-alertmanager``); skips with a clear
message when it is absent (``make test`` installs it on the build machine).
"""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.notify.route import default_routing_path, load_routing
from tests.unit.notify.test_route import CONFIG

AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)"
)


def amtool_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = subprocess.run(
        [AMTOOL, "config", "routes", "test", "--config.file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip().split(",")


def label_sets(seed: int, n: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    depts = ["13", "2A", "2B", "75", "76", "971", "976", "01", "59", "70", "79", ""]
    sevs = ["info", "warning", "high", "critical", ""]
    axes = ["organisations", "circulation", ""]
    rules = ["target_deconfliction", "x", "violence_cluster", ""]
    every = list(itertools.product(depts, sevs, axes, rules))
    rng.shuffle(every)
    out = []
    for d, s, a, r in every[:n]:
        out.append(
            {k: v for k, v in {"department": d, "severity": s, "axis": a, "rule": r}.items() if v}
        )
    return out


@pytest.mark.parametrize("which", ["feature-file", "shipped"])
def test_same_receivers_as_amtool(which: str, tmp_path: Path) -> None:
    if which == "shipped":
        path = default_routing_path()
    else:
        path = tmp_path / "routing.yml"
        path.write_text(CONFIG)
    routing = load_routing(path)
    cases = label_sets(seed=5, n=120)
    with ThreadPoolExecutor(4) as pool:
        expected = list(pool.map(lambda lbl: amtool_receivers(path, lbl), cases))
    mismatches = [
        (lbl, exp, routing.receivers_for(lbl))
        for lbl, exp in zip(cases, expected, strict=True)
        if routing.receivers_for(lbl) != exp
    ]
    assert not mismatches, mismatches[:5]
    assert len({tuple(e) for e in expected}) > 4  # the cases exercise several routes
