"""A seeded, deterministic scenario: background traffic, embedded situations, near-misses.

:func:`generate` returns a :class:`Scenario` for ``(seed, days, start, volume)``;
the same arguments always give the same bytes. It holds:

* ``events``: inbound v1 events (each checked with
  :class:`shared.models.InboundEvent`; a generator bug raises ``ValueError``),
  sorted by ``occurred_at``. Every agency appears; départements 13, 59, 75, 76,
  2A, 33, 69, 93 and overseas 971, 972, 973, 974.
* ``expected_alerts``: one object per alert the default rule pack must raise:
  ``rule``, ``severity``, ``department``, ``event_ids`` (the events that form
  the match: all must be in the alert's evidence) and ``situation``.
* ``expected_notifications``: ``cell``, ``rule``, ``department`` per cell that
  must be notified, computed with notify's own routing code on the shipped
  routing file (labels ``rule``, ``severity``, ``department``, ``axis``).
* ``near_misses``: situations that look like a match but must raise nothing
  (just outside a window, just too far, same agency, similar-looking but
  different identifiers), with the reason.

Background traffic (seizures, arrests, intelligence, deal points mapped and
dismantled, planned operations, tips, transactions...) uses fresh identifiers
only and places every deal point, dismantling, planned operation and violent
incident at least 2 km (twice the largest radius) from every other one, so it
raises no alert by construction; it holds no violent incident (those are only
in situations, so the violence-cluster expectations stay exact). Several
situations legitimately also raise ``target_deconfliction`` (e.g. a vessel
tipped by the navy and seized by customs): those co-firings are derived by a
small oracle over the generated entities, not typed by hand. The generator
refuses (``ValueError``) a scenario in which two expected alerts share a rule
and a département (they would share a notification group and be delayed by
``group_interval``).
"""

from __future__ import annotations

import json
import math
import random
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from schwifty import IBAN

from shared.models import InboundEvent

#: Default pack (see services/correlate/rules/default): id -> (severity, axis).
RULES: dict[str, tuple[str, str]] = {
    "target_deconfliction": ("high", "organisations"),
    "operation_deconfliction": ("critical", "organisations"),
    "violence_near_deal_point": ("high", "organisations"),
    "retaliation_after_dismantling": ("high", "organisations"),
    "threat_escalation": ("critical", "organisations"),
    "violence_cluster": ("high", "organisations"),
    "maritime_tip_to_port": ("high", "circulation"),
    "corruption_link": ("high", "organisations"),
    "laundering_link": ("warning", "organisations"),
    "arms_and_drugs": ("high", "organisations"),
    "maritime_tip_unanswered": ("high", "circulation"),
    "operation_without_outcome": ("warning", "circulation"),
}
TD_WINDOW = timedelta(days=90)
TD_KINDS = {"person", "phone", "vehicle", "vessel", "container", "bank_account"}
SPATIAL = {"deal_point", "dismantling_operation", "planned_operation"}
VIOLENT = {"kidnapping", "sequestration", "torture", "homicide", "attempted_homicide", "shooting"}

#: Département -> (lat, lon) of its main city, daily background volume, ports/airports.
DEPARTMENTS: dict[str, tuple[float, float, float, tuple[str, ...]]] = {
    "13": (43.296, 5.370, 6.0, ("FRMRS",)),
    "59": (50.629, 3.057, 4.0, ("FRDKK",)),
    "75": (48.857, 2.352, 5.0, ("FRORY",)),
    "76": (49.494, 0.108, 3.0, ("FRLEH",)),
    "2A": (41.919, 8.738, 1.0, ("FRAJA",)),
    "33": (44.838, -0.579, 2.0, ()),
    "69": (45.764, 4.836, 2.0, ()),
    "93": (48.910, 2.450, 3.0, ()),
    "971": (16.241, -61.533, 1.5, ("GPPTP",)),
    "972": (14.616, -61.059, 1.5, ("MQFDF",)),
    "973": (4.922, -52.313, 1.0, ()),
    "974": (-20.882, 55.450, 1.5, ()),
}
PREFIX = {
    "police": "pol",
    "gendarmerie": "gen",
    "douane": "dou",
    "marine": "mar",
    "justice": "jus",
    "diplomatie": "dip",
    "sgmer": "sgm",
    "ofast": "ofa",
}
CONTACT = {
    "police": "DIPN permanence stups",
    "gendarmerie": "SR permanence",
    "douane": "DNRED permanence",
    "marine": "COM permanence",
    "justice": "JIRS permanence",
    "diplomatie": "DCIS permanence",
    "sgmer": "SGMer permanence",
    "ofast": "OFAST permanence",
}

