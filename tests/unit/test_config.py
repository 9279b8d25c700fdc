"""shared.config: located one-line errors, did-you-mean, durations, the reloader."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from services.correlate.rules.loader import RuleError, load_dir
from services.notify.cells import CellsError, load_cells, load_secrets
from services.notify.route import RoutingError, default_routing_path, load_routing
from shared.config import ConfigError, Reloader, did_you_mean, load_yaml, parse_duration, validate


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_by: list[str] = []
    window: str = "1d"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: list[Inner] = []


def test_did_you_mean() -> None:
    assert did_you_mean("gruop_by", ["group_by", "window"]) == (
        "`gruop_by`: unknown key, did you mean `group_by`?"
    )
    assert did_you_mean("zzz", ["group_by"]) == "`zzz`: unknown key"


def test_yaml_errors_name_the_file_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "x.yml"
    f.write_text("a: 1\nb: [oops\n")
    with pytest.raises(ConfigError, match=r"x\.yml:3:1: not valid YAML"):
        load_yaml(f)
    f.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(ConfigError, match=r"x\.yml:2: not UTF-8 text \(byte 8\)"):
        load_yaml(f)
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.yml: No such file"):
        load_yaml(tmp_path / "nope.yml")


def test_a_misspelled_key_is_unknown_with_its_line_not_the_right_one_missing(
    tmp_path: Path,
) -> None:
    f = tmp_path / "x.yml"
    f.write_text("name: a\ninner:\n  - window: 2d\n    gruop_by: [x]\n")
    with pytest.raises(ConfigError) as exc:
        validate(load_yaml(f), Outer)
    assert str(exc.value) == (f"{f}:4: inner.0: `gruop_by`: unknown key, did you mean `group_by`?")
    f.write_text("inner: []\n")
    with pytest.raises(ConfigError, match=r"x\.yml:1: name: Field required"):
        validate(load_yaml(f), Outer)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("30s", 30), ("1h30m", 5400), ("90d", 90 * 86400), ("1w", 604800), ("5ms", 0.005)],
)
def test_one_duration_parser(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "1 day", "-1s", "1s1h", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(bad)


def test_reloader_keeps_the_previous_value_on_a_bad_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "x.yml"
    f.write_text("name: a\n")

    def load() -> Outer:
        model: Outer = validate(load_yaml(f), Outer)
        return model

    r = Reloader([f], load, "thing", logging.getLogger("t"))
    assert r.active.name == "a" and not r.maybe_reload()
    f.write_text("nme: b\n")
    with caplog.at_level(logging.ERROR, logger="t"):
        assert not r.maybe_reload()
    assert r.active.name == "a" and r.last_error and "did you mean `name`" in r.last_error
    assert [rec.getMessage() for rec in caplog.records] == [
        "thing rejected, the previous one stays active"
    ]
    f.write_text("name: b\n")
    assert r.maybe_reload() and r.active.name == "b" and r.last_error is None


# -- the cases of issue 16, on the real loaders ------------------------------


def test_routing_file_errors_name_file_line_and_route(tmp_path: Path) -> None:
    text = default_routing_path().read_text()
    f = tmp_path / "routing.yml"
    cases = [
        (
            text.replace("  group_by: [rule, department]", "  gruop_by: [rule, department]", 1),
            ":9: route: `gruop_by`: unknown key, did you mean `group_by`?",
        ),
        (
            text.replace("      group_wait: 0s", "      group_wait: soon", 1),
            ":16: route.routes.0.group_wait: bad duration 'soon'",
        ),
        (
            text.replace("""matchers: ['severity="critical"']""", "matchers: ['=x']", 1),
            ":15: route.routes.0.matchers: bad matcher '=x'",
        ),
        (
            text.replace("      continue: true", "      contineu: true", 1),
            ":19: route.routes.0: `contineu`: unknown key, did you mean `continue`?",
        ),
    ]
    for changed, message in cases:
        f.write_text(changed)
        with pytest.raises(RoutingError) as exc:
            load_routing(f)
        assert str(exc.value).startswith(str(f)) and message in str(exc.value)
        assert "\n" not in str(exc.value)
    f.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe")
    with pytest.raises(RoutingError, match=r"routing\.yml:1: not UTF-8 text"):
        load_routing(f)


def test_cells_and_secrets_errors(tmp_path: Path) -> None:
    f = tmp_path / "cells.yml"
    f.write_text("cells:\n  hq:\n    clearence: secret\n")
    with pytest.raises(
        CellsError,
        match=r"cells\.yml:3: cells\.hq: `clearence`: unknown key, did you mean `clearance`\?",
    ):
        load_cells(f)
    f.write_text("cells:\n  hq:\n    ack_timeout: ten minutes\n")
    with pytest.raises(CellsError, match=r"cells\.yml:3: cells\.hq\.ack_timeout: bad duration"):
        load_cells(f)
    f.write_text("cells:\n  hq: {}\n")
    s = tmp_path / "secrets.yml"
    s.write_text("api_tokens:\n  hq: tok-0123456789\nwebhok_secrets: {}\n")
    with pytest.raises(CellsError) as exc:
        load_secrets(s, load_cells(f))
    assert (
        str(exc.value) == f"{s}:3: `webhok_secrets`: unknown key, did you mean `webhook_secrets`?"
    )
    assert "tok-0123456789" not in str(exc.value)


def test_rule_errors(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("")
    with pytest.raises(RuleError, match=r"r\.yaml: empty file, no rule in it"):
        load_dir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "id: c\ntitle: C\nkind: threshold\nseverity: high\nfilter: {types: [shooting]}\n"
        "gruop_by: [department]\ncount: 3\nwindow: 7d\n"
    )
    with pytest.raises(RuleError) as exc:
        load_dir(tmp_path)
    assert str(exc.value) == (
        f"{tmp_path / 'r.yaml'}:6: rule 'c': `gruop_by`: unknown key, did you mean `group_by`?"
    )
    (tmp_path / "r.yaml").write_bytes(b"id: \xff\n")
    with pytest.raises(RuleError, match=r"r\.yaml:1: not UTF-8 text"):
        load_dir(tmp_path)


def test_keys_with_newlines_stay_on_one_line(tmp_path: Path) -> None:
    """Found by tests/unit/test_config_fuzz.py: a key holding a newline was echoed as is."""
    f = tmp_path / "routing.yml"
    f.write_text('"\\n": 1\nroute: {receiver: hq}\nreceivers: [{name: hq}]\n')
    with pytest.raises(RoutingError) as exc:
        load_routing(f)
    assert str(exc.value) == f"{f}:1: `'\\n'`: unknown key"
    s = tmp_path / "secrets.yml"
    s.write_text('api_tokens: {"a\\nb": x}\n')
    (tmp_path / "cells.yml").write_text("cells:\n  hq: {}\n")
    with pytest.raises(CellsError) as exc2:
        load_secrets(s, load_cells(tmp_path / "cells.yml"))
    assert "\n" not in str(exc2.value) and "is not a cell" in str(exc2.value)
