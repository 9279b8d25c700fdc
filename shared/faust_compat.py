"""Every use of a Faust, mode or aiokafka private API, in one place.

Vigie reaches past the public APIs of faust-streaming and aiokafka where they
offer no way to do what it needs; each such use is a function here, with the
reason (and the upstream issue when there is one). Nothing else in ``shared/``
or ``services/`` touches a ``_private`` attribute of those libraries
(``tests/unit/test_faust_compat.py`` greps for it).

:data:`PRIVATE` lists every private attribute used, with its owner; the test
checks that each still exists (and, for methods, still takes the arguments
used here) on the installed versions, so an incompatible upgrade fails that
test loudly, naming the attribute and this module, instead of failing at run
time in a worker. Known to work: faust-streaming 0.15, aiokafka 0.13-0.14,
mode-streaming 0.7 (the pinned ranges in pyproject.toml). The handbook notes
that aiokafka minor releases broke Faust before (0.11, 0.13).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.errors import KafkaError
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor
from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.utils.functional import consecutive_numbers
from mode import Worker


@dataclass(frozen=True)
class Private:
    """One private attribute Vigie uses: where, which, why, and the arguments used."""

    owner: Any
    name: str
    why: str
    params: tuple[str, ...] = ()


#: Every private attribute used below (checked by tests/unit/test_faust_compat.py).
PRIVATE: tuple[Private, ...] = (
    Private(
        faust_aiokafka.Producer,
        "_ensure_producer",
        "BatchSender appends records to aiokafka batches itself; Faust exposes no "
        "public accessor to the AIOKafkaProducer it started",
    ),
    Private(
        AIOKafkaProducer,
        "_partition",
        "the partition the producer's own partitioner picks for a key, so a batch "
        "goes where topic.send would put each record (no public API)",
        ("topic", "partition", "key", "value", "serialized_key", "serialized_value"),
    ),
    Private(
        AIOKafkaClient,
        "_wait_on_metadata",
        "BatchSender needs the topic's partitions before it picks them (what send() awaits)",
        ("topic",),
    ),
    Private(
        AIOKafkaConsumer,
        "_fetch_max_wait_ms",
        "set by patch_fetch_wait on the consumer Faust built, before it starts",
    ),
    Private(
        faust_aiokafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
        "Faust 0.15 hard-codes fetch_max_wait_ms=1500 for worker consumers; Tansu "
        "holds each fetch that long even with records waiting (VIGIE_FETCH_MAX_WAIT_MS)",
        ("transport",),
    ),
    Private(
        faust_aiokafka.Producer,
        "_settings_extra",
        "Faust 0.15 asks aiokafka for enable_idempotence only inside transactions; "
        "Vigie wants idempotent at-least-once producers (acks=all)",
    ),
    Private(
        PrometheusMonitor,
        "_metrics",
        "the monitor's metric families, reused by Vigie's cached-label monitor "
        "(Faust looks labelled children up for every message)",
    ),
    Private(
        PrometheusMonitor,
        "_stream_label",
        "the stream label Faust's monitor computes, reused by the cached monitor",
        ("stream",),
    ),
    Private(
        Stream,
        "_enable_passive",
        "take_batches drains the stream passively as take_events does (faust-streaming "
        "0.15 Stream.take_events; a batch that never waits to fill, cf. faust-streaming #616)",
        ("channel",),
    ),
    Private(Stream, "_processors", "take_batches removes its buffering processor on close"),
    Private(
        Stream,
        "_on_stream_event_out",
        "take_batches acks a batch without one coroutine per event (Stream.ack's body)",
    ),
    Private(Stream, "_on_message_out", "same: the sensor hook Stream.ack calls"),
    Private(
        Worker,
        "_schedule_shutdown",
        "mode's signal handler: Vigie bounds a graceful stop with a watchdog",
        ("signal",),
    ),
    Private(
        Consumer,
        "_new_offset",
        "faust-streaming #606 (fix proposed in PR #707): the commit skips an un-acked "
        "message right after the committed offset; patch_commit_guard replaces it",
        ("tp",),
    ),
    Private(Consumer, "_acked", "patch_commit_guard: the acked offsets per partition"),
    Private(Consumer, "_acked_index", "patch_commit_guard: the same, as a set"),
    Private(Consumer, "_gap", "patch_commit_guard: offsets the broker skipped (compaction)"),
    Private(Consumer, "_committed_offset", "patch_commit_guard: the next offset to read"),
    Private(Consumer, "_unacked_messages", "patch_commit_guard: messages in flight"),
    Private(
        AIOKafkaAdminClient,
        "_client",
        "the broker count (replication factor capped at it) from the admin's "
        "cluster metadata; the admin client has no describe_cluster returning it",
    ),
    Private(
        aiokafka_fetcher.Fetcher,
        "_proc_offset_request",
        "aiokafka 0.14 retries a failed offset lookup (a partition with no committed "
        "offset) on the same node without refreshing metadata: after a Kafka leader "
        "change a worker asked the old leader forever (robinhood/aiokafka#9); "
        "patch_offset_reset_metadata forces the refresh",
        ("node_id", "topic_data"),
    ),
)


def _has(owner: Any, name: str) -> bool:
    if isinstance(owner, type) and name in getattr(owner, "__annotations__", {}):
        return True
    return hasattr(owner, name) or any(name in vars(k) for k in getattr(owner, "__mro__", ()))


def incompatibilities() -> Iterator[str]:
    """One line per private attribute missing or with changed arguments."""
    for p in PRIVATE:
        where = f"{p.owner.__module__}.{p.owner.__qualname__}.{p.name}"
        if not _has(p.owner, p.name) and not _set_in_init(p.owner, p.name):
            yield f"{where} is gone ({p.why}); adapt shared/faust_compat.py"
            continue
        if p.params:
            params = list(inspect.signature(getattr(p.owner, p.name)).parameters)[1:]
            if params[: len(p.params)] != list(p.params):
                yield (
                    f"{where} now takes {params}, not {list(p.params)}: "
                    "adapt shared/faust_compat.py"
                )


def _set_in_init(owner: Any, name: str) -> bool:
    """Instance attributes: assigned in the class's ``__init__`` source."""
    try:
        return f"self.{name} =" in inspect.getsource(owner.__init__) or any(
            f"self.{name} =" in inspect.getsource(k) for k in owner.__mro__[:3]
        )
    except (OSError, TypeError):
        return False


