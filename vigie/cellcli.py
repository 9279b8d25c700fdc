"""``vigie alerts list|ack|resolve`` and ``vigie silences list|add|expire``, amtool-style.

Over notify's API (``--url``, ``VIGIE_API_URL``; default ``http://127.0.0.1:6066``)
with the cell's token: ``--token-file`` (``VIGIE_TOKEN_FILE``), else the
``VIGIE_TOKEN`` environment variable — never a command-line argument (it would
show in ``ps``). ``--json`` prints the API's answer as one JSON object. Every
failure is one line on stderr and a non-zero exit: 401 (token unknown), 403,
404 (no such alert or silence for this cell), 400 (the API's reason), notify
unreachable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from vigie.console import fail, out

alerts_app = typer.Typer(help="A cell's alerts over notify's API.", no_args_is_help=True)
silences_app = typer.Typer(help="A cell's silences over notify's API.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="VIGIE_API_URL", help="notify's base URL")]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="VIGIE_TOKEN_FILE",
        help="file holding the cell's API token (else VIGIE_TOKEN)",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]
DEFAULT_URL = "http://127.0.0.1:6066"

REASONS = {
    401: "unauthorized: notify does not know this token (check --token-file or VIGIE_TOKEN)",
    403: "forbidden: this token may not do that",
    404: "not found: no such {what} for this cell",
    413: "refused: request too large",
    503: "notify cannot reach its state store (Redis); try again",
}


def token_of(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read token file {token_file}: {type(exc).__name__}")
        if not token:
            fail(f"token file {token_file} is empty")
        return token
    token = os.environ.get("VIGIE_TOKEN", "").strip()
    if not token:
        fail("no token: give --token-file FILE or set VIGIE_TOKEN")
    return token


def call(
    method: str, url: str, path: str, token_file: Path | None, what: str, body: Any = None
) -> dict[str, Any]:
    """One API call; its JSON answer, or exit with one line saying why not."""
    headers = {"Authorization": f"Bearer {token_of(token_file)}"}
    try:
        r = httpx.request(method, url.rstrip("/") + path, headers=headers, json=body, timeout=10.0)
    except httpx.InvalidURL:
        fail(f"bad --url {url!r}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach notify at {url}: {type(exc).__name__}")
    if r.status_code >= 400:
        reason = REASONS.get(r.status_code, "").format(what=what)
        if not reason or r.status_code == 400:
            try:
                reason = str(r.json().get("error", r.reason_phrase))
            except ValueError:
                reason = r.reason_phrase
        fail(f"{r.status_code} {reason}")
    try:
        answer = r.json()
    except ValueError:
        fail(f"notify at {url} answered something that is not JSON")
    return answer if isinstance(answer, dict) else {"answer": answer}


def show(answer: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        out.print(json.dumps(answer, ensure_ascii=False), markup=False, highlight=False)
        return
    for line in lines:
        out.print(line, markup=False, highlight=False)


@alerts_app.command("list")
def alerts_list(
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    status: Annotated[
        str | None, typer.Option(help="only firing, acknowledged or resolved")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The cell's alerts, newest first."""
    if status not in (None, "firing", "acknowledged", "resolved"):
        fail(f"--status {status!r}: use firing, acknowledged or resolved", 2)
    answer = call("GET", url, "/api/v1/alerts", token_file, "alert")
    alerts = [a for a in answer.get("alerts", []) if status is None or a["status"] == status]
    answer["alerts"] = alerts
    lines = [
        f"{a['id']}  {a['status']:<12}  {a['severity']:<8}  {a['rule']}  "
        f"dept={a.get('department') or '-'}  incident={a['incident']}"
        + (f"  by={a['acknowledgedBy']}" if a.get("acknowledgedBy") else "")
        for a in alerts
    ]
    show(answer, as_json, lines or ["no alerts"])


def _action(action: str, doc: str) -> None:
    """Register ``vigie alerts <action> ALERT_ID``."""

    def command(
        alert_id: Annotated[str, typer.Argument(help="the alert's id")],
        url: Url = DEFAULT_URL,
        token_file: TokenFile = None,
        as_json: AsJson = False,
    ) -> None:
        answer = call("POST", url, f"/api/v1/alerts/{alert_id}/{action}", token_file, "alert")
        line = f"{answer['alertId']}  {answer['status']}  incident={answer['incident']}"
        show(answer, as_json, [line])

    command.__doc__ = doc
    alerts_app.command(action)(command)


_action("ack", "Acknowledge the alert's open incident (stops its escalation).")
_action("resolve", "Resolve the alert's incident by hand.")


@silences_app.command("list")
def silences_list(
    url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False
) -> None:
    """The cell's active silences."""
    answer = call("GET", url, "/api/v1/silences", token_file, "silence")
    lines = [
        f"{s['id']}  until {s['endsAt']}  {', '.join(s['matchers'])}  {s['comment']}".rstrip()
        for s in answer.get("silences", [])
    ]
    show(answer, as_json, lines or ["no silences"])


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def seconds(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` as seconds; ``ValueError`` otherwise."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"--duration {text!r}: use e.g. 90s, 15m, 2h or 1d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@silences_app.command("add")
def silences_add(
    matchers: Annotated[list[str], typer.Argument(help='label matchers, e.g. rule="x"')],
    duration: Annotated[str, typer.Option(help="how long: 90s, 15m, 2h, 1d")] = "1h",
    comment: Annotated[str, typer.Option(help="why (shown to the cell)")] = "",
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    as_json: AsJson = False,
) -> None:
    """Create a silence muting this cell's notifications that match every matcher."""
    try:
        secs = seconds(duration)
    except ValueError as exc:
        fail(str(exc), 2)
    body = {"matchers": matchers, "duration": secs, "comment": comment}
    answer = call("POST", url, "/api/v1/silences", token_file, "silence", body)
    show(answer, as_json, [f"{answer['id']}  until {answer['endsAt']}"])


@silences_app.command("expire")
def silences_expire(
    silence_id: Annotated[str, typer.Argument(help="the silence's id")],
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    as_json: AsJson = False,
) -> None:
    """Expire a silence now."""
    answer = call("DELETE", url, f"/api/v1/silences/{silence_id}", token_file, "silence")
    show(answer, as_json, [f"expired {answer['expired']}"])