# Background mix: type -> (weight, agencies, entity kinds it may carry).
BACKGROUND: list[tuple[str, int, tuple[str, ...], tuple[str, ...]]] = [
    (
        "seizure",
        26,
        ("douane", "police", "gendarmerie", "marine"),
        ("vehicle", "phone", "container", "parcel"),
    ),
    ("arrest", 18, ("police", "gendarmerie"), ("person", "phone", "vehicle")),
    (
        "intel_share",
        12,
        ("police", "gendarmerie", "douane", "ofast", "justice"),
        ("person", "phone", "organisation"),
    ),
    ("deal_point", 8, ("police", "gendarmerie"), ()),
    ("dismantling_operation", 4, ("police", "gendarmerie"), ()),
    ("planned_operation", 5, ("police", "gendarmerie", "douane"), ()),
    ("operation_report", 5, ("police", "gendarmerie"), ()),
    ("international_tip", 3, ("diplomatie", "ofast"), ("vessel", "container")),
    ("maritime_intel", 3, ("marine", "sgmer"), ("vessel",)),
    ("death_threat", 2, ("police", "gendarmerie", "justice"), ("person",)),
    ("corruption_signal", 2, ("douane", "justice", "ofast"), ("person",)),
    ("suspicious_transaction", 4, ("ofast", "justice"), ("bank_account", "organisation")),
    ("asset_seizure", 2, ("justice",), ("bank_account",)),
    ("weapons_seizure", 3, ("police", "gendarmerie", "douane"), ("weapon",)),
]
DRUGS = ("cannabis", "cocaine", "heroin", "synthetic")
FIRST = (
    "Karim",
    "Sofiane",
    "Nadia",
    "Jean-Marc",
    "Mehdi",
    "Lucas",
    "Inès",
    "Yanis",
    "Léa",
    "Moussa",
    "Hugo",
    "Samir",
    "Chloé",
    "Rayan",
    "Emma",
    "Bilal",
    "Théo",
    "Sarah",
)
LAST = (
    "Benali",
    "Dupont",
    "Martin",
    "Haddad",
    "Lefèvre",
    "Traoré",
    "Rossi",
    "Moreau",
    "Nguyen",
    "Cissé",
    "Garcia",
    "Mercier",
    "Zeroual",
    "Petit",
    "Leroy",
    "Diallo",
)


@dataclass
class Scenario:
    """What :func:`write` puts on disk (see the module docstring)."""

    seed: int
    events: list[dict[str, Any]]
    expected_alerts: list[dict[str, Any]]
    expected_notifications: list[dict[str, Any]]
    near_misses: list[dict[str, Any]]


def _imo(body: str) -> str:
    check = sum(int(d) * (7 - i) for i, d in enumerate(body)) % 10
    return f"IMO {body}{check}"


def _iso6346(owner: str, serial: str) -> str:
    values = {c: v for c, v in zip(string.ascii_uppercase, _ISO_LETTER_VALUES, strict=True)}
    code = owner + "U" + serial
    total = sum((int(c) if c.isdigit() else values[c]) * 2**i for i, c in enumerate(code))
    return f"{code}{total % 11 % 10}"


# ISO 6346 letter values: 10.. skipping multiples of 11.
_ISO_LETTER_VALUES = [v for v in range(10, 39) if v % 11][:26]