# -- producer ---------------------------------------------------------------


def started_producer(app: Any) -> AIOKafkaProducer:
    """The AIOKafkaProducer a Faust app's producer started (Faust's aiokafka driver)."""
    return cast(AIOKafkaProducer, app.producer._ensure_producer())


async def wait_for_metadata(producer: AIOKafkaProducer, topic: str) -> None:
    """Wait until the producer knows ``topic``'s partitions (aiokafka's client)."""
    await producer.client._wait_on_metadata(topic)


def partition_of(producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes) -> int:
    """The partition the producer's partitioner picks for ``key`` (as ``send`` would)."""
    return cast(int, producer._partition(topic, None, None, None, key, value))


def broker_count(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the admin client's cluster metadata lists (at least 1)."""
    return len(admin._client.cluster.brokers()) or 1


# -- worker settings Faust does not expose ------------------------------------


def patch_fetch_wait(waits: dict[str, int]) -> None:
    """Make Faust's hard-coded consumer ``fetch_max_wait_ms=1500`` ``waits[app id]``.

    Faust 0.15 passes 1500 ms to aiokafka for every worker consumer. Tansu (the
    local broker) holds each fetch that long even when records are waiting, so
    every hop could add up to 1.5 s. The patch wraps the consumer factory and
    sets aiokafka's ``_fetch_max_wait_ms`` (read when the consumer starts).
    Apache Kafka answers as soon as data is there, so production may keep a
    larger value. Idempotent."""
    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_vigie_patched", False):
        return
    original = thread_cls._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait = waits.get(self.app.conf.id)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait
        return consumer

    thread_cls._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    setattr(thread_cls, "_vigie_patched", True)  # noqa: B010


def patch_idempotence(app_ids: set[str]) -> None:
    """Make the producers of the apps in ``app_ids`` idempotent with ``acks=all``.

    Faust 0.15 asks aiokafka for ``enable_idempotence`` only inside
    transactions; the patch adds it (with ``acks=all``, which it requires) to
    the producer settings, so a producer's own retries after a lost
    acknowledgement (a broker failing over) never write a record twice. Idempotent."""
    producer_cls = faust_aiokafka.Producer
    if getattr(producer_cls, "_vigie_patched", False):
        return
    original = producer_cls._settings_extra

    def _settings_extra(self: Any) -> Any:
        extra = dict(original(self))
        if self.app.conf.id in app_ids:
            extra.update(acks="all", enable_idempotence=True)
        return extra

    producer_cls._settings_extra = _settings_extra  # type: ignore[method-assign]
    setattr(producer_cls, "_vigie_patched", True)  # noqa: B010


def _guarded_new_offset(self: Any, tp: Any) -> int | None:
    """Faust's ``Consumer._new_offset`` (faust-streaming 0.15), with its head check fixed.

    The offset to commit for ``tp``: one past the first run of consecutive acked
    offsets, the broker's gaps (compacted records) counting as acked. Faust
    commits that run even when the offset *at* the committed position is not
    acked (it tolerates a head gap of one: faust-streaming #606), which skips
    a message still held, e.g. one whose dead-letter send failed. Here: no
    commit while the message at the committed offset is not acked; before the
    first commit (no committed offset), never past a message still in flight.
    """
    acked = self._acked[tp]
    if not acked:
        return None
    gaps, max_offset = self._gap[tp], max(acked)
    if gaps:
        candidates = sorted(gaps.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            filled = [o for entry in candidates for o in range(entry.begin, entry.end)]
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], max_offset + 1))
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the message at the committed offset is not acked yet
    batch = next(consecutive_numbers(acked))
    if committed is None:
        held = [m.offset for m in list(self._unacked_messages) if m.tp == tp and not m.acked]
        if held:
            batch = [o for o in batch if o < min(held)]
            if not batch:
                return None
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def patch_offset_reset_metadata() -> None:
    """Force a metadata update when a consumer's offset lookup fails. Idempotent.

    aiokafka 0.14 resets a partition without a committed offset with a
    ``ListOffsets`` request to the leader it knows; on an error
    (``Fetcher._update_fetch_positions``) it only logs, sleeps and asks the same
    node again. After an Apache Kafka leader change (a broker paused or killed)
    a worker asked the old leader forever (``NotLeaderForPartitionError`` every
    100 ms) and never read that partition again; found by
    tests/integration/test_kafka_faults.py (SIGSTOP of a broker).
    """
    fetcher_cls = aiokafka_fetcher.Fetcher
    if getattr(fetcher_cls, "_vigie_patched", False):
        return
    original = fetcher_cls._proc_offset_request

    async def _proc_offset_request(self: Any, node_id: int, topic_data: Any) -> Any:
        try:
            return await original(self, node_id, topic_data)
        except KafkaError:
            self._client.force_metadata_update()
            raise

    fetcher_cls._proc_offset_request = _proc_offset_request
    setattr(fetcher_cls, "_vigie_patched", True)  # noqa: B010


