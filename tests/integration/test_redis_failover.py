"""Fault suite, Redis Cluster: the master owning most of the pipeline's keys is
SIGKILLed mid-stream; its replica is promoted and the services carry on.

Own cluster (the session's stays whole for the other tests), three masters and
three replicas, ``cluster-node-timeout`` 1 s: the replica takes over about two
seconds after the kill. Meanwhile every Redis call to the dead master fails
at once (connection refused) and each service retries its whole idempotent
batch (:func:`shared.retry.retry`); the retry budgets below outlast the
failover, so nothing is dead-lettered. Live traffic (event time = now), the
same target-deconfliction pairs as the other fault tests: the first halves are
in Redis before the kill, nine of the twelve second halves arrive during or
after it, so a lost observation would be a lost correlation.

The bound on duplicates is the one docs/notify.md gives for a killed worker:
a delivery whose sent mark did not reach Redis is sent again, at most
``per_receiver`` per cell.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from shared.localstack import redis_binary
from shared.rediscluster import LocalRedisCluster
from tests.integration.test_faults import pair, td_cells
from tests.notifystack import drained
from tests.waiting import metric, until
from vigie.replay import publish
from vigie.stack import Pipeline

pytestmark = pytest.mark.integration

#: Retry budgets that outlast a local failover (about 2 s): ingest's dedup
#: 0.05 s doubling to 2 s, 10 tries (4.6 s or more); correlate 0.1 s doubling,
#: 10 tries (5.5 s or more); notify's is 8 tries from 0.25 s (12 s or more).
RETRY_ENV = {"VIGIE_RETRIES": "10", "VIGIE_REDIS_ATTEMPTS": "10"}
PER_RECEIVER = 4


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(tmp_path / "cluster", redis_binary()) as cluster:
        yield cluster


@pytest.fixture
def redis_url(own_cluster: LocalRedisCluster) -> str:
    """The services (``make_pipeline``) run on this test's own cluster."""
    return own_cluster.url


async def test_the_busiest_master_killed_mid_stream_loses_no_correlation(
    make_pipeline: Callable[..., Pipeline],
    own_cluster: LocalRedisCluster,
    redis_prefix: str,
    redis_sync: redis.Redis,
) -> None:
    pipeline = make_pipeline(
        extra_env={**RETRY_ENV, "VIGIE_NOTIFY_PER_RECEIVER": str(PER_RECEIVER)}
    )
    assert pipeline.stack is not None and pipeline.receiver is not None
    run = uuid.uuid4().hex[:6]
    depts = ["13", "59", "75", "76", "69", "33", "2A", "93", "971", "972", "973", "974"]
    early, late = depts[:3], depts[3:]
    firsts = [pair(pipeline.topics, run, i, d, False) for i, d in enumerate(depts)]
    seconds = {d: pair(pipeline.topics, run, i, d, True) for i, d in enumerate(depts)}
    await publish(pipeline.stack.bootstrap, firsts + [seconds[d] for d in early])
    receiver = pipeline.receiver
    correlate = pipeline.services["correlate"].port
    # every first half is in Redis (correlate handled it), three matches delivered
    await until(lambda: metric(correlate, "vigie_correlate_events_total") >= 15, 30, "15 events")
    await until(
        lambda: {f"dept-{d}" for d in early} <= set(td_cells(receiver.deliveries)),
        30,
        "the early matches delivered",
    )

    keys = own_cluster.keys_by_master(f"{redis_prefix}*")
    victim = max(keys, key=lambda port: keys[port])
    replica = own_cluster.replica_of(victim)
    sender = asyncio.create_task(
        publish(pipeline.stack.bootstrap, [seconds[d] for d in late], 2.0)  # ≈ 4.5 s
    )
    # mid-stream: once correlate has handled the first of the late halves
    await until(lambda: metric(correlate, "vigie_correlate_events_total") >= 16, 30, "16 events")
    own_cluster.kill(victim)
    killed_at = time.monotonic()
    await asyncio.to_thread(own_cluster.wait_healthy, 30)
    promoted_after = time.monotonic() - killed_at
    assert own_cluster.topology()[replica][0] == "master"
    assert await sender == len(late)

    want = Counter(f"dept-{d}" for d in depts)
    await until(
        lambda: not want - Counter(td_cells(receiver.deliveries)),
        60,
        lambda: f"waiting: {sorted((want - Counter(td_cells(receiver.deliveries))).elements())}",
    )
    await drained(pipeline, redis_sync)  # a duplicate would be there now
    got = Counter(td_cells(receiver.deliveries))
    extra = got - want
    retried = {
        name: proc.log_path.read_text(errors="replace").count("retrying")
        + proc.log_path.read_text(errors="replace").count("redis error")
        for name, proc in pipeline.services.items()
    }
    print(  # the counts, for the report (pytest -s)
        f"failover: master {victim} ({keys[victim]} of {sum(keys.values())} keys) killed, "
        f"replica {replica} serving after {promoted_after:.1f} s; retries logged {retried}; "
        f"{sum(want.values())} notifications expected, {sum(got.values())} delivered, "
        f"{sum(extra.values())} extra"
    )
    assert all(n <= PER_RECEIVER for n in extra.values()), extra
    assert all(p.running for p in pipeline.services.values())
    for name in ("vigie_correlate_failed_total",):
        assert metric(correlate, name) == 0
