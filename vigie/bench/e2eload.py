"""What ``vigie bench e2e`` sends, and the routing it runs under.

Contract: :class:`Stream` builds one run's events (background on fresh
identifiers, plus overlapping planned-operation pairs whose second event
completes a match, each pair in its own département and pair of agencies) and
publishes them at its rate, recording when each completing event was handed
to the producer; a broker error propagates. The routing helpers read the
shipped routing file (``shipped_routing``) and derive what the bench runs
under (``ungrouped``, ``departments``, ``critical_group_wait``) without
changing the file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer

from shared.localstack import local_broker
from shared.topics import AGENCIES

PAIRS = list(itertools.combinations(AGENCIES, 2))
BACKGROUND_AGENCIES = ("police", "gendarmerie", "douane", "marine", "justice", "ofast")
P99_TARGET_MS = 100.0


def acks() -> int | str:
    """The agencies' producer and the raw hop: ``all`` on Apache Kafka (what the
    services and a production agency use: two replicas written), the leader's
    acknowledgement on Tansu (one broker)."""
    return "all" if local_broker() == "kafka" else 1


_LETTERS = "ABCDEFGHJKLMNPQRSTVWXYZ"


def shipped_routing() -> dict[str, Any]:
    from services.notify.route import default_routing_path

    doc: dict[str, Any] = yaml.safe_load(default_routing_path().read_text())
    return doc


def critical_group_wait(doc: dict[str, Any]) -> str:
    """The ``group_wait`` of the first route matching ``severity="critical"``."""
    for route in doc["route"].get("routes", []):
        if any('severity="critical"' in m for m in route.get("matchers", [])):
            return str(route.get("group_wait", doc["route"].get("group_wait", "30s")))
    return str(doc["route"].get("group_wait", "30s"))


def ungrouped(doc: dict[str, Any]) -> dict[str, Any]:
    """The same routing with ``group_by: ['...']`` everywhere (each alert its own group)."""

    def walk(route: dict[str, Any]) -> None:
        if "group_by" in route:
            route["group_by"] = ["..."]
        for child in route.get("routes", []):
            walk(child)

    doc = json.loads(json.dumps(doc))
    walk(doc["route"])
    return doc


def departments(doc: dict[str, Any]) -> list[str]:
    return [r["name"][5:] for r in doc["receivers"] if r["name"].startswith("dept-")]


def _plate(n: int) -> str:
    letters = "".join(_LETTERS[(n // 23**i) % 23] for i in range(4))
    return f"{letters[:2]}{n % 1000:03d}{letters[2:]}"


@dataclass
class Stream:
    """Events for one run: background plus overlapping-operation pairs."""

    run: str
    rate: float
    duration: float
    share: float
    depts: list[str]
    first_pair: int = 0
    #: completing event_id -> (publication time, département)
    sent: dict[str, tuple[float, str]] = field(default_factory=dict)
    published: int = 0
    seconds: float = 0.0

    def events(self) -> list[tuple[str, dict[str, Any], bool]]:
        n = int(self.rate * self.duration)
        pairs = max(1, int(n * self.share / 2))
        every = max(2, n // pairs)
        now = datetime.now(UTC)
        out: list[tuple[str, dict[str, Any], bool]] = []
        pair = 0
        pending: list[tuple[str, dict[str, Any]]] = []
        for i in range(n):
            at = (now + timedelta(seconds=i / self.rate)).isoformat()
            if i % every == 0 and pair < pairs:
                # a planned operation; its twin, 100 m away by another agency, comes later
                # Alerts with the same labels share a notification group (Alertmanager's
                # model): later ones would wait group_interval. Labels differ by
                # département and the pair of agencies: 101 x 28 distinct groups.
                k = self.first_pair + pair
                dept = self.depts[k % len(self.depts)]
                first, second = PAIRS[(k // len(self.depts)) % len(PAIRS)]
                # a fresh place for every pair of the bench: 4+ km apart, pairs never meet
                lat, lon = 42.5 + (k // 200) * 0.05, -4.0 + (k % 200) * 0.05
                start = now + timedelta(days=1, hours=pair % 24)
                base = {
                    "type": "planned_operation",
                    "occurred_at": at,
                    "location": {"lat": lat, "lon": lon, "department": dept},
                    "details": {
                        "starts_at": start.isoformat(),
                        "ends_at": (start + timedelta(hours=3)).isoformat(),
                    },
                }
                out.append((first, {**base, "event_id": f"b{self.run}-p{pair}a"}, False))
                twin = json.loads(json.dumps(base))
                twin["location"]["lat"] = lat + 0.0009
                pending.append((second, {**twin, "event_id": f"b{self.run}-p{pair}b"}))
                pair += 1
            elif pending and i % every == every // 2:
                agency, twin_ev = pending.pop(0)
                out.append((agency, twin_ev, True))
            else:
                kind = ("seizure", "arrest", "intel_share")[i % 3]
                ev: dict[str, Any] = {
                    "event_id": f"b{self.run}-{i}",
                    "type": kind,
                    "occurred_at": at,
                    "location": {"department": self.depts[i % len(self.depts)]},
                    "entities": [{"kind": "vehicle", "value": _plate(i)}],
                    "details": {"drug": "cannabis", "quantity_kg": 1.5}
                    if kind == "seizure"
                    else {},
                }
                out.append((BACKGROUND_AGENCIES[i % len(BACKGROUND_AGENCIES)], ev, False))
        for agency, twin_ev in pending:
            out.append((agency, twin_ev, True))
        return out

    async def publish(self, bootstrap: str, topic_of: Any) -> None:
        """Publish at ``rate``, in ticks of 10 ms; completing events are timestamped."""
        events = self.events()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=acks())
        await producer.start()
        try:
            t0 = time.monotonic()
            for i, (agency, ev, completing) in enumerate(events):
                due = t0 + i / self.rate
                delay = due - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                ev["agency"] = agency
                if completing:
                    self.sent[ev["event_id"]] = (time.time(), ev["location"]["department"])
                await producer.send(
                    topic_of(agency), json.dumps(ev).encode(), key=ev["event_id"].encode()
                )
            await producer.flush()
            self.published = len(events)
            self.seconds = time.monotonic() - t0
        finally:
            await producer.stop()
