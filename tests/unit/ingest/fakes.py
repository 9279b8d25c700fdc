"""In-memory stand-ins for ingest's store and sender, and Faust-like events."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from services.ingest.dedup import Seen
from services.ingest.handler import IngestHandler
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import TokenCache
from services.ingest.pseudonymize import Pseudonymizer
from services.ingest.settings import IngestSettings
from shared.kafka import Record


class MemoryDedup:
    """The Redis dedup's verdicts, in a dict: first coordinates win."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}
        self.fail = False

    async def mark(self, items: list[tuple[str, str, str]]) -> list[Seen]:
        if self.fail:
            raise ConnectionError("redis down")
        out = []
        for agency, event_id, coords in items:
            first = self.seen.setdefault((agency, event_id), coords)
            out.append(Seen.NEW if first == coords else Seen.DUPLICATE)
        return out


class MemorySender:
    """Records per topic; ``fail`` names topics whose sends raise."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Record]] = {}
        self.fail: set[str] = set()
        self.calls = 0

    async def send(self, topic: str, records: Iterable[Record]) -> int:
        self.calls += 1
        if topic in self.fail:
            raise TimeoutError("broker refused")
        recs = list(records)
        self.topics.setdefault(topic, []).extend(recs)
        return len(recs)


def message(
    topic: str,
    offset: int,
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int = 0,
) -> SimpleNamespace:
    """A Faust event as ingest sees it (``.message``, ``.value``)."""
    msg = SimpleNamespace(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_795_000_000.0,
        headers=headers,
        key=key,
    )
    return SimpleNamespace(message=msg, value=value, key=key)


def handler(
    prefix: str = "t.", **over: object
) -> tuple[IngestHandler, MemoryDedup, MemorySender, IngestMetrics]:
    """An :class:`IngestHandler` on in-memory fakes, with its own registry."""
    fields: dict[str, object] = {"retries": 2, **over}
    settings = IngestSettings(
        topic_prefix=prefix,
        pseudo_key="unit-test-key-0123456789abcdef",
        **fields,  # type: ignore[arg-type]
    )
    metrics = IngestMetrics(CollectorRegistry())
    pseudo = TokenCache(Pseudonymizer(settings.key_bytes(), "t1"))
    dedup, sender = MemoryDedup(), MemorySender()
    return IngestHandler(settings, pseudo, dedup, sender, metrics), dedup, sender, metrics


def total(metric: object, **labels: str) -> float:
    """Sum of a counter's samples (``_total``) matching ``labels``."""
    out = 0.0
    for fam in metric.collect():  # type: ignore[attr-defined]
        for s in fam.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                out += s.value
    return out
