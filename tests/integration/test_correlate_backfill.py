"""``vigie replay`` of a large file: streamed, resumable from a checkpoint (real broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.localstack import LocalStack
from shared.topics import Topics
from tests.kafkautil import consume_all
from vigie.replay import Checkpoint


def _vigie(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigie", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


async def test_replay_resumes_after_its_checkpoint(
    stack: LocalStack, tmp_path: Path, topic_prefix: str
) -> None:
    lines = [
        json.dumps({"agency": "police", "event_id": f"e{i}", "type": "seizure"})
        for i in range(2500)
    ]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    mark = tmp_path / "replay.checkpoint"
    Checkpoint(mark, src).save(1000)  # as if a first run had been stopped there
    env = {"VIGIE_KAFKA_BOOTSTRAP": stack.bootstrap, "VIGIE_TOPIC_PREFIX": topic_prefix}
    res = _vigie("replay", str(src), "--checkpoint", str(mark), env=env)
    assert res.returncode == 0, res.stderr
    assert "sent 1500 event(s)" in res.stdout
    assert Checkpoint(mark, src).load() == 2500
    topic = Topics(topic_prefix).inbound("police")
    records = await consume_all(stack.bootstrap, topic, expect=1500)  # replay has exited
    got = sorted(json.loads(r.value)["event_id"] for r in records)
    assert got == sorted(f"e{i}" for i in range(1000, 2500))
    # done: a third run sends nothing
    res = _vigie("replay", str(src), "--checkpoint", str(mark), env=env)
    assert res.returncode == 0 and "sent 0 event(s)" in res.stdout
    # a checkpoint of another file is refused, one line
    src.write_text(src.read_text() + lines[0] + "\n")
    res = _vigie("replay", str(src), "--checkpoint", str(mark), env=env)
    assert res.returncode == 2 and "checkpoint of another file" in res.stderr
    assert "Traceback" not in res.stderr
