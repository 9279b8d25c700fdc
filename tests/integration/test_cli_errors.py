"""User errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import os
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
