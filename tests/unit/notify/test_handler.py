"""Notify's decisions on the memory store, with a fake channel: no Redis, no HTTP.

The same handler the worker runs (``NotifyHandler``); only the store and the
notifiers differ. Timelines on an injected clock, as in Alertmanager's
acceptance tests (the integration suite runs the same stories on Redis).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from services.notify.cells import Cell, parse_cells
from services.notify.channels.base import DeliveryError, Notification
from services.notify.channels.registry import Notifiers
from services.notify.delivery import DeliveryConfig
from services.notify.handler import NotifyHandler
from services.notify.intake import Intake
from services.notify.metrics import NotifyMetrics
from services.notify.route import parse_routing
from services.notify.stages.base import Flush, Pipeline
from services.notify.store.memory import MemoryStore
from shared.models import Alert, Annotations

T0 = 1_800_000_000.0

ROUTING = """
route:
  receiver: hq
  group_by: [rule, department]
  group_wait: 10s
  group_interval: 60s
  repeat_interval: 300s
  routes:
    - receiver: dept-13
      matchers: ['department="13"']
      routes:
        - matchers: ['severity="critical"']
          group_wait: 0s
receivers: [{name: hq}, {name: dept-13}]
"""
CELLS = {
    "cells": {
        "hq": {"clearance": "secret"},
        "dept-13": {"ack_timeout": "60s", "escalate_to": "hq"},
    }
}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeChannel:
    """Records what it is asked to send; fails for the cells in ``failing``."""

    store: MemoryStore
    sent: list[tuple[str, Notification]] = field(default_factory=list)
    failing: dict[str, DeliveryError] = field(default_factory=dict)
    #: what the store held for the cell when each send began: (sent marks, held alerts)
    seen: list[tuple[int, int]] = field(default_factory=list)

    async def send(self, cell: Cell, channel: Any, n: Notification) -> None:
        marks = [v for k, (v, _) in self.store.nflog.items() if f":{cell.id}:" in k]
        held = len(self.store.cell_alerts.get(cell.id, {}))
        self.seen.append((sum(m.startswith("sent:") for m in marks), held))
        await asyncio.sleep(0)  # let other deliveries run meanwhile
        if cell.id in self.failing:
            raise self.failing[cell.id]
        self.sent.append((cell.id, n))

    async def close(self) -> None:
        pass

    def got(self, cell: str) -> list[list[tuple[str, str]]]:
        return [
            [(a["fingerprint"], a["status"]) for a in n.alerts] for c, n in self.sent if c == cell
        ]


@dataclass
class Env:
    h: NotifyHandler
    clock: Clock
    ch: FakeChannel
    audit: list[dict[str, Any]]
    dlq: list[dict[str, Any]]

    async def at(self, t: float) -> None:
        self.clock.t = T0 + t
        await self.h.flush_due()
        await self.h.escalate_due()
        await self.h.drain()


def make(store: MemoryStore | None = None, clock: Clock | None = None, **cfg: Any) -> Env:
    clock = clock or Clock()
    store = store or MemoryStore(clock)
    ch = FakeChannel(store)
    audit: list[dict[str, Any]] = []
    dlq: list[dict[str, Any]] = []

    async def to(sink: list[dict[str, Any]], r: dict[str, Any]) -> None:
        sink.append(r)

    h = NotifyHandler(
        store,
        Notifiers({"webhook": ch}),
        parse_routing(yaml.safe_load(ROUTING)),
        parse_cells(CELLS),
        DeliveryConfig(**{"attempts": 2, "retry_base_s": 0.0, **cfg}),
        NotifyMetrics(CollectorRegistry()),
        lambda r: to(audit, r),
        lambda r: to(dlq, r),
        clock,
    )
    return Env(h, clock, ch, audit, dlq)


def alert(aid: str, status: str = "firing", severity: str = "high") -> Alert:
    return Alert(
        alert_id=aid,
        rule="r1",
        severity=severity,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        labels={"rule": "r1", "severity": severity, "department": "13"},
        annotations=Annotations(summary=f"summary {aid}"),
        starts_at=datetime(2026, 11, 27, tzinfo=UTC),
        evidence=[],
    )


async def test_group_wait_interval_repeat_and_drop() -> None:
    e = make()
    await e.h.ingest(alert("A"))
    await e.at(9)
    assert e.ch.got("dept-13") == []
    await e.at(10)
    assert e.ch.got("dept-13") == [[("A", "firing")]]
    await e.h.ingest_many([alert("B"), alert("B")])
    await e.at(70)
    assert e.ch.got("dept-13")[-1] == [("A", "firing"), ("B", "firing")]
    await e.at(130)
    assert len(e.ch.got("dept-13")) == 2  # same content within repeat_interval
    await e.at(371)
    assert len(e.ch.got("dept-13")) == 3  # repeat_interval passed
    await e.h.ingest_many([alert("A", "resolved"), alert("B", "resolved")])
    await e.at(431)
    assert e.ch.got("dept-13")[-1] == [("A", "resolved"), ("B", "resolved")]
    assert e.h.store.groups == {} and e.h.store.groups_due == {}  # dropped


async def test_two_handlers_on_one_store_notify_once() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    one, two = make(store, clock), make(store, clock)
    await one.h.ingest_many([alert(f"R{i}") for i in range(5)])
    clock.t = T0 + 10
    await asyncio.gather(one.h.flush_due(), two.h.flush_due(), one.h.flush_due())
    assert len(one.ch.sent) + len(two.ch.sent) == 1  # one group, leased once


async def test_retried_at_later_flushes_then_dead_lettered() -> None:
    e = make(give_up_s=30.0, redeliver_s=5.0)
    e.ch.failing["dept-13"] = DeliveryError("HTTP 503")
    await e.h.ingest(alert("D", severity="critical"))
    for t in (0, 5, 10, 20, 35):
        await e.at(t)
    assert e.ch.sent == []
    assert [r["reason"] for r in e.dlq] == ["delivery_failed"]
    outcomes = [r["outcome"] for r in e.audit if r["kind"] == "delivery"]
    assert outcomes[-1] == "failed" and set(outcomes[:-1]) == {"retrying"}
    await e.at(40)
    assert len(e.dlq) == 1  # given up for good: not tried again


async def test_an_answer_that_retrying_cannot_help_is_dead_lettered_at_once() -> None:
    e = make(give_up_s=3600.0)
    e.ch.failing["dept-13"] = DeliveryError("HTTP 404", retryable=False)
    await e.h.ingest_and_flush([alert("N", severity="critical")])
    await e.h.drain()
    assert [(r["reason"], r["message"]) for r in e.dlq] == [("delivery_failed", "HTTP 404")]


async def test_a_channel_without_notifier_fails_for_good() -> None:
    e = make()
    e.h.notifiers.by_type.clear()
    await e.h.ingest_and_flush([alert("X", severity="critical")])
    await e.h.drain()
    assert [r["message"] for r in e.dlq] == ["unknown channel 'webhook'"]


async def test_each_delivery_is_marked_and_held_before_its_slot_frees() -> None:
    """per_receiver 1: when the k-th notification of a cell starts, the k-1
    before it are marked sent and their alerts held (a kill resends at most one)."""
    e = make(per_receiver=1)
    alerts = [alert(f"S{i}", severity="critical").model_copy() for i in range(6)]
    for i, a in enumerate(alerts):
        a.labels["rule"] = f"r{i}"  # six groups
    await e.h.ingest_and_flush(alerts)
    await e.h.drain()
    assert len(e.ch.got("dept-13")) == 6
    assert e.ch.seen == [(k, k) for k in range(6)]


async def test_escalated_unless_acknowledged() -> None:
    e = make()
    await e.h.ingest_many([alert("E", severity="critical"), alert("K", severity="critical")])
    await e.at(0)
    assert e.ch.got("dept-13") == [[("E", "firing"), ("K", "firing")]]
    assert (await e.h.acknowledge("dept-13", "K") or {})["acked_by"] == "dept-13"
    assert await e.h.acknowledge("hq", "K") is None  # not hq's alert
    await e.at(61)
    (esc,) = [n for c, n in e.ch.sent if c == "hq"]
    assert esc.kind == "escalation" and [a["fingerprint"] for a in esc.alerts] == ["E"]
    assert [a["fingerprint"] for a in await e.h.list_alerts("hq")] == ["E"]
    await e.at(2000)
    assert len([c for c, _ in e.ch.sent if c == "hq"]) == 1  # hq is the top


async def test_a_silence_mutes_and_is_counted_once() -> None:
    e = make()
    t = e.clock.t
    await e.h.silences.create("dept-13", ['rule="r1"'], t, t + 100, "", t)
    await e.h.ingest_and_flush([alert("S", severity="critical")])
    await e.h.drain()
    assert e.ch.sent == []
    assert e.h.metrics.muted.labels("silenced")._value.get() == 1
    assert await e.h.count_silences() == 1


async def test_a_pipeline_runs_its_stages_in_order_and_stops_at_a_failure() -> None:
    ran: list[str] = []

    def stage(name: str, fail: bool = False) -> Any:
        async def run(flush: Flush) -> None:
            ran.append(name)
            if fail:
                raise RuntimeError(name)

        return run

    with pytest.raises(RuntimeError):
        await Pipeline(stage("a"), stage("b", fail=True), stage("c"))(Flush(0.0))
    assert ran == ["a", "b"]


async def test_intake_dead_letters_what_it_cannot_record() -> None:
    """A bad record, a store that stays down, a bug: each alert ends in the DLQ
    with a machine-readable reason, counted; nothing raises."""
    dlq: list[dict[str, Any]] = []
    metrics = NotifyMetrics(CollectorRegistry())
    recorded: list[list[Alert]] = []
    failure: list[BaseException] = []

    async def record(alerts: list[Alert]) -> int:
        if failure:
            raise failure[0]
        recorded.append(alerts)
        return len(alerts)

    async def sink(r: dict[str, Any]) -> None:
        dlq.append(r)

    intake = Intake(record, metrics, sink, attempts=3, base_delay=0.0)
    good = alert("G").model_dump_json().encode()
    await intake.handle([good, b"{not json", b'{"alert_id": "x"}'])
    assert [a.alert_id for a in recorded[0]] == ["G"]
    assert [r["reason"] for r in dlq] == ["bad_alert", "bad_alert"]
    assert dlq[1]["field"] and dlq[1]["original"] == '{"alert_id": "x"}'
    failure.append(RedisError("down"))
    await intake.handle([good])
    assert dlq[-1]["reason"] == "state_unavailable" and dlq[-1]["alert_id"] == "G"
    failure[0] = RuntimeError("bug")
    await intake.handle([good])
    assert dlq[-1] == {"reason": "internal_error", "original": good.decode()}
    counted = {r: metrics.dlq.labels(r)._value.get() for r in ("bad_alert", "state_unavailable")}
    assert counted == {"bad_alert": 2, "state_unavailable": 1}
