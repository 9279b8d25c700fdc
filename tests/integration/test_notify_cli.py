"""``vigie alerts …`` and ``vigie silences …`` against a real notify (real broker, Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from shared.localstack import LocalStack
from tests.kafkautil import produce
from tests.notifystack import TOKENS, alert, start_notify
from tests.waiting import wait_for
from vigie.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("notify-cli")
    uid = work.name.replace("-", "").replace("_", "")[-10:]
    p = start_notify(stack, work, f"test-cli{uid}.", f"vigietest:cli{uid}")
    base = f"http://127.0.0.1:{p.services['notify'].port}"
    try:
        asyncio.run(produce(stack.bootstrap, p.topics.alerts, [alert(1), alert(2, dept="76")]))
        h = {"Authorization": f"Bearer {TOKENS['dept-13']}"}
        wait_for(
            lambda: httpx.get(f"{base}/api/v1/alerts", headers=h).json()["alerts"],
            30,
            "dept-13 lists an alert",
        )
        yield base
    finally:
        p.stop()


def vigie(*args: str, token: str | None = TOKENS["dept-13"]) -> tuple[int, str, str]:
    env = {"VIGIE_TOKEN": token} if token else {"VIGIE_TOKEN": ""}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_alerts_list_ack_resolve(url: str, tmp_path: Path) -> None:
    code, out, _ = vigie("alerts", "list", "--url", url)
    assert code == 0 and out.startswith("al00001  firing")
    code, out, _ = vigie("alerts", "list", "--url", url, "--json")
    assert code == 0 and [a["id"] for a in json.loads(out)["alerts"]] == ["al00001"]
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["dept-13"] + "\n")
    code, out, _ = vigie(
        "alerts", "ack", "al00001", "--url", url, "--token-file", str(token_file), token=None
    )
    assert code == 0 and out.split() == ["al00001", "acknowledged", "incident=1"]
    code, out, _ = vigie("alerts", "list", "--url", url, "--status", "acknowledged")
    assert "by=dept-13" in out
    code, out, _ = vigie("alerts", "resolve", "al00001", "--url", url, "--json")
    assert code == 0 and json.loads(out)["status"] == "resolved"


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (("alerts", "list"), "wrong-token", "401 unauthorized: notify does not know this token"),
        (
            ("alerts", "ack", "al00002"),
            TOKENS["dept-13"],
            "404 not found: no such alert for this cell",
        ),
        (("silences", "expire", "nope"), TOKENS["dept-13"], "404 not found: no such silence"),
        (("silences", "add", "rule=="), TOKENS["dept-13"], "400 matchers.0: not a label matcher"),
        (("alerts", "list"), None, "no token: give --token-file FILE or set VIGIE_TOKEN"),
    ],
)
def test_errors_are_one_line(
    url: str, args: tuple[str, ...], token: str | None, message: str
) -> None:
    code, out, err = vigie(*args, "--url", url, token=token)
    assert code == 1 and err.startswith(f"vigie: {message}") and err.count("\n") == 1
    assert "Traceback" not in out + err


def test_silences_add_list_expire(url: str) -> None:
    code, out, _ = vigie(
        "silences",
        "add",
        'rule="x"',
        "department=13",
        "--duration",
        "2h",
        "--comment",
        "maintenance",
        "--url",
        url,
        "--json",
    )
    assert code == 0
    made = json.loads(out)
    assert made["matchers"] == ['rule="x"', "department=13"]
    code, out, _ = vigie("silences", "list", "--url", url)
    assert made["id"] in out and "maintenance" in out
    code, _, err = vigie("silences", "expire", made["id"], "--url", url, token=TOKENS["dept-76"])
    assert code == 1 and "404" in err  # another cell's silence
    code, out, _ = vigie("silences", "expire", made["id"], "--url", url)
    assert code == 0 and out.strip() == f"expired {made['id']}"
    code, _, err = vigie("silences", "add", "rule=x", "--duration", "soon", "--url", url)
    assert code == 2 and "--duration 'soon'" in err
