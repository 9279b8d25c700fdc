"""Generator state: the :class:`Scenario` result and the :class:`_Gen` builder.

``_Gen`` holds the seeded random generator, the start time and everything
generated so far (events, expected alerts, near-misses, used places and
identifiers); its methods draw fresh identifiers and places and append
validated inbound events. ``_km`` and ``_offset`` are the great-circle
geometry used to keep places apart. The draw order of these methods is part
of the output: the same seed must give the same bytes.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from schwifty import IBAN

from shared.models import InboundEvent
from vigie.scenario.vocab import (
    CONTACT,
    DEPARTMENTS,
    FIRST,
    LAST,
    PREFIX,
    RULES,
    _fold,
    _imo,
    _iso6346,
)


@dataclass
class Scenario:
    """What :func:`write` puts on disk (see the module docstring)."""

    seed: int
    events: list[dict[str, Any]]
    expected_alerts: list[dict[str, Any]]
    expected_notifications: list[dict[str, Any]]
    near_misses: list[dict[str, Any]]


@dataclass
class _Gen:
    rng: random.Random
    start: datetime
    seed: int
    events: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    near: list[dict[str, Any]] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    #: (canonical entity, agency, occurred_at, event_id, department) for the oracle.
    sightings: list[tuple[str, str, datetime, str, str]] = field(default_factory=list)
    counter: int = 0
    #: kinds whose simple names ran out (long scenarios): straight to the longer names
    crowded: set[str] = field(default_factory=set)

    # -- identifiers -------------------------------------------------------
    def fresh(self, kind: str) -> tuple[str, str]:
        """A never-used identifier of ``kind``: (canonical, written)."""
        for _ in range(5 if kind in self.crowded else 1000):
            canonical, written = self._make(kind)
            if canonical and canonical not in self.used:
                self.used.add(canonical)
                return canonical, written
        if kind in ("person", "organisation"):  # long scenarios: double-barrelled names
            self.crowded.add(kind)
            for _ in range(1000):
                canonical, written = self._make(kind)
                last = self.rng.choice(LAST)
                written = written.replace(" ", f" {last}-", 1)
                if kind == "organisation":  # "SARL Martin-Dupont Import 412"
                    written += f" {self.rng.randrange(1, 1000)}"
                else:  # "Jean K. Martin-Dupont"
                    initial = self.rng.choice(string.ascii_uppercase)
                    written = written.replace(" ", f" {initial}. ", 1)
                canonical = f"{kind}:{_fold(written)}"
                if canonical not in self.used:
                    self.used.add(canonical)
                    return canonical, written
        raise ValueError(f"cannot find a fresh {kind}")

    def _make(self, kind: str) -> tuple[str, str]:
        r = self.rng
        if kind == "phone":
            digits = f"{r.choice('67')}{r.randrange(10**8):08d}"
            if not phonenumbers.is_valid_number(phonenumbers.parse("+33" + digits)):
                return "", ""  # an unallocated range: _make is called again
            pairs = " ".join(digits[i : i + 2] for i in range(1, 9, 2))
            return f"phone:+33{digits}", f"+33 {digits[0]} {pairs}"
        if kind == "vehicle":
            a = "".join(r.choice("ABCDEFGHJKLMNPQRSTVWXYZ") for _ in range(2))
            b = "".join(r.choice("ABCDEFGHJKLMNPQRSTVWXYZ") for _ in range(2))
            n = r.randrange(1, 1000)
            return f"vehicle:{a}{n:03d}{b}", f"{a}-{n:03d}-{b}"
        if kind == "person":
            name = f"{r.choice(FIRST)} {r.choice(LAST)}"
            if r.random() < 0.5:
                name = f"{r.choice(FIRST)} {name}"
            return f"person:{_fold(name)}", name
        if kind == "vessel":
            imo = _imo(f"9{r.randrange(10**5):05d}")
            return f"vessel:{imo}", imo
        if kind == "container":
            owner = "".join(r.choice(string.ascii_uppercase) for _ in range(3))
            c = _iso6346(owner, f"{r.randrange(10**6):06d}")
            return f"container:{c}", c
        if kind == "bank_account":
            iban = IBAN.generate(
                "FR", bank_code="30004", account_code=f"{r.randrange(10**11):011d}"
            )
            return f"bank_account:{iban.compact}", iban.formatted
        if kind == "organisation":
            org = (
                f"SARL {r.choice(LAST)} {r.choice(('Import', 'Négoce', 'Transports', 'Services'))}"
            )
            return f"organisation:{_fold(org)}", org
        if kind == "weapon":
            serial = f"{r.choice(('AK', 'GLK', 'BRT'))}{r.randrange(10**7):07d}"
            return f"weapon:{serial}", serial
        if kind == "parcel":
            p = f"C{r.choice(string.ascii_uppercase)}{r.randrange(10**9):09d}FR"
            return f"parcel:{p}", p
        raise ValueError(kind)

    # -- places ------------------------------------------------------------
    def place(self, dept: str, spatial: bool = True, min_km: float = 2.0) -> tuple[float, float]:
        """A point near the département's main city.

        ``spatial`` points (what the proximity and overlap rules look at) are
        kept ≥ ``min_km`` from every other spatial point: twice the largest
        radius of the default pack (1 km).
        """
        lat0, lon0 = DEPARTMENTS[dept][:2]
        spread = 0.3 if len(dept) == 2 else 0.12
        for _ in range(5000):
            p = (lat0 + self.rng.uniform(-spread, spread), lon0 + self.rng.uniform(-spread, spread))
            if not spatial:
                return p
            if all(_km(p, q) >= min_km for q in self.points):
                self.points.append(p)
                return p
        raise ValueError(f"no room left in {dept}")

    # -- events ------------------------------------------------------------
    def event(
        self,
        agency: str,
        etype: str,
        at: datetime,
        dept: str,
        *,
        point: tuple[float, float] | None = None,
        site: str | None = None,
        entities: list[tuple[str, str]] = (),  # type: ignore[assignment]
        details: dict[str, Any] | None = None,
        handling: str | None = None,
        case_ref: str | None = None,
    ) -> str:
        """Append one event; ``entities`` are (canonical, written). Returns its event_id."""
        self.counter += 1
        event_id = f"{PREFIX[agency]}-s{self.seed}-{self.counter:05d}"
        location: dict[str, Any] = {"department": dept}
        if point is not None:
            location["lat"], location["lon"] = round(point[0], 6), round(point[1], 6)
        if site is not None:
            location["site"] = site
        ev: dict[str, Any] = {
            "event_id": event_id,
            "agency": agency,
            "type": etype,
            "occurred_at": at.isoformat(),
            "location": location,
        }
        if entities:
            ev["entities"] = [{"kind": c.split(":", 1)[0], "value": w} for c, w in entities]
            for c, _ in entities:
                self.sightings.append((c, agency, at, event_id, dept))
        ev["details"] = details or {}
        if handling:
            ev["handling"] = handling
        ev["case_ref"] = case_ref or f"{PREFIX[agency].upper()}-{at.year}-{self.counter:05d}"
        ev["contact"] = CONTACT[agency]
        InboundEvent.model_validate(ev)
        self.events.append(ev)
        return event_id

    def expect(self, rule: str, dept: str, event_ids: list[str], situation: str) -> None:
        self.expected.append(
            {
                "rule": rule,
                "severity": RULES[rule][0],
                "department": dept,
                "event_ids": event_ids,
                "situation": situation,
            }
        )

    def miss(self, rule: str, reason: str, event_ids: list[str]) -> None:
        self.near.append({"rule": rule, "reason": reason, "event_ids": event_ids})


def _km(p: tuple[float, float], q: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (p[0], p[1], q[0], q[1]))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _offset(
    p: tuple[float, float], metres: float, bearing_deg: float = 45.0
) -> tuple[float, float]:
    b = math.radians(bearing_deg)
    dlat = metres * math.cos(b) / 111_320.0
    dlon = metres * math.sin(b) / (111_320.0 * math.cos(math.radians(p[0])))
    return p[0] + dlat, p[1] + dlon
