"""User errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from shared.localstack import LocalStack, free_port


def vigie(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vigie", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )


def test_run_with_unreachable_broker_names_the_address() -> None:
    port = free_port()
    res = vigie(
        "run",
        "ingest",
        env={"VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "VIGIE_PSEUDO_KEY": "x" * 32},
    )
    assert res.returncode != 0
    assert f"127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_run_with_unreachable_redis(stack: LocalStack) -> None:
    port = free_port()
    res = vigie(
        "run",
        "correlate",
        env={
            "VIGIE_KAFKA_BOOTSTRAP": stack.bootstrap,
            "VIGIE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        },
    )
    assert res.returncode != 0
    assert f"127.0.0.1:{port}" in res.stderr and "Redis" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_setting_is_one_line() -> None:
    res = vigie("run", "notify", env={"VIGIE_KAFKA_BOOTSTRAP": "no-port-here"})
    assert res.returncode != 0
    assert "VIGIE_KAFKA_BOOTSTRAP" in res.stderr
    assert "Traceback" not in res.stderr


def test_replay_reports_bad_lines_and_exits_non_zero(
    stack: LocalStack, tmp_path: Path, topic_prefix: str
) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text('{"agency": "police", "event_id": "a"}\nnot json\n[1]\n{"agency": "nope"}\n')
    res = vigie(
        "replay",
        str(f),
        env={"VIGIE_KAFKA_BOOTSTRAP": stack.bootstrap, "VIGIE_TOPIC_PREFIX": topic_prefix},
    )
    assert res.returncode == 1
    assert "line 2" in res.stderr and "line 3" in res.stderr and "line 4" in res.stderr
    assert "sent 1 event(s), skipped 3 bad line(s)" in res.stdout
    assert "Traceback" not in res.stderr


def test_replay_unreachable_broker(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text('{"agency": "police", "event_id": "a"}\n')
    port = free_port()
    res = vigie("replay", str(f), env={"VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert res.returncode == 1
    assert f"127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


def test_help_of_every_command() -> None:
    for args in (
        [],
        ["run"],
        ["replay"],
        ["up"],
        ["demo"],
        ["rules", "test"],
        ["routes", "test"],
        ["bench"],
    ):
        res = vigie(*args, "--help")
        assert res.returncode == 0, args
        assert "Usage" in res.stdout


def test_run_checks_the_configuration_before_the_broker(tmp_path: Path) -> None:
    """A bad routing file is reported as such even when the broker is down."""
    routing = tmp_path / "routing.yml"
    routing.write_text("route:\n  receiver: nobody\nreceivers: [{name: nobody}]\n")
    port = free_port()
    res = vigie(
        "run",
        "notify",
        env={
            "VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
            "VIGIE_NOTIFY_ROUTING_FILE": str(routing),
        },
    )
    assert res.returncode != 0
    assert "receiver 'nobody' of the routing file is not a cell" in res.stderr
    assert "Kafka" not in res.stderr and "Traceback" not in res.stderr
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text("id: x\n")
    res = vigie(
        "run",
        "correlate",
        env={"VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "VIGIE_RULES_DIR": str(rules)},
    )
    assert res.returncode != 0 and "bad.yaml" in res.stderr and "Kafka" not in res.stderr


def test_check_config_offline(tmp_path: Path) -> None:
    """No broker, no Redis: the shipped files pass; a secrets file missing a cell fails."""
    dead = {"VIGIE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    res = vigie("check", "config", env=dead)
    assert res.returncode == 0, res.stderr
    assert "116 cells" in res.stdout and "rules" in res.stdout
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("api_tokens: {hq: tok-0123456789}\n")
    res = vigie("check", "config", "--secrets", str(secrets), env=dead)
    assert res.returncode == 1
    [line] = res.stderr.strip().splitlines()
    assert str(secrets) in line and "no webhook secret" in line and "(and 230 more)" in line


def test_check_event_file(tmp_path: Path) -> None:
    f = tmp_path / "ev.json"
    f.write_text('{"event_id": "A-1", "agency": "police", "type": "picnic"}')
    res = vigie("check", "event", str(f))
    assert res.returncode == 1
    [line] = res.stderr.strip().splitlines()
    assert str(f) in line and "schema" in line
    f.write_text(
        '{"event_id": "A-1", "agency": "police", "type": "seizure",'
        ' "occurred_at": "2026-01-01T00:00:00Z"}'
    )
    res = vigie("check", "event", str(f))
    assert res.returncode == 0 and "A-1" in res.stdout


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_issue_16_cases_are_one_unwrapped_line(tmp_path: Path) -> None:
    """No traceback for a non-UTF-8 rule file, VIGIE_WEB_PORT=0, a web port in use;
    long errors are not wrapped at 80 columns when stderr is not a terminal."""
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "r.yaml").write_bytes(b"id: \xff\xfe\n")
    line = one_line(vigie("rules", "test", str(bad)))
    assert f"{bad / 'r.yaml'}:1: not UTF-8 text" in line

    key = {"VIGIE_PSEUDO_KEY": "x" * 32}
    line = one_line(vigie("run", "ingest", env={**key, "VIGIE_WEB_PORT": "0"}))
    assert "VIGIE_WEB_PORT" in line

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**key, "VIGIE_WEB_PORT": str(port), "VIGIE_WEB_HOST": "127.0.0.1"}
        line = one_line(vigie("run", "ingest", env=env))
    assert f"VIGIE_WEB_PORT {port}" in line and "already in use" in line

    event = tmp_path / "event.json"
    event.write_text('{"event_id": "x", "agency": "police", "type": "picnic"}')
    line = one_line(vigie("check", "event", str(event)))
    assert len(line) > 200 and "operation_report" in line  # the whole list, one line

    routing = tmp_path / "routing.yml"
    routing.write_text("route:\n  receiver: hq\n  gruop_by: [rule]\nreceivers: [{name: hq}]\n")
    line = one_line(vigie("routes", "test", "--config", str(routing), "rule=x"))
    assert line == f"vigie: {routing}:3: route: `gruop_by`: unknown key, did you mean `group_by`?"
