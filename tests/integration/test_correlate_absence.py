"""Absence rules on the real broker and Redis.

* the timers' store: taken by one worker only, a dead worker's timers taken
  again once its lease expires, a missing event cancels, keys in one slot and
  expiring;
* through the correlate service: a tip armed by one worker fires from another
  after the first is killed, once, with its deterministic id; a replay of the
  tip raises nothing more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from services.correlate.absence import BUCKETS, AbsenceStore
from services.correlate.engine import Engine
from services.correlate.fingerprint import fingerprint
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.correlate.state import MemoryState, key_slot_of
from shared.localstack import LocalStack
from shared.models import NormalizedEvent
from shared.redis import Keys
from tests.kafkautil import consume_all, produce, wait_services_caught_up
from tests.waiting import until
from vigie.stack import Pipeline

T0 = datetime(2026, 3, 1, 3, tzinfo=UTC)
DAY = 86_400_000


def _event(eid: str, etype: str, at: datetime, vessel: str, **details: str) -> NormalizedEvent:
    return NormalizedEvent.model_validate(
        {
            "event_id": eid,
            "agency": "marine" if etype == "maritime_intel" else "douane",
            "type": etype,
            "occurred_at": at.isoformat(),
            "location": {"department": "76"},
            "entities": [{"kind": "vessel", "token": vessel}],
            "details": details,
            "case_ref": f"c-{eid}",
        }
    )


def _tip(i: int) -> NormalizedEvent:
    arrival = (T0 + timedelta(days=2)).isoformat()
    return _event(f"tip-{i}", "maritime_intel", T0, f"v{i}", expected_arrival=arrival)


def _engine(redis: aioredis.Redis, prefix: str, clock: Callable[[], int]) -> Engine:
    store = AbsenceStore(redis, prefix)
    return Engine(
        load_dir(DEFAULT_DIR), MemoryState(), Keys(prefix), 7 * DAY, clock, absences=store
    )


async def test_timers_are_taken_once_and_again_after_a_dead_workers_lease(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    wall = [1_000_000]
    a = _engine(redis_client, redis_prefix, lambda: wall[0])
    b = _engine(redis_client, redis_prefix, lambda: wall[0])
    tips = [_tip(i) for i in range(40)]
    await a.process(tips)
    # a seizure on vessel 0 cancels its timer; a replay of tip 1 arms nothing new
    await b.process([_event("sz", "seizure", T0 + timedelta(days=3), "v0"), tips[1]])
    due = int((T0 + timedelta(days=4, hours=12)).timestamp() * 1000)
    assert not await a.fire(due - 1)  # not due yet
    # two workers at once: every timer taken by exactly one of them
    fa, fb = await asyncio.gather(a.fire(due), b.fire(due))
    ids_a, ids_b = {x.alert_id for x, *_ in fa}, {x.alert_id for x, *_ in fb}
    assert not ids_a & ids_b
    expected = {
        fingerprint("maritime_tip_unanswered", f"entity:vessel=v{i}", f"marine|tip-{i}")
        for i in range(1, 40)
    }
    assert ids_a | ids_b == expected
    await b.ack(fb)
    # worker a dies before sending: nobody takes its timers until the lease expires
    assert not await b.fire(due)
    wall[0] += AbsenceStore.LEASE_MS + 1
    again = await b.fire(due)
    assert {x.alert_id for x, *_ in again} == ids_a
    await b.ack(again)
    wall[0] += AbsenceStore.LEASE_MS + 1
    assert not await b.fire(due + 100 * DAY)
    # once fired, a replayed tip arms nothing
    await a.process(tips[:5])
    assert not await a.fire(due + 100 * DAY)
    # every key expires; a script call's keys share a slot (Redis Cluster)
    keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}*", count=1000)]
    assert keys and all([await redis_client.pttl(k) > 0 for k in keys])
    slots: dict[str, set[int]] = {}
    for k in keys:
        tag = k.decode().split("{", 1)[1].split("}", 1)[0]
        slots.setdefault(tag, set()).add(key_slot_of(k.decode()))
    assert all(len(s) == 1 for s in slots.values())
    assert len([t for t in slots if t.startswith("abs")]) <= BUCKETS


async def test_a_timer_armed_by_a_killed_worker_fires_from_another(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline(
        extra_env={"VIGIE_IDLE_PARTITION_S": "1", "VIGIE_ABSENCE_POLL_S": "0.2"}
    )
    assert pipeline.stack is not None
    bootstrap, topics = pipeline.stack.bootstrap, pipeline.topics
    tip = _tip(7).model_dump_json(by_alias=True).encode()
    await produce(bootstrap, topics.events, [tip], key=b"v7")
    redis = aioredis.Redis.from_url(pipeline.stack.redis_url)
    timers = f"{pipeline.redis_prefix}:corr:{{abs*}}:a[tl]"  # armed, or taken by a worker

    async def armed() -> bool:
        return bool([k async for k in redis.scan_iter(match=timers)])

    async def none_armed() -> bool:
        """Every timer fired and acknowledged: its alert is on the topic (a
        worker sends before it acknowledges) and nothing is left to fire."""
        return not await armed()

    try:
        await until(armed, 30, "the tip arms a timer")
        pipeline.services["correlate"].kill()
        pipeline.start_service("correlate", "2")
        pipeline.wait_ready(60, ["correlate2"])
        later = _event("sz-other", "seizure", T0 + timedelta(days=10), "v-other")
        await produce(bootstrap, topics.events, [later.model_dump_json(by_alias=True).encode()])
        await until(none_armed, 60, "the tip's timer fired and was acknowledged")
        alerts = await consume_all(bootstrap, topics.alerts, expect=1)
        absent = [json.loads(r.value) for r in alerts]
        absent = [a for a in absent if a["rule"] == "maritime_tip_unanswered"]
        want = fingerprint("maritime_tip_unanswered", "entity:vessel=v7", "marine|tip-7")
        assert [a["alert_id"] for a in absent] == [want]
        assert absent[0]["starts_at"].startswith("2026-03-05T03:00:00")
        # a replay of the tip raises nothing more
        await produce(bootstrap, topics.events, [tip], key=b"v7")
        await wait_services_caught_up(bootstrap, topics, ["correlate"])
        await until(none_armed, 60, "no timer left after the replay")
    finally:
        await redis.aclose()
    again = await consume_all(bootstrap, topics.alerts)
    assert len([r for r in again if json.loads(r.value)["rule"] == "maritime_tip_unanswered"]) == 1
