"""Hot reload of the routing and cells files: a valid new pair is taken, a bad one
is logged and ignored while the previous one stays active."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from services.notify.cells import Cells
from services.notify.reload import ConfigReloader
from services.notify.route import Routing

CELLS = {"cells": {"hq": {"clearance": "secret"}, "dept-13": {"escalate_to": "hq"}}}


def routing(receiver: str) -> dict[str, object]:
    return {
        "route": {
            "receiver": "hq",
            "routes": [{"receiver": receiver, "matchers": ['department="13"']}],
        },
        "receivers": [{"name": n} for n in dict.fromkeys(["hq", receiver])],
    }


def receivers(r: Routing) -> list[str]:
    return [x.receiver for x in r.route.match({"department": "13"})]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rpath, cpath = tmp_path / "routing.yml", tmp_path / "cells.yml"
    rpath.write_text(yaml.safe_dump(routing("hq")))
    cpath.write_text(yaml.safe_dump(CELLS))
    return rpath, cpath


def test_a_valid_change_is_taken(files: tuple[Path, Path]) -> None:
    rpath, cpath = files
    r = ConfigReloader(rpath, cpath)
    assert receivers(r.routing) == ["hq"]
    assert not r.maybe_reload()  # nothing changed
    rpath.write_text(yaml.safe_dump(routing("dept-13")))  # same second: seen by content
    assert r.maybe_reload()
    assert receivers(r.routing) == ["dept-13"] and r.last_error is None
    assert r.maybe_reload(force=True)  # SIGHUP: loaded again even if unchanged


@pytest.mark.parametrize(
    ("which", "text", "error"),
    [
        ("routing", "route: [unclosed", "YAML"),
        ("routing", yaml.safe_dump(routing("dept-76")), "dept-76"),  # not a cell
        ("cells", yaml.safe_dump({"cells": {"hq": {"clearance": "top"}}}), "cells"),
        ("cells", None, "cannot read"),  # deleted
    ],
)
def test_a_bad_change_is_logged_and_ignored(
    files: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    which: str,
    text: str | None,
    error: str,
) -> None:
    rpath, cpath = files
    r = ConfigReloader(rpath, cpath)
    before_routing, before_cells = r.routing, r.cells
    path = rpath if which == "routing" else cpath
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    with caplog.at_level(logging.ERROR, logger="vigie.notify"):
        assert not r.maybe_reload()
    assert r.routing is before_routing and r.cells is before_cells  # still active
    assert r.last_error and error in r.last_error
    assert [rec.getMessage() for rec in caplog.records] == [
        "notify configuration rejected, the previous one stays active"
    ]
    caplog.clear()
    assert not r.maybe_reload()  # the same bad version is not logged again
    assert caplog.records == []
    # fixed: taken
    rpath.write_text(yaml.safe_dump(routing("dept-13")))
    cpath.write_text(yaml.safe_dump(CELLS))
    assert r.maybe_reload() and receivers(r.routing) == ["dept-13"]


def test_the_caller_check_rejects_too(files: tuple[Path, Path]) -> None:
    rpath, cpath = files

    def no_dept_13(_r: Routing, cells: Cells) -> None:
        if "dept-13" in cells and len(cells.by_id) > 2:
            raise ValueError("dept-13 must stay alone")

    r = ConfigReloader(rpath, cpath, no_dept_13)
    more = {"cells": {**CELLS["cells"], "dept-76": {"escalate_to": "hq"}}}
    cpath.write_text(yaml.safe_dump(more))
    assert not r.maybe_reload() and r.last_error == "dept-13 must stay alone"
    assert "dept-76" not in r.cells
