"""The notify pipeline on the real Redis, a real webhook receiver, a real SMTP server
and a local Matrix homeserver stand-in, on an injected clock (timelines, no sleeping).

Reads like Alertmanager's acceptance tests: push an alert at t, flush at t',
see what each cell got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from services.notify.cells import Secrets, parse_cells
from services.notify.channels.email import SmtpConfig
from services.notify.channels.registry import notifiers
from services.notify.dispatch import DeliveryConfig, Dispatcher
from services.notify.handler import NotifyHandler
from services.notify.metrics import NotifyMetrics
from services.notify.route import parse_routing
from services.notify.silence import SilenceStore
from services.notify.store.base import Due, NotifyStore
from services.notify.store.memory import MemoryStore
from services.notify.store.redis_store import RedisStore
from shared.localstack import LocalStack, free_port
from shared.models import Alert, Annotations, Evidence, Handling
from shared.redis import Keys, cluster_seed
from tests.waiting import until
from vigie.receiver import WebhookReceiver

pytestmark = pytest.mark.integration

ROUTING = """
route:
  receiver: hq
  group_by: [rule, department]
  group_wait: 10s
  group_interval: 60s
  repeat_interval: 300s
  routes:
    - receiver: hq
      matchers: ['severity="critical"']
      group_wait: 0s
      continue: true
    - receiver: dept-13
      matchers: ['department="13"']
      routes:
        - matchers: ['severity="critical"']
          group_wait: 0s
    - receiver: dept-76
      matchers: ['department="76"']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [department]
receivers: [{name: hq}, {name: antenne-marseille}, {name: dept-13}, {name: dept-76},
            {name: antenne-rouen}]
"""

CELLS = {
    "cells": {
        "hq": {"clearance": "secret", "ack_timeout": "10m"},
        "antenne-marseille": {
            "clearance": "secret",
            "ack_timeout": "60s",
            "escalate_to": "hq",
            "contact": "antenna duty",
        },
        "antenne-rouen": {"clearance": "secret", "escalate_to": "hq"},
        "dept-13": {"ack_timeout": "60s", "escalate_to": "antenne-marseille"},
        "dept-76": {"ack_timeout": "60s", "escalate_to": "antenne-rouen"},
    }
}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Env:
    d: NotifyHandler
    clock: Clock
    rx: WebhookReceiver
    audit: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    redis: Any = None
    prefix: str = ""

    async def at(self, t: float) -> None:
        """Move the clock to t0 + t and run one flush and escalation pass."""
        self.clock.t = 1_800_000_000.0 + t
        await self.d.flush_due()
        await self.d.escalate_due()
        await self.d.drain()  # the flushes ingest_and_flush started

    def got(self, cell: str) -> list[list[tuple[str, str]]]:
        return [
            [(a["fingerprint"], a["status"]) for a in d.body["alerts"]]
            for d in self.rx.by_cell().get(cell, [])
        ]


def alert(
    aid: str,
    dept: str = "13",
    severity: str = "high",
    status: str = "firing",
    handling: Handling = Handling.RESTRICTED,
    rule: str = "r1",
) -> Alert:
    return Alert(
        alert_id=aid,
        rule=rule,
        severity=severity,
        status=status,
        labels={"rule": rule, "severity": severity, "department": dept, "axis": "organisations"},
        annotations=Annotations(summary=f"summary {aid}", description="detail"),
        starts_at=datetime(2026, 11, 27, tzinfo=UTC),
        evidence=[
            Evidence(
                agency="douane",
                event_id="e1",
                occurred_at=datetime(2026, 11, 27, tzinfo=UTC),
                case_ref="CASE-77",
                contact="unit 7",
            )
        ],
        handling=handling,
    )


async def make_dispatcher(
    redis: aioredis.Redis,
    prefix: str,
    clock: Clock,
    rx: WebhookReceiver,
    cells: dict[str, Any] | None = None,
    routing: str = ROUTING,
    secrets: Secrets | None = None,
    store: NotifyStore | None = None,
    **cfg: Any,
) -> Env:
    """A dispatcher on Redis under ``prefix``, or a handler on ``store``."""
    env_lists: dict[str, list[dict[str, Any]]] = {"audit": [], "dlq": []}

    async def audit(r: dict[str, Any]) -> None:
        env_lists["audit"].append(r)

    async def dlq(r: dict[str, Any]) -> None:
        env_lists["dlq"].append(r)

    config = DeliveryConfig(
        webhook_url=rx.url_template,
        webhook_secret=rx.secret,
        attempts=2,
        retry_base_s=0.01,
        timeout_s=2.0,
        **cfg,
    )
    parsed = parse_routing(yaml.safe_load(routing)), parse_cells(cells or CELLS)
    metrics = NotifyMetrics(CollectorRegistry())
    d: NotifyHandler
    if store is None:
        secrets = secrets or Secrets()
        d = Dispatcher(redis, Keys(prefix), *parsed, secrets, config, metrics, audit, dlq, clock)
    else:
        sends = notifiers(config, secrets or Secrets())
        d = NotifyHandler(store, sends, *parsed, config, metrics, audit, dlq, clock)
    return Env(d, clock, rx, env_lists["audit"], env_lists["dlq"])


async def another(env: Env, prefix: str, clock: Clock, **kw: Any) -> Env:
    """A second dispatcher on the same kind of store as ``env``'s: the same store
    (a replica) when ``prefix`` is ``env``'s, else a separate one."""
    store: NotifyStore | None = None
    if isinstance(env.d.store, MemoryStore):
        store = env.d.store if prefix == env.prefix else MemoryStore(clock)
    return await make_dispatcher(env.redis, prefix, clock, env.rx, store=store, **kw)


