"""The notify store contract, run on the memory store and on Redis (single and cluster).

The handler's unit tests run on :class:`MemoryStore`; the worker on
:class:`RedisStore`. Both must answer alike: the claims of the notification
log, group versions, leases on the schedules, incidents and holds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notify.store.base import Claim, GroupAdd, NotifyStore
from services.notify.store.memory import MemoryStore
from services.notify.store.redis_store import RedisStore
from shared.localstack import LocalStack
from shared.models import Alert
from shared.redis import Keys, create_redis

pytestmark = pytest.mark.integration

T = 1_800_000_000.0


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: Any, stack: LocalStack, redis_prefix: str) -> AsyncIterator[NotifyStore]:
    if request.param == "memory":
        yield MemoryStore(lambda: T)
        return
    url = stack.redis_url
    if request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster").url
    client = create_redis(url)
    s = RedisStore(client, Keys(redis_prefix))
    yield s
    await s.close()
    async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


def alert(aid: str, status: str = "firing") -> Alert:
    return Alert.model_validate(
        {
            "alert_id": aid,
            "rule": "r1",
            "severity": "high",
            "status": status,
            "labels": {"rule": "r1", "department": "13"},
            "annotations": {"summary": "s"},
            "starts_at": datetime(2026, 11, 27, tzinfo=UTC),
            "evidence": [],
        }
    )


async def test_claims_of_the_notification_log(store: NotifyStore) -> None:
    key = store.nflog_key("g:x", "dept-13", 0, "state1")
    [got] = await store.claim([Claim(key, T, 30, 300)])
    assert float(got) == T  # free: claimed, the first try's time
    [busy] = await store.claim([Claim(key, T + 1, 30, 300)])
    assert busy.startswith("claimed:")
    await store.mark(key, f"failed:{T}", 60, {}, {})
    [again] = await store.claim([Claim(key, T + 5, 30, 300)])
    assert float(again) == T  # a failed one keeps its first try's time
    await store.mark(key, f"sent:{T + 6}", 86400, {}, {})
    [sent] = await store.claim([Claim(key, T + 100, 30, 300)])
    assert sent == f"sent:{T + 6}"  # within repeat_interval
    [repeat] = await store.claim([Claim(key, T + 306, 30, 300)])
    assert float(repeat) == T + 306  # repeat_interval passed: claimed anew


async def test_group_versions_claims_and_guarded_delete(store: NotifyStore) -> None:
    claim = Claim(store.nflog_key("g:g1", "hq", 0, "s"), T, 30, 300)
    [first] = await store.add_to_groups(
        [GroupAdd("g1", "r", '{"a":"1"}', ["A", "m1"], [claim])], 60
    )
    assert first.new and first.ver == "1" and [float(c) for c in first.claims] == [T]
    [same] = await store.add_to_groups([GroupAdd("g1", "r", "{}", ["A", "m1"], [claim])], 60)
    assert not same.new and same.ver == "1" and same.claims == []  # nothing changed
    [more] = await store.add_to_groups([GroupAdd("g1", "r", "{}", ["A", "m2", "B", "m3"])], 60)
    assert more.ver == "3"
    [(meta, members)] = await store.read_groups(["g1"])
    assert meta["route"] == "r" and meta["labels"] == '{"a":"1"}' and meta["ver"] == "3"
    assert sorted(m.decode() if isinstance(m, bytes) else m for m in members) == ["m2", "m3"]
    await store.remove_from_groups(["g1"], "A")
    await store.remove_from_groups(["g1"], "A")  # gone already: no new version
    assert await store.delete_groups([("g1", "3")]) == [False]  # stale version
    assert await store.delete_groups([("g1", "4")]) == [True]
    assert await store.read_groups(["g1"]) == [({}, [])]


async def test_schedules_lease_and_unschedule(store: NotifyStore) -> None:
    await store.schedule({"a": T + 1, "b": T + 2, "c": T + 50}, {})
    await store.schedule({}, {"a": T + 99, "d": T + 3})  # known: only where none is set
    due = await store.lease_due(T + 5, T + 30, 2, 0)
    assert due.groups == ["a", "b"] and due.escalations == [] and due.first == T + 3
    again = await store.lease_due(T + 5, T + 30, 10, 0)
    assert again.groups == ["d"]  # a and b are leased until T + 30
    await store.unschedule(["a", "b"], T + 31, {})  # not their lease: kept
    assert (await store.lease_due(T + 30, T + 60, 10, 0)).groups == ["a", "b", "d"]
    await store.unschedule(["a"], T + 60, {"b": T + 70})
    left = await store.lease_due(T + 100, T + 130, 10, 0)
    assert left.groups == ["c", "d", "b"]  # by time: c 50, d 60, b 70; a gone


async def test_incidents_holds_and_escalation_timers(store: NotifyStore) -> None:
    docs = [alert("A").model_dump_json(), alert("A", "resolved").model_dump_json()]
    assert await store.record_incidents([alert("A")], docs[:1], T, 600) == [1]
    assert (await store.incident("A"))["state"] == "open"
    assert await store.firing_labels() == {"A": {"department": "13", "rule": "r1"}}
    assert await store.record_incidents([alert("A", "resolved")], docs[1:], T, 600) == [1]
    assert await store.firing_labels() == {}
    assert await store.record_incidents([alert("A")], docs[:1], T + 1, 600) == [2]  # new incident
    await store.update_incident("A", {"acked_by": "hq"})
    assert (await store.incident("A"))["acked_by"] == "hq"
    assert json.loads(await store.alert_doc("A") or "")["status"] == "firing"
    await store.hold({"hq": {"A": T}}, {"A|2|hq": T + 60})
    await store.mark(store.nflog_key("a:B", "hq", 0, "e"), "sent:1", 60, {"hq": {"B": T + 1}}, {})
    await store.hold({}, {"A|2|hq": T + 999})  # an ack timer already running is kept
    assert await store.holds("hq", "A") and not await store.holds("dept-13", "A")
    assert [(aid, inc.get("seq")) for aid, _, inc in await store.held("hq", 10)] == [
        ("B", None),  # newest first; B has no incident
        ("A", "2"),
    ]
    due = await store.lease_due(T + 60, T + 90, 0, 10)
    assert due.escalations == ["A|2|hq"] and due.groups == []
    await store.escalation_retry("A|2|hq", T + 95)
    assert (await store.lease_due(T + 95, T + 120, 0, 10)).escalations == ["A|2|hq"]
    await store.escalation_done("A|2|hq")
    assert (await store.lease_due(T + 999, T + 1000, 0, 10)).escalations == []


async def test_silences(store: NotifyStore) -> None:
    s = await store.silences.create("dept-13", ['rule="r1"'], T, T + 100, "c", T)
    assert [x.id for x in await store.silences.active("dept-13", T)] == [s.id]
    assert await store.count_silences(["dept-13", "hq"]) == 1
    got = await store.silences_of(["dept-13", "hq"], T)
    assert {c: [x.id for x in v] for c, v in got.items()} == {"dept-13": [s.id], "hq": []}
    assert not await store.silences.expire("hq", s.id)  # another cell's
    assert await store.silences.expire("dept-13", s.id)
    assert await store.silences.active("dept-13", T) == []
    with pytest.raises(ValueError):
        await store.silences.create("dept-13", ['rule="r1"'], T, T - 1, "", T)


async def test_scripts_lost_by_redis_are_loaded_again(store: NotifyStore) -> None:
    """Redis restarted without persistence (or SCRIPT FLUSH): the next call loads
    the scripts and runs its pipeline again, once."""
    if isinstance(store, RedisStore):
        await store.conn.redis.script_flush()
    key = store.nflog_key("g:x", "hq", 0, "s")
    [got] = await store.claim([Claim(key, T, 30, 300)])
    assert float(got) == T
    if isinstance(store, RedisStore):
        await store.conn.redis.script_flush()
    [added] = await store.add_to_groups([GroupAdd("g", "r", "{}", ["A", "m"])], 60)
    assert added.new and added.ver == "1"
