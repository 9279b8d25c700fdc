"""Fuzz notify's API from its own OpenAPI document (schemathesis) on a real notify.

Notify runs as a worker process on the session's broker and Redis, holding a
few alerts and a silence of dept-13. Every operation of the document is
called with generated data — positive (fits the document) and negative
(does not) — with dept-13's token, another cell's token and no token; every
answer must be below 500 and match the document (status, content type,
schema, headers). Not checked: that every schema-valid body is accepted
(schemathesis' positive_data_acceptance): a silence must end in the future
and a regex matcher must compile, which JSON Schema cannot say. Run size:
:data:`EXAMPLES` examples per operation, mode and auth (8 operations x 2 modes
x 3 auths; the test prints the number of calls).
The hand-written cases of issue 16 (non-object JSON, Infinity, 1e308, deep
nesting, 10,000 matchers, a 500 KB comment, ``rule==``, the Bearer scheme's
case) are checked one by one below.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from services.notify.console.openapi import document
from shared.localstack import LocalStack
from tests.kafkautil import produce
from tests.notifystack import TOKENS, alert, start_notify
from tests.waiting import wait_for
from vigie.stack import Pipeline

pytestmark = pytest.mark.integration

#: Examples per operation, generation mode and auth: 8 x 2 x 3 x 25 = 1,200 calls at most
#: (VIGIE_FUZZ_EXAMPLES for a longer run by hand).
EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "25"))

CONFIG = SchemathesisConfig.from_dict({"generation": {"mode": "all", "max-examples": EXAMPLES}})
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)
CALLS: list[int] = []


@pytest.fixture(scope="module")
def notify(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A notify worker holding dept-13's alerts al00001..3 and one silence; its base URL."""
    work = tmp_path_factory.mktemp("notify-fuzz")
    uid = work.name[-8:].replace("-", "")
    p: Pipeline = start_notify(stack, work, f"test-fuzz{uid}.", f"vigietest:fuzz{uid}")
    base = f"http://127.0.0.1:{p.services['notify'].port}"
    try:
        asyncio.run(produce(stack.bootstrap, p.topics.alerts, [alert(i) for i in (1, 2, 3)]))
        h = {"Authorization": f"Bearer {TOKENS['dept-13']}"}
        with httpx.Client(base_url=base, headers=h, timeout=10) as c:
            wait_for(
                lambda: len(c.get("/api/v1/alerts").json()["alerts"]) == 3,
                30,
                "the alerts reach dept-13",
            )
            c.post("/api/v1/silences", json={"matchers": ['rule="x"'], "duration": 600})
        yield base
    finally:
        p.stop()


AUTHS = {
    "dept-13": {"Authorization": f"Bearer {TOKENS['dept-13']}"},
    "other-cell": {"Authorization": f"bearer {TOKENS['dept-76']}"},
    "none": {},
}


@pytest.mark.parametrize("who", list(AUTHS))
@schema.parametrize()
def test_every_operation_answers_below_500_and_as_documented(
    notify: str, who: str, case: schemathesis.Case[Any]
) -> None:
    headers = dict(AUTHS[who])
    if case.headers and "Authorization" in case.headers and who == "none":
        headers = {}
    CALLS.append(1)
    response = case.call_and_validate(
        base_url=notify, headers=headers, timeout=20, excluded_checks=[positive_data_acceptance]
    )
    assert response.status_code < 500
    if who == "none":
        # 405: negative mode also tries methods the path does not have
        assert response.status_code in (401, 405) or case.path == "/api/v1/openapi.json"


def test_run_size_and_served_document(notify: str) -> None:
    """The document served is the one fuzzed; prints the calls made above."""
    served = httpx.get(f"{notify}/api/v1/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(document()))
    print(f"schemathesis calls: {len(CALLS)}")


def _post(base: str, body: bytes | str, auth: str = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{auth} {TOKENS['dept-13']}"}
    return httpx.post(f"{base}/api/v1/silences", content=body, headers=headers, timeout=20)


@pytest.mark.parametrize(
    "body",
    [
        "[1,2]",
        '"x"',
        "null",
        '{"matchers": ["rule=\\"x\\""], "duration": Infinity}',
        '{"matchers": ["rule=\\"x\\""], "duration": NaN}',
        '{"matchers": ["rule=\\"x\\""], "duration": 1e308}',
        '{"matchers": ["rule=\\"x\\""], "endsAt": 1e308}',
        '{"matchers": ["rule=\\"x\\""], "endsAt": "9999-99-99"}',
        '{"matchers": ["rule=="], "duration": 60}',
        '{"matchers": [], "duration": 60}',
        '{"matchers": ["rule=\\"x\\""], "duration": 60, "extra": 1}',
        '{"matchers": ["rule=\\"x\\""], "duration": 60, "endsAt": "2999-01-01T00:00:00Z"}',
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"matchers": ['rule="x"'] * 10_000, "duration": 60}),
        json.dumps({"matchers": ['rule="x"'], "duration": 60, "comment": "x" * 500_000}),
        b"\xff\xfe not utf-8".decode("latin-1"),
    ],
)
def test_bad_silences_are_400_or_413(notify: str, body: str) -> None:
    r = _post(notify, body)
    assert r.status_code in (400, 413), (r.status_code, r.text[:200])
    assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_in_any_case(notify: str, scheme: str) -> None:
    r = _post(notify, json.dumps({"matchers": ['rule="y"'], "duration": 60}), scheme)
    assert r.status_code == 201
    got = r.json()
    assert got["startsAt"].endswith("+00:00") and got["endsAt"] > got["startsAt"]
    assert httpx.delete(
        f"{notify}/api/v1/silences/{got['id']}",
        headers={"Authorization": f"{scheme} {TOKENS['dept-13']}"},
        timeout=10,
    ).json() == {"expired": got["id"]}


def test_one_status_vocabulary_and_rfc3339_times(notify: str) -> None:
    h = {"Authorization": f"Bearer {TOKENS['dept-13']}"}
    with httpx.Client(base_url=notify, headers=h, timeout=10) as c:
        r = c.post("/api/v1/alerts/al00002/resolve")
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        listed = {a["id"]: a for a in c.get("/api/v1/alerts").json()["alerts"]}
        gone = listed["al00002"]
        assert gone["status"] == "resolved" and "state" not in gone
        assert gone["resolvedBy"] == "dept-13" and gone["resolvedAt"][:2] == "20"
        assert listed["al00001"]["status"] in ("firing", "acknowledged")
        assert c.get("/api/v1/alerts/al00002").json()["id"] == "al00002"
    other = {"Authorization": f"Bearer {TOKENS['dept-76']}"}
    assert httpx.get(f"{notify}/api/v1/alerts/al00002", headers=other).status_code == 404


def test_document_is_generated_from_the_models(tmp_path: Path) -> None:
    doc = document()
    body = doc["paths"]["/api/v1/silences"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/SilenceIn")
    silence_in = doc["components"]["schemas"]["SilenceIn"]
    assert silence_in["properties"]["matchers"]["maxItems"] == 32
    assert silence_in["additionalProperties"] is False