async def _env(redis_client: aioredis.Redis, redis_prefix: str, kind: str) -> AsyncIterator[Env]:
    rx = WebhookReceiver(secret=b"k").start()
    clock = Clock()
    store = MemoryStore(clock) if kind == "memory" else None
    e = await make_dispatcher(redis_client, redis_prefix, clock, rx, store=store)
    e.redis, e.prefix = redis_client, redis_prefix
    yield e
    await e.d.close()
    rx.stop()


@pytest.fixture(params=["redis", "memory"])
async def env(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str, request: Any
) -> AsyncIterator[Env]:
    """Every timeline on both stores: Redis, and the memory store of unit tests
    (the same decisions must give the same story)."""
    async for e in _env(redis_client, redis_prefix, request.param):
        yield e


@pytest.fixture
async def redis_env(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> AsyncIterator[Env]:
    """A timeline that looks at Redis keys itself."""
    async for e in _env(redis_client, redis_prefix, "redis"):
        yield e


async def test_group_timers_repeat_and_resolve(env: Env) -> None:
    d = env.d
    await env.at(0)
    await d.ingest(alert("A"))
    await env.at(5)
    assert env.got("dept-13") == []  # group_wait 10s
    await env.at(10)
    assert env.got("dept-13") == [[("A", "firing")]]
    await env.at(12)
    await d.ingest(alert("B"))
    await d.ingest(alert("B"))  # a redelivered alert changes nothing
    await env.at(20)
    assert len(env.got("dept-13")) == 1  # waits for group_interval
    await env.at(70)
    assert env.got("dept-13")[-1] == [("A", "firing"), ("B", "firing")]
    await env.at(130)
    assert len(env.got("dept-13")) == 2  # same content, repeat_interval not reached
    await env.at(371)
    assert len(env.got("dept-13")) == 3  # repeat_interval (300s) passed
    await d.ingest(alert("A", status="resolved"))
    await env.at(431)
    assert env.got("dept-13")[-1] == [("A", "resolved"), ("B", "firing")]
    await d.ingest(alert("B", status="resolved"))
    await env.at(491)
    assert env.got("dept-13")[-1] == [("A", "resolved"), ("B", "resolved")]
    await env.at(551)
    assert len(env.got("dept-13")) == 5  # group gone: nothing more
    assert env.rx.rejected == 0  # every body signed
    body = env.rx.by_cell()["dept-13"][0].body
    assert body["version"] == "4" and body["groupLabels"] == {"rule": "r1", "department": "13"}
    mine = [r for r in env.audit if r["kind"] == "delivery" and r["receiver"] == "dept-13"]
    assert [r["outcome"] for r in mine] == ["delivered"] * 5


async def test_critical_leaves_at_once_and_inhibits(env: Env) -> None:
    await env.at(0)
    await env.d.ingest(alert("W", severity="warning"))
    await env.d.ingest(alert("C", severity="critical", rule="ops"))
    await env.at(0)
    assert env.got("hq") == [[("C", "firing")]]
    assert env.got("dept-13") == [[("C", "firing")]]
    await env.at(10)
    assert len(env.got("dept-13")) == 1  # W inhibited by C (same département)
    await env.d.ingest(alert("C", severity="critical", rule="ops", status="resolved"))
    await env.at(70)
    assert [("W", "firing")] in env.got("dept-13")


async def test_escalation_ack_and_new_incident(env: Env) -> None:
    d = env.d
    await env.at(0)
    await d.ingest(alert("E", handling=Handling.SECRET))
    await d.ingest(alert("K", dept="76"))
    await env.at(10)
    assert env.got("dept-13") == [[("E", "firing")]]
    assert (await d.acknowledge("dept-76", "K"))["acked_by"] == "dept-76"
    assert await d.acknowledge("dept-13", "K") is None  # not its alert
    await env.at(69)
    assert env.got("antenne-marseille") == []
    await env.at(71)  # dept-13 did not acknowledge within 60s
    (esc,) = env.rx.by_cell()["antenne-marseille"]
    assert esc.body["kind"] == "escalation" and esc.body["escalatedFrom"] == "dept-13"
    assert esc.body["alerts"][0]["evidence"][0]["case_ref"] == "CASE-77"  # antenna cleared
    assert env.got("antenne-rouen") == []  # K was acknowledged
    red = env.rx.by_cell()["dept-13"][0].body["alerts"][0]
    assert red["redacted"] and red["evidence"] == [] and "CASE-77" not in json.dumps(red)
    await env.at(132)  # the antenna did not acknowledge either
    assert env.got("hq") == [[("E", "firing")]]
    await env.at(800)
    assert len(env.got("hq")) == 1  # hq is the top
    assert [r["to"] for r in env.audit if r["kind"] == "escalation"] == ["antenne-marseille", "hq"]
    # the antenna acknowledges now; resolved then firing again is a new incident
    assert (await d.acknowledge("antenne-marseille", "E"))["acked_by"] == "antenne-marseille"
    assert (await d.resolve("dept-13", "E"))["state"] == "resolved"
    await d.ingest(alert("E", handling=Handling.SECRET))
    await env.at(860)
    last = env.rx.by_cell()["dept-13"][-1].body["alerts"]
    assert last[0]["incident"] == 2
    listed = await d.list_alerts("dept-13")
    assert listed[0]["fingerprint"] == "E" and listed[0]["state"] == "open"
    assert listed[0]["redacted"] and listed[0]["acknowledgedBy"] is None
    assert (
        await d.list_alerts("dept-76")
        and (await d.list_alerts("dept-76"))[0]["acknowledgedBy"] == "dept-76"
    )


async def test_silence_mutes_only_its_cell(env: Env) -> None:
    d = env.d
    await env.at(0)
    s = await d.silences.create(
        "dept-13", ['rule="r1"'], env.clock.t, env.clock.t + 100, "", env.clock.t
    )
    await d.ingest(alert("S", severity="critical"))
    await env.at(0)
    assert env.got("dept-13") == [] and env.got("hq") == [[("S", "firing")]]
    assert [x.id for x in await d.silences.active("dept-13", env.clock.t)] == [s.id]
    await env.at(101)  # the silence ended
    d.invalidate_silences("dept-13")
    await env.at(120)
    assert env.got("dept-13") == [[("S", "firing")]]
    assert await d.silences.expire("dept-13", s.id)
    assert not await d.silences.expire("dept-76", s.id)


async def test_silences_of_several_cells_read_together(
    redis_env: Env, redis_client: aioredis.Redis
) -> None:
    env = redis_env
    assert isinstance(env.d.store, RedisStore)
    d, t = env.d, env.clock.t
    a = await d.silences.create("dept-13", ['rule="r1"'], t, t + 100, "", t)
    ended = await d.silences.create("dept-13", ['rule="r2"'], t, t + 50, "", t)
    c = await d.silences.create("dept-76", ['rule="r1"'], t, t + 100, "", t)
    gone = await d.silences.create("dept-76", ['rule="r3"'], t, t + 100, "", t)
    await redis_client.delete(d.silences._key("dept-76", gone.id))  # as its TTL would
    assert isinstance(d.silences, SilenceStore)
    got = await d.silences.active_of(["dept-13", "dept-76", "hq"], t + 60, env.d.store.conn.pipes)
    assert {k: sorted(s.id for s in v) for k, v in got.items()} == {
        "dept-13": [a.id],  # not `ended` (at t + 50), still indexed until its key expires
        "dept-76": [c.id],
        "hq": [],
    }
    assert [s.id for s in await d.silences.active("dept-76", t + 60)] == [c.id]
    assert ended.id.encode() in await redis_client.smembers(d.silences._index("dept-13"))
    index = await redis_client.smembers(d.silences._index("dept-76"))
    assert gone.id.encode() not in index  # the expired one left the index
    assert got == {
        cell: await d.silences.active(cell, t + 60) for cell in ("dept-13", "dept-76", "hq")
    }


async def test_receiver_down_then_back_and_dlq(env: Env) -> None:
    env.rx.status_for["dept-13"] = 503
    await env.at(0)
    await env.d.ingest(alert("D", severity="critical"))
    await env.at(0)
    await env.at(6)
    assert env.got("dept-13") == []
    assert any(r["outcome"] == "retrying" for r in env.audit)
    env.rx.status_for.pop("dept-13")
    await env.at(12)
    await env.at(20)
    assert env.got("dept-13") == [[("D", "firing")]]  # delivered once it is back, once
    assert env.dlq == []
    # a receiver that never comes back: the DLQ after give_up_s
    rx = env.rx
    other = await another(env, env.prefix + ":b", Clock(), give_up_s=30)
    rx.status_for["dept-76"] = 500
    await other.at(0)
    await other.d.ingest(alert("F", dept="76", severity="critical"))
    for t in (10, 20, 40, 50):
        await other.at(t)
    assert env.got("dept-76") == []
    assert [r["reason"] for r in other.dlq] == ["delivery_failed"]
    assert other.dlq[0]["receiver"] == "dept-76"
    await other.d.close()


async def test_two_replicas_notify_once(env: Env) -> None:
    twin = await another(env, env.prefix, env.clock)
    await env.at(0)
    for i in range(30):
        await env.d.ingest(alert(f"R{i}", dept="13", rule=f"r{i % 5}", severity="critical"))
    await asyncio.gather(env.d.flush_due(), twin.d.flush_due(), env.d.flush_due())
    ids = env.rx.alert_ids()
    assert sorted(ids) == sorted([f"R{i}" for i in range(30)] * 2)  # dept + hq, once each
    await twin.d.close()


class _Smtp:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


async def test_redaction_on_every_real_channel(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    smtp = _Smtp()
    port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=port)
    controller.start()
    matrix_msgs: list[dict[str, Any]] = []

    async def room_send(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer mx-token"
        matrix_msgs.append({"room": request.match_info["room"], **(await request.json())})
        return web.json_response({"event_id": f"$e{len(matrix_msgs)}"})

    mx = web.Application()
    mx.router.add_put("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}", room_send)
    runner = web.AppRunner(mx)
    await runner.setup()
    mx_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", mx_port).start()
    rx = WebhookReceiver().start()
    channels = [
        {"type": "webhook"},
        {"type": "email", "to": ["cell13@example.org"]},
        {"type": "matrix", "room_id": "!room13:local"},
    ]
    cells = json.loads(json.dumps(CELLS))
    cells["cells"]["dept-13"]["channels"] = channels
    cells["cells"]["hq"]["channels"] = channels
    e = await make_dispatcher(
        redis_client,
        redis_prefix,
        Clock(),
        rx,
        cells=cells,
        smtp=SmtpConfig("127.0.0.1", port),
        matrix_homeserver=f"http://127.0.0.1:{mx_port}",
        secrets=Secrets(matrix_access_token="mx-token"),
    )
    assert sorted(e.d.notifiers.by_type) == ["email", "matrix", "webhook"]
    try:
        await e.at(0)
        await e.d.ingest(alert("X", severity="critical", handling=Handling.SECRET))
        await e.at(0)
        assert len(smtp.messages) == 2 and len(matrix_msgs) == 2
        assert set(rx.by_cell()) == {"dept-13", "hq"}
        dept_mail = next(m for m in smtp.messages if b"cell13" in m and b"summary X" not in m)
        assert len([m for m in smtp.messages if b"CASE-77" in m]) == 1  # hq's only
        for wire in (
            dept_mail,
            json.dumps(rx.by_cell()["dept-13"][0].body).encode(),
            json.dumps([m for m in matrix_msgs if "CASE-77" not in json.dumps(m)]).encode(),
        ):
            assert b"CASE-77" not in wire and b"unit 7" not in wire and b"summary X" not in wire
            assert b"antenne-marseille" in wire  # who to contact
        assert sum("CASE-77" in json.dumps(m) for m in matrix_msgs) == 1
        assert b"text/html" in dept_mail and b"text/plain" in dept_mail
    finally:
        await e.d.close()
        rx.stop()
        controller.stop()
        await runner.cleanup()


async def test_immediate_groups_flush_from_memory_under_a_lease(
    redis_env: Env, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """ingest_and_flush sends a new group_wait-0 group at once, holding its lease:
    the timer path does not send it again, and a replica that died before
    flushing leaves it to the lease's end."""
    env = redis_env
    d = env.d
    await env.at(0)
    await d.ingest_and_flush([alert("F1", severity="critical"), alert("F2", dept="76")])
    await d.drain()
    assert env.got("dept-13") == [[("F1", "firing")]] and env.got("hq") == [[("F1", "firing")]]
    assert env.got("dept-76") == []  # group_wait 10s: the timer path
    await env.at(0)
    assert len(env.got("dept-13")) == 1  # leased and flushed: not again
    await env.at(10)
    assert env.got("dept-76") == [[("F2", "firing")]]
    await env.at(70)  # group_interval: same content, nothing new
    assert len(env.got("dept-13")) == 1 and len(env.got("hq")) == 1
    sent = [r for r in env.audit if r.get("notification_kind") == "group"]
    assert sorted(r["receiver"] for r in sent) == ["dept-13", "dept-76", "hq"]
    # a replica that records, claims and dies before sending: once its claims expire
    # (deleted here, as Redis does after claim_s) and its lease ends, the timer path sends
    dead = await make_dispatcher(redis_client, redis_prefix, env.clock, env.rx)
    dead.d.flusher.spawn = lambda coro: coro.close()  # type: ignore[method-assign]
    await dead.d.ingest_and_flush([alert("F3", severity="critical", rule="r9")])
    await env.at(71)
    assert "F3" not in env.rx.alert_ids()  # still leased
    claims = [k async for k in redis_client.scan_iter(f"{redis_prefix}:*nflog*")]
    assert len(claims) >= 2
    for key in claims:
        if (await redis_client.get(key) or b"").startswith(b"claimed:"):
            await redis_client.delete(key)
    await env.at(71 + d.config.lease_s)
    assert [("F3", "firing")] in env.got("dept-13") and [("F3", "firing")] in env.got("hq")
    await dead.d.close()


async def test_a_delivery_is_marked_sent_before_its_receiver_slot_frees(
    redis_url: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """What a worker killed at any moment sends again after its restart is what was
    delivered and not yet marked sent: at most ``per_receiver`` notifications per
    cell. With one slot, when a cell gets its k-th notification of a flush, the
    k-1 before it are marked sent in Redis, and the cell already holds their
    alerts (with its ack timer running)."""
    seen: list[tuple[int, int, int]] = []  # (earlier deliveries, sent marks, held alerts)
    seed = cluster_seed(redis_url)
    sync = redis.RedisCluster.from_url(seed) if seed else redis.Redis.from_url(redis_url)

    def check(delivery: Any) -> None:
        if delivery.cell != "dept-13":
            return
        marks = [sync.get(k) for k in sync.scan_iter(f"{redis_prefix}:*nflog:dept-13:*")]
        held = sync.zcard(f"{redis_prefix}:{{c:dept-13}}:alerts")
        earlier = len(rx.by_cell().get("dept-13", [])) - 1
        seen.append((earlier, sum(1 for m in marks if m and m.startswith(b"sent:")), held))

    rx = WebhookReceiver(secret=b"k", on_delivery=check).start()
    e = await make_dispatcher(redis_client, redis_prefix, Clock(), rx, per_receiver=1)
    try:
        await e.at(0)
        await e.d.ingest_and_flush(
            [alert(f"S{i}", severity="critical", rule=f"r{i}") for i in range(8)]
        )
        await e.d.drain()
        assert len(e.got("dept-13")) == 8  # eight groups (one per rule): eight notifications
        assert [(k, k, k) for k in range(8)] == seen
    finally:
        await e.d.close()
        rx.stop()
        sync.close()


async def test_a_group_due_at_once_is_sent_at_once_only_when_new(
    redis_env: Env, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """ingest_and_flush decides a group_wait-0 group's notification before
    recording it: sent (with every alert of the batch) only if the group is new;
    an alert joining it later waits for its group_interval, and no notification
    of the guessed content is claimed."""
    env = redis_env
    d = env.d
    await env.at(0)
    await d.ingest_and_flush([alert("G1", severity="critical"), alert("G2", severity="critical")])
    await d.drain()
    assert env.got("hq") == [[("G1", "firing"), ("G2", "firing")]]
    await d.ingest_and_flush([alert("G3", severity="critical")])  # the same group, not new
    await d.drain()
    assert len(env.got("hq")) == 1
    marks = [
        await redis_client.get(k) async for k in redis_client.scan_iter(f"{redis_prefix}:*nflog*")
    ]
    assert not [m for m in marks if m and m.startswith(b"claimed:")]
    await env.at(60)  # group_interval
    assert env.got("hq")[-1] == [("G1", "firing"), ("G2", "firing"), ("G3", "firing")]
    assert len(env.got("hq")) == 2


async def test_a_mute_counts_once_per_notification_decided(env: Env) -> None:
    """ingest_and_flush decides a group_wait-0 group's notification before it
    knows whether the group is new: a group that was not counts its mutes at
    its own flush, not also when that guess is thrown away."""
    d = env.d
    await env.at(0)
    t = env.clock.t
    await d.silences.create("dept-13", ['rule="r1"'], t, t + 1000, "", t)

    def silenced() -> float:
        return float(d.metrics.muted.labels("silenced")._value.get())

    await d.ingest_and_flush([alert("S", severity="critical")])  # new: decided now
    await d.drain()
    assert env.got("hq") == [[("S", "firing")]] and env.got("dept-13") == []
    assert silenced() == 1
    for _ in range(3):  # redelivered: the groups are not new, nothing is decided
        await d.ingest_and_flush([alert("S", severity="critical")])
        await d.drain()
    assert silenced() == 1
    await env.at(60)  # dept-13's group_interval: decided again, muted again
    assert silenced() == 2 and env.got("dept-13") == []


async def test_manual_resolve_takes_the_alert_out_of_its_group(env: Env) -> None:
    d = env.d
    await env.at(0)
    await d.ingest_many([alert("M1"), alert("M2"), alert("L", dept="76")])
    await env.at(10)
    assert env.got("dept-13") == [[("M1", "firing"), ("M2", "firing")]]
    assert (await d.resolve("dept-13", "M1"))["state"] == "resolved"
    await env.at(70)  # the group's content changed: M2 alone
    assert env.got("dept-13")[-1] == [("M2", "firing")]
    await env.at(400)  # repeat_interval: M1 never comes back
    assert [ids for ids in env.got("dept-13") if ("M1", "firing") in ids] == [env.got("dept-13")[0]]
    # a group left empty is dropped: nothing more is sent for it
    assert (await d.resolve("dept-76", "L"))["state"] == "resolved"
    sent = len(env.got("dept-76"))
    await env.at(460)
    await env.at(800)
    assert len(env.got("dept-76")) == sent
    resolutions = [r for r in env.audit if r["kind"] == "resolution"]
    assert [(r["alert_id"], r["cell"]) for r in resolutions] == [
        ("M1", "dept-13"),
        ("L", "dept-76"),
    ]
    # firing again later: a new incident, in its group again
    await d.ingest(alert("M1"))
    await env.at(860)
    last = env.rx.by_cell()["dept-13"][-1].body["alerts"]
    assert [(a["fingerprint"], a["incident"]) for a in last] == [("M1", 2), ("M2", 1)]


class WallClock(Clock):
    def __call__(self) -> float:
        return time.time()


@pytest.fixture
async def running(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    """A dispatcher on the wall clock with run() going, polling only every hour:
    what it does in time, it does because a timer or a freed slot woke it."""
    made: list[tuple[Env, asyncio.Task[None]]] = []

    async def start(**kw: Any) -> Env:
        rx = WebhookReceiver(secret=b"k", status_for=kw.pop("status_for", {})).start()
        e = await make_dispatcher(redis_client, redis_prefix, WallClock(), rx, **kw)
        made.append((e, asyncio.create_task(e.d.run(idle_s=3600))))
        return e

    yield start
    for e, task in made:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await e.d.close()
        e.rx.stop()


async def test_run_sleeps_until_the_next_group_and_escalation_timer(
    running: Callable[..., Awaitable[Env]],
) -> None:
    cells = json.loads(json.dumps(CELLS))
    cells["cells"]["dept-13"]["ack_timeout"] = "1s"
    routing = ROUTING.replace("group_wait: 10s", "group_wait: 300ms")
    e = await running(cells=cells, routing=routing)
    await e.d.ingest(alert("T"))  # group_wait 300ms, not taken at once
    await until(lambda: e.got("dept-13") == [[("T", "firing")]], 20, "dept-13 notified of T")
    # not acknowledged within 1s: escalated to the antenna by the timer the delivery set
    await until(
        lambda: "T" in e.rx.alert_ids("antenne-marseille"), 20, "T escalated to the antenna"
    )


async def test_run_wakes_for_the_timers_an_escalation_writes(
    running: Callable[..., Awaitable[Env]],
) -> None:
    """An escalation that must be tried again, and the ack timer of the cell it
    reaches, are timers too: run() (polling every hour) acts on each in time
    (escalations run inside its pass, which reads the schedules again after them)."""
    cells = json.loads(json.dumps(CELLS))
    cells["cells"]["dept-13"]["ack_timeout"] = "1s"
    cells["cells"]["antenne-marseille"]["ack_timeout"] = "1s"
    routing = ROUTING.replace("group_wait: 10s", "group_wait: 300ms")
    e = await running(
        cells=cells, routing=routing, redeliver_s=1.0, status_for={"antenne-marseille": 503}
    )
    await e.d.ingest(alert("E"))
    await until(lambda: e.got("dept-13") == [[("E", "firing")]], 20, "dept-13 notified of E")
    # the escalation to the antenna fails, and is tried again a second later
    await until(
        lambda: any(
            r.get("receiver") == "antenne-marseille" and r.get("outcome") == "retrying"
            for r in e.audit
        ),
        20,
        "the antenna's failed delivery audited as retrying",
    )
    e.rx.status_for.pop("antenne-marseille")
    await until(
        lambda: "E" in e.rx.alert_ids("antenne-marseille"), 10, "E escalated to the antenna"
    )
    # unacknowledged there within 1s: on to headquarters, by the timer it set
    await until(lambda: "E" in e.rx.alert_ids("hq"), 10, "E escalated to hq")


async def test_run_wakes_for_a_group_kept_because_an_alert_joined_it(
    running: Callable[..., Awaitable[Env]], redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """A flush that finds its group finished drops it, unless an alert joined it
    meanwhile (the group's version moved): then the group is scheduled again, and
    run() must wake for that time if it is earlier than the one it sleeps to."""
    e = await running()
    await e.d.ingest(alert("K"))  # group_wait 10s: run() sleeps until then
    [meta] = [k async for k in redis_client.scan_iter(f"{redis_prefix}:{{g:*}}:meta")]
    gid = meta.decode().split("{g:", 1)[1].split("}", 1)[0]
    flusher = e.d.flusher
    # run() saw the group's timer (10 s away, not its hour) and sleeps until then
    await until(
        lambda: not flusher.passing and flusher.wake_at < e.clock() + 60,
        20,
        "run() sleeping until the group's timer",
    )
    # the drop of a flush that saw an older version: kept, due in 0.3 s
    await e.d.mark.drop([(gid, "stale", e.clock() + 0.3)], e.clock() + 30)
    await until(lambda: e.got("dept-13") == [[("K", "firing")]], 5, "dept-13 notified of K")


async def test_run_claims_due_groups_when_a_flush_slot_frees(
    running: Callable[..., Awaitable[Env]],
) -> None:
    """One flush slot, held by a delivery to a cell that hangs: a group due
    meanwhile waits for the slot and goes as soon as it is free."""
    e = await running(batches=1, status_for={"hq": 0})
    # due at once for hq (group_wait 0), whose receiver hangs: the slot is held
    await e.d.ingest_and_flush([alert("H", dept="76", severity="critical", rule="h")])
    assert len(e.d.flusher.inflight) == 1  # (else W would go at once: the test would prove nothing)
    await e.d.ingest(alert("W", severity="critical", rule="w"))  # due now: no slot
    await until(lambda: "W" in e.rx.alert_ids("dept-13"), 20, "dept-13 notified of W")
    assert e.got("hq") == []  # the hanging cell never answered


async def test_run_passes_only_when_a_timer_needs_it(
    running: Callable[..., Awaitable[Env]],
) -> None:
    """Deliveries write timers (group_interval, acknowledgement) all the time;
    run() reads the schedules again only for one earlier than its own wake-up,
    not for each of them, even when they land while it reads."""
    e = await running()
    passes = 0
    due = e.d.due

    async def counted(now: float, groups: bool) -> Due:
        nonlocal passes
        passes += 1
        return await due(now, groups)

    e.d.due = counted  # type: ignore[method-assign]
    for i in range(20):
        await e.d.ingest_and_flush([alert(f"P{i}", severity="critical", rule=f"p{i}")])
    await until(
        lambda: len(e.got("dept-13")) == 20 and not e.d.flusher.inflight,
        20,
        "the 20 groups delivered to dept-13",
    )
    # the first pass, then once for the first group_interval/acknowledgement
    # timer (earlier than the hour it meant to sleep); later timers are later
    assert passes <= 4
