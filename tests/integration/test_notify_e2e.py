"""Notify as a worker process on the real broker and Redis, delivering to a real receiver.

One pipeline for the whole story (it takes seconds to start): alerts published
on vigie.alerts.v1 reach the right cells once; a cell's receiver down for a
while gets everything once it is back; the worker SIGKILLed mid-stream and
restarted loses nothing and notifies nothing twice (a notification in flight
at the kill may be retransmitted with the same ``notificationId``, which
receivers use to drop it: at-least-once delivery); the cells' API answers with
401/404/200 as it should; the audit trail and the DLQ are written.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.notify.settings import NotifySettings
from tests.kafkautil import consume_all, produce
from tests.notifystack import settled
from tests.waiting import until
from vigie.stack import Pipeline

pytestmark = pytest.mark.integration

ROUTING = """
route:
  receiver: hq
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
  routes:
    - receiver: hq
      matchers: ['severity="critical"']
      continue: true
    - receiver: dept-13
      matchers: ['department="13"']
    - receiver: dept-76
      matchers: ['department="76"']
receivers: [{name: hq}, {name: dept-13}, {name: dept-76}]
"""
TOKENS = {"dept-13": "tok-13-" + "a" * 20, "dept-76": "tok-76-" + "b" * 20}


def alert(i: int) -> dict[str, Any]:
    dept = "13" if i % 2 else "76"
    sev = "critical" if i % 5 == 0 else "high"
    return {
        "alert_id": f"al{i:05d}",
        "rule": "target_deconfliction",
        "severity": sev,
        "labels": {
            "rule": "target_deconfliction",
            "severity": sev,
            "department": dept,
            "axis": "organisations",
            "case": str(i),
        },
        "annotations": {"summary": f"alert {i}"},
        "starts_at": datetime.now(UTC).isoformat(),
        "evidence": [],
    }


def expected(ids: range) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in ids:
        a = alert(i)
        out.setdefault(f"dept-{a['labels']['department']}", []).append(a["alert_id"])
        if a["severity"] == "critical":
            out.setdefault("hq", []).append(a["alert_id"])
    return out


def received(p: Pipeline) -> dict[str, list[str]]:
    """Alert ids each cell got, counting a notification retransmitted with the same
    ``notificationId`` once (what a receiver honouring ``Vigie-Notification-Id`` sees)."""
    assert p.receiver is not None
    out: dict[str, list[str]] = {}
    for cell, deliveries in p.receiver.by_cell().items():
        seen: set[str] = set()
        for d in deliveries:
            if d.body["notificationId"] in seen:
                continue
            seen.add(d.body["notificationId"])
            out.setdefault(cell, []).extend(a["fingerprint"] for a in d.body["alerts"])
    return out


def retransmissions(p: Pipeline) -> int:
    assert p.receiver is not None
    ids = [d.body["notificationId"] for d in p.receiver.deliveries]
    return len(ids) - len(set(ids))


@pytest.mark.brokers
async def test_notify_worker_end_to_end(
    make_pipeline: Callable[..., Pipeline],
    tmp_path: Path,
    redis_sync: redis.Redis,
    redis_prefix: str,
) -> None:
    routing = tmp_path / "routing.yml"
    routing.write_text(ROUTING)
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(json.dumps({"api_tokens": TOKENS}))
    p = make_pipeline(
        extra_env={
            "VIGIE_NOTIFY_ROUTING_FILE": str(routing),
            "VIGIE_NOTIFY_SECRETS_FILE": str(secrets),
            "VIGIE_NOTIFY_CLAIM_S": "2",
            "VIGIE_NOTIFY_LEASE_S": "2",
            "VIGIE_NOTIFY_REDELIVER_S": "0.5",
            "VIGIE_RETRY_BASE_S": "0.05",
            "VIGIE_DELIVERY_ATTEMPTS": "2",
        }
    )
    assert p.stack is not None and p.receiver is not None
    boot, topic = p.stack.bootstrap, p.topics.alerts

    # 1. every alert reaches the right cells once; dept-76's receiver down meanwhile
    p.receiver.status_for["dept-76"] = 503
    await produce(boot, topic, [json.dumps(alert(i)).encode() for i in range(40)])
    want = expected(range(40))
    await until(
        lambda: all(sorted(received(p).get(c, [])) == sorted(want[c]) for c in ("dept-13", "hq")),
        20,
        "dept-13 and hq received their alerts",
    )
    assert received(p).get("dept-76", []) == []
    p.receiver.status_for.pop("dept-76")
    await until(
        lambda: sorted(received(p).get("dept-76", [])) == sorted(want["dept-76"]),
        20,
        "dept-76 received its alerts once up again",
    )

    # 2. SIGKILL the worker mid-stream, restart it: nothing lost, nothing twice
    def batch(ids: range) -> list[bytes]:
        return [json.dumps(alert(i)).encode() for i in ids]

    before = len(p.receiver.deliveries)
    await produce(boot, topic, batch(range(40, 60)))
    receiver = p.receiver
    await until(lambda: len(receiver.deliveries) > before, 20, "a delivery")  # delivering now
    await produce(boot, topic, batch(range(60, 140)))
    p.services["notify"].kill()
    await produce(boot, topic, batch(range(140, 240)))  # while it is down
    await asyncio.to_thread(p.start_service, "notify")
    await asyncio.to_thread(p.wait_ready, 60, ["notify"])
    want = expected(range(240))
    await until(
        lambda: (
            {c: sorted(v) for c, v in received(p).items()}
            == {c: sorted(v) for c, v in want.items()}
        ),
        40,
        "every cell received its alerts after the restart",
    )
    # nothing more is on its way (a retransmission would come before this holds)
    await until(lambda: settled(redis_sync, redis_prefix), 20, "notify settled")
    got = received(p)
    for cell, ids in got.items():
        assert len(ids) == len(set(ids)), f"{cell} got an alert twice"
        assert sorted(ids) == sorted(want[cell])
    # A notification the worker was sending when killed may be sent again with the
    # same id (at-least-once); only those: at most what can be in flight, i.e. the
    # per-receiver concurrency cap for each receiving cell.
    in_flight = NotifySettings.model_fields["notify_per_receiver"].default * len(want)
    assert retransmissions(p) <= in_flight

    # 3. the cells' API
    base = f"http://127.0.0.1:{p.services['notify'].port}/api/v1"
    h13 = {"Authorization": f"Bearer {TOKENS['dept-13']}"}
    async with httpx.AsyncClient(timeout=5) as c:
        assert (await c.get(f"{base}/alerts")).status_code == 401
        assert (
            await c.get(f"{base}/alerts", headers={"Authorization": "Bearer x"})
        ).status_code == 401
        listed = (await c.get(f"{base}/alerts", headers=h13)).json()
        assert {a["id"] for a in listed["alerts"]} <= set(want["dept-13"])
        assert len(listed["alerts"]) == len(want["dept-13"])
        other = want["dept-76"][0]
        assert (await c.post(f"{base}/alerts/{other}/ack", headers=h13)).status_code == 404
        mine = want["dept-13"][0]
        r = await c.post(f"{base}/alerts/{mine}/ack", headers=h13)
        assert r.status_code == 200 and r.json()["acknowledgedBy"] == "dept-13"
        r = await c.post(
            f"{base}/silences", headers=h13, json={"matchers": ['rule="x"'], "duration": 60}
        )
        assert r.status_code == 201
        sid = r.json()["id"]
        assert [
            s["id"] for s in (await c.get(f"{base}/silences", headers=h13)).json()["silences"]
        ] == [sid]
        h76 = {"Authorization": f"Bearer {TOKENS['dept-76']}"}
        assert (await c.delete(f"{base}/silences/{sid}", headers=h76)).status_code == 404
        assert (await c.delete(f"{base}/silences/{sid}", headers=h13)).status_code == 200
        assert (
            await c.post(f"{base}/silences", headers=h13, json={"matchers": ["("]})
        ).status_code == 400
        doc = (await c.get(f"{base}/openapi.json")).json()
        assert doc["openapi"].startswith("3.") and "/api/v1/alerts/{alert_id}/ack" in doc["paths"]

    # 4. a bad alert goes to the DLQ with a reason; the audit trail has it all
    await produce(boot, topic, [b"{not json"])
    dlq = await consume_all(boot, p.topics.notifications_dlq, expect=1, timeout=15)
    assert [json.loads(r.value)["reason"] for r in dlq] == ["bad_alert"]

    async def audit_trail() -> list[dict[str, Any]]:
        audit = [json.loads(r.value) for r in await consume_all(boot, p.topics.notifications)]
        kinds = {r["kind"] for r in audit}
        return audit if {"delivery", "acknowledgement", "silence"} <= kinds else []

    audit = await until(audit_trail, 20, "deliveries, an acknowledgement, a silence audited")
    assert any(r.get("outcome") == "retrying" and r["receiver"] == "dept-76" for r in audit)

    # 5. hot reload on SIGHUP: a bad routing file is refused (the old one stays),
    #    a good one is taken: dept-13's alerts now go to dept-76
    proc = p.services["notify"]
    assert proc.proc is not None
    routing.write_text(ROUTING.replace("receivers:", "receivers: [unclosed"))
    proc.proc.send_signal(signal.SIGHUP)
    await until(lambda: "configuration rejected" in proc.log_path.read_text(), 20, "rejected")
    await produce(boot, topic, [json.dumps(alert(301)).encode()])  # department 13
    await until(lambda: "al00301" in received(p).get("dept-13", []), 20, "al00301 at dept-13")
    routing.write_text(ROUTING.replace("receiver: dept-13", "receiver: dept-76"))
    proc.proc.send_signal(signal.SIGHUP)
    await until(lambda: "configuration reloaded" in proc.log_path.read_text(), 20, "reloaded")
    await produce(boot, topic, [json.dumps(alert(303)).encode()])  # department 13
    await until(lambda: "al00303" in received(p).get("dept-76", []), 20, "al00303 at dept-76")
    await until(lambda: settled(redis_sync, redis_prefix), 20, "notify settled")
    assert "al00303" not in received(p).get("dept-13", [])