def _fold(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


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


def _background(g: _Gen, days: int, volume: float, dense: bool = False) -> None:
    weights = [w for _, w, _, _ in BACKGROUND]
    for day in range(days):
        base = g.start + timedelta(days=day)
        weekend = base.weekday() >= 5
        for dept, (_, _, per_day, sites) in DEPARTMENTS.items():
            n = _poisson(g.rng, per_day * volume * (0.6 if weekend else 1.0))
            for _ in range(n):
                etype, _, agencies, kinds = g.rng.choices(BACKGROUND, weights)[0]
                agency = g.rng.choice(agencies)
                # operations at dawn, the rest mostly in working hours
                hour = (
                    g.rng.choice((5, 6, 6, 7))
                    if etype in ("arrest", "dismantling_operation")
                    else int(g.rng.triangular(0, 23.99, 14))
                )
                at = base + timedelta(
                    hours=hour, minutes=g.rng.randrange(60), seconds=g.rng.randrange(60)
                )
                ents = [g.fresh(k) for k in kinds if g.rng.random() < 0.6]
                details: dict[str, Any] = {}
                site = None
                if etype == "seizure":
                    vector = g.rng.choice(("road", "road", "postal", "maritime", "air"))
                    details = {
                        "drug": g.rng.choice(DRUGS),
                        "vector": vector,
                        "quantity_kg": round(g.rng.lognormvariate(1.5, 1.4), 2),
                    }
                    if vector in ("maritime", "air") and sites:
                        site = sites[0]
                elif etype == "deal_point":
                    details = {"status": "active"}
                elif etype == "planned_operation":
                    s = at + timedelta(days=g.rng.randrange(1, 4), hours=g.rng.randrange(4))
                    details = {
                        "starts_at": s.isoformat(),
                        "ends_at": (s + timedelta(hours=3)).isoformat(),
                    }
                elif etype in ("suspicious_transaction", "asset_seizure"):
                    details = {"amount_eur": g.rng.randrange(5_000, 900_000, 500)}
                located = etype not in (
                    "suspicious_transaction",
                    "intel_share",
                    "international_tip",
                )
                spatial = etype in SPATIAL and not dense
                g.event(
                    agency,
                    etype,
                    at,
                    dept,
                    point=g.place(dept, spatial) if located else None,
                    site=site,
                    entities=ents,
                    details=details,
                    handling="secret" if g.rng.random() < 0.1 else None,
                )


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _situations(g: _Gen, days: int) -> None:
    """One positive situation per default rule, each next to its near-misses."""
    d, h = timedelta(days=1), timedelta(hours=1)
    span = max(days - 2, 1)

    def anchor(k: int) -> datetime:
        return g.start + timedelta(days=1 + k * span / 10, hours=10)

    # 1. target deconfliction: the same phone, written two ways, police then customs.
    t = anchor(0)
    c, w = g.fresh("phone")
    digits = c.split("+33", 1)[1]
    local = "0" + digits[0] + " " + " ".join(digits[i : i + 2] for i in range(1, 9, 2))
    a = g.event(
        "police",
        "seizure",
        t - 3 * d,
        "13",
        point=g.place("13"),
        entities=[(c, w)],
        details={"drug": "cocaine", "quantity_kg": 12.5, "vector": "road"},
    )
    b = g.event(
        "douane",
        "seizure",
        t,
        "13",
        site="FRMRS",
        entities=[(c, local)],
        details={"drug": "cannabis", "quantity_kg": 300, "vector": "maritime"},
    )
    g.expect("target_deconfliction", "13", [a, b], "same phone, two spellings, police+douane")
    v = g.fresh("vehicle")
    e1 = g.event("police", "arrest", t - 2 * d, "59", point=g.place("59"), entities=[v])
    e2 = g.event(
        "police",
        "seizure",
        t,
        "59",
        point=g.place("59"),
        entities=[v],
        details={"drug": "cannabis", "quantity_kg": 40, "vector": "road"},
    )
    g.miss("target_deconfliction", "same agency twice", [e1, e2])
    p1 = g.fresh("phone")
    near_digit = str((int(p1[0][-1]) + 1) % 10)
    p2c, p2w = p1[0][:-1] + near_digit, p1[1][:-1] + near_digit
    if p2c in g.used:
        raise ValueError("similar phone already used")
    g.used.add(p2c)
    e1 = g.event("gendarmerie", "arrest", t - d, "2A", point=g.place("2A"), entities=[p1])
    e2 = g.event(
        "douane",
        "seizure",
        t,
        "2A",
        point=g.place("2A"),
        entities=[(p2c, p2w)],
        details={"drug": "cannabis", "quantity_kg": 8, "vector": "maritime"},
    )
    g.miss("target_deconfliction", "similar-looking phones, last digit differs", [e1, e2])
    acct = g.fresh("bank_account")
    e1 = g.event("police", "intel_share", t - 92 * d, "33", entities=[acct])
    e2 = g.event("gendarmerie", "arrest", t, "33", point=g.place("33"), entities=[acct])
    g.miss("target_deconfliction", "92 days apart (window 90d)", [e1, e2])

    # 2. operation deconfliction: two agencies plan overlapping operations 300 m apart.
    t = anchor(1)
    p = g.place("75")
    s = (t + d).replace(hour=6, minute=0)
    a = g.event(
        "police",
        "planned_operation",
        t,
        "75",
        point=p,
        details={"starts_at": s.isoformat(), "ends_at": (s + 4 * h).isoformat()},
    )
    b = g.event(
        "douane",
        "planned_operation",
        t + 2 * h,
        "75",
        point=_offset(p, 300),
        details={"starts_at": (s + h).isoformat(), "ends_at": (s + 3 * h).isoformat()},
    )
    g.expect("operation_deconfliction", "75", [a, b], "overlapping operations 300 m apart")
    q = g.place("69")
    e1 = g.event(
        "gendarmerie",
        "planned_operation",
        t,
        "69",
        point=q,
        details={"starts_at": s.isoformat(), "ends_at": (s + 4 * h).isoformat()},
    )
    e2 = g.event(
        "police",
        "planned_operation",
        t + h,
        "69",
        point=_offset(q, 700),
        details={"starts_at": s.isoformat(), "ends_at": (s + 4 * h).isoformat()},
    )
    g.miss("operation_deconfliction", "700 m apart (radius 500 m)", [e1, e2])
    q = g.place("93")
    e1 = g.event(
        "police",
        "planned_operation",
        t,
        "93",
        point=q,
        details={"starts_at": s.isoformat(), "ends_at": (s + 4 * h).isoformat()},
    )
    e2 = g.event(
        "gendarmerie",
        "planned_operation",
        t + h,
        "93",
        point=_offset(q, 100),
        details={"starts_at": (s + 4.5 * h).isoformat(), "ends_at": (s + 6 * h).isoformat()},
    )
    g.miss("operation_deconfliction", "same place, intervals 30 min apart", [e1, e2])
    q = g.place("93")
    e1 = g.event(
        "police",
        "planned_operation",
        t,
        "93",
        point=q,
        details={"starts_at": s.isoformat(), "ends_at": (s + 4 * h).isoformat()},
    )
    e2 = g.event(
        "police",
        "planned_operation",
        t + h,
        "93",
        point=_offset(q, 50),
        details={"starts_at": s.isoformat(), "ends_at": (s + 2 * h).isoformat()},
    )
    g.miss("operation_deconfliction", "same agency", [e1, e2])

    # 3. violence near an active deal point (59); too far in 13; not active in 76.
    t = anchor(2)
    p = g.place("59")
    a = g.event("police", "deal_point", t - 10 * d, "59", point=p, details={"status": "active"})
    b = g.event("gendarmerie", "shooting", t, "59", point=_offset(p, 200), details={"victims": 1})
    g.expect("violence_near_deal_point", "59", [a, b], "shooting 200 m from an active deal point")
    q = g.place("13")
    e1 = g.event("police", "deal_point", t - 9 * d, "13", point=q, details={"status": "active"})
    e2 = g.event(
        "police",
        "homicide",
        t - 20 * d,
        "13",
        point=_offset(q, 700, 200),
        details={"victims": 1, "weapon_types": ["firearm"]},
    )
    # (the homicide comes first in time here; the deal point is mapped afterwards)
    g.miss("violence_near_deal_point", "700 m away (radius 500 m)", [e1, e2])
    q = g.place("76")
    e1 = g.event("police", "deal_point", t - 5 * d, "76", point=q, details={"status": "dismantled"})
    e2 = g.event("police", "shooting", t, "76", point=_offset(q, 100), details={"victims": 0})
    g.miss("violence_near_deal_point", "deal point no longer active", [e1, e2])

    # 4. retaliation after a dismantling (13); outside the 14-day window in 2A.
    t = anchor(3)
    p = g.place("13")
    a = g.event("police", "dismantling_operation", t - 5 * d, "13", point=p)
    b = g.event(
        "police",
        "attempted_homicide",
        t,
        "13",
        point=_offset(p, 400, 120),
        details={"victims": 1, "weapon_types": ["firearm"]},
    )
    g.expect(
        "retaliation_after_dismantling", "13", [a, b], "attempted homicide 400 m, 5 days after"
    )
    q = g.place("2A")
    e1 = g.event("gendarmerie", "dismantling_operation", t - 15 * d, "2A", point=q)
    e2 = g.event("gendarmerie", "shooting", t, "2A", point=_offset(q, 300), details={"victims": 0})
    g.miss("retaliation_after_dismantling", "15 days after (window 14d)", [e1, e2])

    # 5. threat escalation (972): threat then kidnapping of the same person.
    t = anchor(4)
    person = g.fresh("person")
    a = g.event("police", "death_threat", t - 6 * d, "972", point=g.place("972"), entities=[person])
    b = g.event(
        "gendarmerie",
        "kidnapping",
        t,
        "972",
        point=g.place("972"),
        entities=[person],
        details={"victims": 1},
        handling="secret",
    )
    g.expect("threat_escalation", "972", [a, b], "death threat then kidnapping, same person")
    other = g.fresh("person")
    e1 = g.event(
        "gendarmerie",
        "kidnapping",
        t - 45 * d,
        "971",
        point=g.place("971"),
        entities=[other],
        details={"victims": 1},
    )
    e2 = g.event(
        "gendarmerie", "death_threat", t - 43 * d, "971", point=g.place("971"), entities=[other]
    )
    g.miss("threat_escalation", "wrong order: violence before the threat", [e1, e2])

    # 6. violence cluster: three violent incidents in 974 within 5 days; 971 spans 8.5 days.
    t = anchor(5)
    ids = [
        g.event(
            "gendarmerie",
            "shooting",
            t - 5 * d,
            "974",
            point=g.place("974"),
            details={"victims": 0},
        ),
        g.event(
            "police", "homicide", t - 2 * d, "974", point=g.place("974"), details={"victims": 1}
        ),
        g.event(
            "gendarmerie", "sequestration", t, "974", point=g.place("974"), details={"victims": 2}
        ),
    ]
    g.expect("violence_cluster", "974", ids, "three violent incidents in 5 days")
    ids = [
        g.event(
            "gendarmerie",
            "shooting",
            t - 8.5 * d,
            "971",
            point=g.place("971"),
            details={"victims": 0},
        ),
        g.event(
            "police", "torture", t - 4 * d, "971", point=g.place("971"), details={"victims": 1}
        ),
        g.event("gendarmerie", "shooting", t, "971", point=g.place("971"), details={"victims": 0}),
    ]
    g.miss("violence_cluster", "three incidents over 8.5 days (window 7d)", ids)

    # 7. maritime tip to port (76): navy intel, then customs seizure on the same vessel.
    t = anchor(6)
    vessel = g.fresh("vessel")
    a = g.event(
        "marine",
        "maritime_intel",
        t - 4 * d,
        "76",
        point=g.place("76"),
        entities=[vessel],
        details={"vector": "maritime"},
        handling="secret",
    )
    b = g.event(
        "douane",
        "seizure",
        t,
        "76",
        site="FRLEH",
        entities=[vessel],
        details={"drug": "cocaine", "quantity_kg": 850, "vector": "maritime"},
    )
    g.expect("maritime_tip_to_port", "76", [a, b], "navy intel then seizure on the vessel")
    other = g.fresh("container")
    e1 = g.event(
        "marine",
        "maritime_intel",
        t - 31 * d,
        "2A",
        point=g.place("2A"),
        entities=[other],
        details={"vector": "maritime"},
    )
    e2 = g.event(
        "marine",
        "seizure",
        t,
        "2A",
        point=g.place("2A"),
        entities=[other],
        details={"drug": "cocaine", "quantity_kg": 40, "vector": "maritime"},
    )
    g.miss("maritime_tip_to_port", "31 days apart (window 30d)", [e1, e2])

    # 8. corruption link at a port of La Réunion; 61 days apart at Cayenne's port.
    t = anchor(7)
    a = g.event(
        "douane",
        "corruption_signal",
        t - 10 * d,
        "974",
        site="RELPT",
        details={"amount_eur": 20_000},
    )
    b = g.event(
        "douane",
        "seizure",
        t,
        "974",
        site="RELPT",
        details={"drug": "cocaine", "quantity_kg": 60, "vector": "maritime"},
    )
    g.expect("corruption_link", "974", [a, b], "corruption signal and seizure at the same port")
    e1 = g.event("douane", "corruption_signal", t - 61 * d, "973", site="GFDDC")
    e2 = g.event(
        "douane",
        "seizure",
        t,
        "973",
        site="GFDDC",
        details={"drug": "cocaine", "quantity_kg": 15, "vector": "maritime"},
    )
    g.miss("corruption_link", "61 days apart (window 60d)", [e1, e2])

    # 9. laundering link (75): a suspicious transaction, then an arrest sharing the account.
    t = anchor(8)
    acct = g.fresh("bank_account")
    a = g.event(
        "justice",
        "suspicious_transaction",
        t - 20 * d,
        "75",
        entities=[acct],
        details={"amount_eur": 480_000},
    )
    b = g.event("police", "arrest", t, "75", point=g.place("75"), entities=[acct])
    g.expect("laundering_link", "75", [a, b], "transaction and arrest share an account")
    x, y = g.fresh("bank_account"), g.fresh("bank_account")
    e1 = g.event(
        "ofast",
        "suspicious_transaction",
        t - 3 * d,
        "93",
        entities=[x],
        details={"amount_eur": 75_000},
    )
    e2 = g.event("ofast", "arrest", t, "93", point=g.place("93"), entities=[y])
    g.miss("laundering_link", "different accounts of the same bank", [e1, e2])

    # 10. arms and drugs (33): weapons then drugs in the same vehicle, same agency.
    t = anchor(9)
    veh = g.fresh("vehicle")
    a = g.event(
        "gendarmerie",
        "weapons_seizure",
        t - 2 * d,
        "33",
        point=g.place("33"),
        entities=[veh],
        details={"weapon_types": ["assault_rifle"]},
    )
    b = g.event(
        "gendarmerie",
        "seizure",
        t,
        "33",
        point=g.place("33"),
        entities=[veh],
        details={"drug": "cannabis", "quantity_kg": 120, "vector": "road"},
    )
    g.expect("arms_and_drugs", "33", [a, b], "weapons then drugs in the same vehicle")
    veh2 = g.fresh("vehicle")
    e1 = g.event(
        "police",
        "weapons_seizure",
        t - 31 * d,
        "69",
        point=g.place("69"),
        entities=[veh2],
        details={"weapon_types": ["handgun"]},
    )
    e2 = g.event(
        "police",
        "seizure",
        t,
        "69",
        point=g.place("69"),
        entities=[veh2],
        details={"drug": "cannabis", "quantity_kg": 30, "vector": "road"},
    )
    g.miss("arms_and_drugs", "31 days apart (window 30d)", [e1, e2])

    # Sightings from a tip to sgmer and diplomatie keep all eight agencies in a small run.
    g.event(
        "sgmer",
        "maritime_intel",
        anchor(2),
        "972",
        point=g.place("972"),
        entities=[g.fresh("vessel")],
        details={"vector": "maritime"},
    )
    g.event("diplomatie", "international_tip", anchor(3), "973", entities=[g.fresh("container")])


def _tip(g: _Gen, agency: str, at: datetime, dept: str, vessel: Any, arrival: datetime) -> str:
    """A maritime tip on ``vessel`` (None: a fresh one, drawn after the place)
    expected at the département's port at ``arrival``."""
    point = g.place(dept)
    return g.event(
        agency,
        "maritime_intel",
        at,
        dept,
        point=point,
        entities=[vessel or g.fresh("vessel")],
        details={
            "vector": "maritime",
            "expected_arrival": arrival.isoformat(),
            "expected_port": DEPARTMENTS[dept][3][0],
        },
    )


def _operation(g: _Gen, agency: str, at: datetime, dept: str, hours: int) -> str:
    """A planned operation a day after ``at``, lasting ``hours``."""
    start = at + timedelta(days=1)
    end = start + timedelta(hours=hours)
    details = {"starts_at": start.isoformat(), "ends_at": end.isoformat()}
    return g.event(agency, "planned_operation", at, dept, point=g.place(dept), details=details)


def _absences(g: _Gen, days: int) -> set[str]:
    """The absence situations; returns the planned operations left without a report."""
    d, h = timedelta(days=1), timedelta(hours=1)
    span = max(days - 2, 1)
    t = g.start + timedelta(days=1 + 2 * span / 10, hours=7)
    # 11. a navy tip on a vessel expected at Dunkirk in 3 days; nothing on it since
    tip = _tip(g, "marine", t, "59", None, t + 3 * d)
    g.expect("maritime_tip_unanswered", "59", [tip], "tip, and nothing at the expected port")
    vessel = g.fresh("vessel")
    answered = _tip(g, "sgmer", t, "13", vessel, t + 2 * d)
    boarding = g.event("sgmer", "operation_report", t + 3 * d, "13", entities=[vessel])
    g.miss("maritime_tip_unanswered", "boarded a day after its arrival", [answered, boarding])
    # 12. a planned operation in 69 that ended with no outcome report
    t = g.start + timedelta(days=1 + 3 * span / 10, hours=9)
    op = _operation(g, "gendarmerie", t, "69", 4)
    g.expect("operation_without_outcome", "69", [op], "operation ended, no outcome report")
    late = _operation(g, "police", t, "93", 2)
    case = next(e["case_ref"] for e in g.events if e["event_id"] == late)
    report = g.event("police", "operation_report", t + 3 * d + 22 * h, "93", case_ref=case)
    g.miss("operation_without_outcome", "report 2 days 20 hours after the end (3d)", [late, report])
    return {op, late}


def _outcome_reports(g: _Gen, unreported: set[str]) -> None:
    """Every other planned operation gets its outcome report (same agency, same
    case, 6 hours after its end): background traffic raises no absence."""
    for ev in list(g.events):
        if ev["type"] != "planned_operation" or ev["event_id"] in unreported:
            continue
        end = datetime.fromisoformat(ev["details"]["ends_at"])
        dept = ev["location"]["department"]
        g.event(
            ev["agency"],
            "operation_report",
            end + timedelta(hours=6),
            dept,
            case_ref=ev["case_ref"],
        )


def _target_oracle(g: _Gen) -> None:
    """Add the target_deconfliction alerts that situations raise as a side effect.

    For each entity of a deconfliction kind: the first sighting by a second
    agency within 90 days of an earlier one completes a match (department of
    that event). More than two agencies on one entity is refused (each new
    agency raises a new alert; the scenario keeps it simple).
    """
    explicit = {tuple(e["event_ids"]) for e in g.expected if e["rule"] == "target_deconfliction"}
    by_entity: dict[str, list[tuple[datetime, str, str, str]]] = {}
    for canonical, agency, at, event_id, dept in g.sightings:
        if canonical.split(":", 1)[0] in TD_KINDS:
            by_entity.setdefault(canonical, []).append((at, agency, event_id, dept))
    for canonical, seen in sorted(by_entity.items()):
        seen.sort()
        if len({a for _, a, _, _ in seen}) > 2:
            raise ValueError(f"{canonical} held by more than two agencies")
        for i, (at, agency, event_id, dept) in enumerate(seen):
            earlier = [s for s in seen[:i] if s[1] != agency and at - s[0] <= TD_WINDOW]
            if earlier:
                ids = [earlier[0][2], event_id]
                if tuple(ids) not in explicit:
                    g.expect(
                        "target_deconfliction",
                        dept,
                        ids,
                        f"side effect: same {canonical.split(':')[0]}, two agencies",
                    )
                break


def _check(g: _Gen) -> None:
    seen: set[tuple[str, str]] = set()
    for e in g.expected:
        key = (e["rule"], e["department"])
        if key in seen:
            raise ValueError(f"two expected alerts share rule and département: {key}")
        seen.add(key)
    # violence cluster: only the intended département has 3 incidents within 7 days
    times: dict[str, list[datetime]] = {}
    for ev in g.events:
        if ev["type"] in VIOLENT:
            times.setdefault(ev["location"]["department"], []).append(
                datetime.fromisoformat(ev["occurred_at"])
            )
    clusters = {e["department"] for e in g.expected if e["rule"] == "violence_cluster"}
    for dept, ts in times.items():
        ts.sort()
        dense = any(ts[i + 2] - ts[i] <= timedelta(days=7) for i in range(len(ts) - 2))
        if dense != (dept in clusters):
            raise ValueError(f"violence cluster expectation wrong in {dept}")


def expected_notifications(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells each expected alert reaches, by notify's routing on the shipped file."""
    from services.notify.route import default_routing_path, load_routing

    routing = load_routing(default_routing_path())
    out: list[dict[str, Any]] = []
    for a in alerts:
        labels = {
            "rule": a["rule"],
            "severity": a["severity"],
            "department": a["department"],
            "axis": RULES[a["rule"]][1],
        }
        for cell in routing.receivers_for(labels):
            out.append({"cell": cell, "rule": a["rule"], "department": a["department"]})
    return out


def generate(
    seed: int,
    days: int = 14,
    start: datetime | None = None,
    volume: float = 1.0,
    dense: bool = False,
) -> Scenario:
    """Build the scenario; ``ValueError`` on impossible arguments or a generator bug.

    ``dense`` (backfill benchmarks: hundreds of thousands of events): background
    places are not kept apart, so background traffic may raise alerts of its
    own and the expectations are a subset of what the pack raises."""
    if days < 3:
        raise ValueError("days must be at least 3")
    if volume < 0:
        raise ValueError("volume must be ≥ 0")
    start = (start or datetime(2026, 10, 1, tzinfo=UTC)).astimezone(UTC)
    g = _Gen(random.Random(seed), start, seed)
    _background(g, days, volume, dense)
    _situations(g, days)
    unreported = _absences(g, days)
    _outcome_reports(g, unreported)
    _target_oracle(g)
    _check(g)
    g.events.sort(key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
    agencies = {e["agency"] for e in g.events}
    if len(agencies) != 8:
        raise ValueError(f"only {len(agencies)} agencies in the scenario")
    g.expected.sort(key=lambda e: (e["rule"], e["department"]))
    return Scenario(seed, g.events, g.expected, expected_notifications(g.expected), g.near)


def write(scenario: Scenario, out: Path) -> dict[str, Path]:
    """Write the four JSON Lines files into ``out`` (created); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "events": (out / "events.jsonl", scenario.events),
        "expected_alerts": (out / "expected_alerts.jsonl", scenario.expected_alerts),
        "expected_notifications": (
            out / "expected_notifications.jsonl",
            scenario.expected_notifications,
        ),
        "near_misses": (out / "near_misses.jsonl", scenario.near_misses),
    }
    for path, rows in files.values():
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows),
            encoding="utf-8",
        )
    return {k: v[0] for k, v in files.items()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file written by :func:`write`."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
