"""Fuzz of the configuration loaders: whatever the bytes of a routing, cells,
secrets or rule file, loading either succeeds or raises the loader's one-line
error (a ``ConfigError``) - never another exception, never a multi-line message.

Inputs: arbitrary bytes, arbitrary YAML documents, and the shipped files with
one line deleted, duplicated or changed (the realistic typo). Run size:
``VIGIE_FUZZ_EXAMPLES`` examples per loader (default 200).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.notify.cells import default_cells_path, load_cells, load_secrets
from services.notify.route import default_routing_path, load_routing
from shared.config import ConfigError

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ROUTING = default_routing_path().read_text().splitlines()
CELLS = default_cells_path().read_text().splitlines()
RULES = (DEFAULT_DIR / "violence.yaml").read_text().splitlines()
CELLS_OBJ = load_cells(default_cells_path())

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12)
            | st.sampled_from(
                [
                    "route",
                    "receivers",
                    "cells",
                    "routes",
                    "matchers",
                    "group_by",
                    "rules",
                    "id",
                    "kind",
                    "api_tokens",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@st.composite
def mutated(draw: st.DrawFn, lines: list[str]) -> bytes:
    """The shipped file with a few lines deleted, duplicated or overwritten."""
    out = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate"]))
        if op == "delete":
            del out[i]
        elif op == "duplicate":
            out.insert(i, out[i])
        elif op == "replace":
            out[i] = out[i][: len(out[i]) // 2] + draw(st.text(max_size=10))
        else:
            out[i] = out[i][: draw(st.integers(0, len(out[i])))]
    return "\n".join(out).encode("utf-8", "surrogatepass")


def inputs(lines: list[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=400),
        documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
        mutated(lines),
    )


def one_line(load: Any, path: Path) -> None:
    try:
        load(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)


@FUZZ
@given(inputs(ROUTING))
def test_routing_loader(tmp_path_factory: Any, data: bytes) -> None:
    f = tmp_path_factory.mktemp("r") / "routing.yml"
    f.write_bytes(data)
    one_line(load_routing, f)


@FUZZ
@given(inputs(CELLS))
def test_cells_loader(tmp_path_factory: Any, data: bytes) -> None:
    f = tmp_path_factory.mktemp("c") / "cells.yml"
    f.write_bytes(data)
    one_line(load_cells, f)
    one_line(lambda p: load_secrets(p, CELLS_OBJ), f)


@FUZZ
@given(inputs(RULES))
def test_rules_loader(tmp_path_factory: Any, data: bytes) -> None:
    d = tmp_path_factory.mktemp("rules")
    (d / "r.yaml").write_bytes(data)
    one_line(load_dir, d)
