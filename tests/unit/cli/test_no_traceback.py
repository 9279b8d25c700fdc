"""Every ``vigie`` subcommand, given bad arguments, exits non-zero with one line on
stderr and no traceback (README: "never prints a traceback for a user error").

The commands are enumerated from the CLI itself, so a new subcommand is covered
without editing this file. Run in-process through the console script's
``main()`` (the real error handling), with arguments that fail before anything
is started: an unknown option, and a missing or bad positional argument.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import typer.main

from vigie.cli import app, main


def _leaves(cmd: object, path: list[str]) -> Iterator[list[str]]:
    subs = getattr(cmd, "commands", None)
    if subs:
        yield path  # a group: bad arguments to the group itself too
        for name, sub in subs.items():
            yield from _leaves(sub, [*path, name])
    else:
        yield path


COMMANDS = list(_leaves(typer.main.get_command(app), []))
BAD = [["--no-such-option"], ["--no-such-option", "x"], ["@@not-a-thing@@", "--bogus=1"]]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["vigie", *argv]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    code = exc.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def test_the_cli_has_commands() -> None:
    assert len(COMMANDS) >= 12
    assert ["check", "event"] in COMMANDS and ["rules", "test"] in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vigie")
@pytest.mark.parametrize("bad", BAD, ids=["option", "option+arg", "positional"])
def test_bad_arguments_give_one_line_and_no_traceback(
    command: list[str], bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run([*command, *bad], capsys)
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vigie: ") and len(lines[0]) > 10
