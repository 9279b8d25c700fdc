"""Scenario vocabulary and places: the data the generator draws from.

Holds the default rule pack's names and severities (``RULES``), the
deconfliction windows and entity kinds, the départements with their centres,
radii and ports, phone prefixes, agency contact shapes, the background event
mix, drugs and names, plus the pure helpers that make valid identifiers
(IMO and ISO 6346 check digits) and fold names. Constants only and pure
functions: nothing here draws from a random generator or holds state.
"""

from __future__ import annotations

import string
import unicodedata
from datetime import timedelta

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
