"""Positive situations, one per default rule, each next to its near-misses.

:func:`_situations` appends to a :class:`_Gen`, at ten anchors spread over
the run, the events of each situation together with the alert it must raise
(``g.expect``) and the look-alikes that must raise nothing (``g.miss``):
target, operation deconfliction, violence near a deal point, retaliation,
threat escalation, violence cluster, maritime tip to port, corruption,
laundering and arms-and-drugs links.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vigie.scenario.state import _Gen, _offset


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
