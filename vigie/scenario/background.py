"""Background (and dense) traffic: events that must raise no alert.

:func:`_background` appends ``days`` of everyday traffic scaled by
``volume`` (``dense`` for benchmark-sized runs) to a :class:`_Gen`, using
fresh identifiers only and places kept at least 2 km from every other
spatial event, and no violent incident, so it raises nothing by
construction. :func:`_poisson` is the per-day count draw.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

from vigie.scenario.state import _Gen
from vigie.scenario.vocab import BACKGROUND, DEPARTMENTS, DRUGS, SPATIAL


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