def patch_commit_guard() -> None:
    """Never commit past an un-acked message (:func:`_guarded_new_offset`). Idempotent."""
    Consumer._new_offset = _guarded_new_offset  # type: ignore[method-assign]


def monitor_metrics(monitor: Any) -> Any:
    """The metric families of Faust's Prometheus monitor."""
    return monitor._metrics


class CachedPrometheusMonitor(PrometheusMonitor):  # type: ignore[misc]
    """Faust's Prometheus monitor, with its per-message label lookups cached.

    The same metrics, the same values; Faust's own class looks up labelled
    children (and normalises the stream's label with regular expressions) for
    every message and every event. Uses the monitor's ``_metrics`` and
    ``_stream_label`` (see :data:`PRIVATE`).
    """

    def __init__(self, metrics: Any, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._by_topic: dict[str, Any] = {}
        self._by_tp: dict[Any, Any] = {}
        self._by_stream: dict[int, Any] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        topic = self._by_topic.get(tp.topic)
        if topic is None:
            topic = self._by_topic[tp.topic] = m.messages_received_per_topics.labels(topic=tp.topic)
        topic.inc()
        part = self._by_tp.get(tp)
        if part is None:
            part = self._by_tp[tp] = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
        part.set(offset)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        child = self._by_stream.get(id(stream))
        if child is None:
            child = self._by_stream[id(stream)] = m.total_events_per_stream.labels(
                stream=f"stream.{self._stream_label(stream)}.events"
            )
        child.inc()
        return state


# -- streams (shared.flow.take_batches) --------------------------------------


def stream_out_hooks(stream: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(on_stream_event_out, on_message_out)``: the sensor hooks Stream.ack calls."""
    return stream._on_stream_event_out, stream._on_message_out


def drain_passively(stream: Any) -> None:
    """Let the stream pull from its channel without an ``async for`` on it (as
    ``take_events`` does), so processors see every event."""
    stream._enable_passive(cast(Any, aiter(stream.channel)))


def remove_processor(stream: Any, processor: Callable[..., Any]) -> None:
    """Undo ``stream.add_processor(processor)`` (Faust has no public remover)."""
    stream._processors.remove(processor)


#: The mode Worker method Vigie's worker overrides to bound a graceful stop.
SCHEDULE_SHUTDOWN = "_schedule_shutdown"
