"""The console's and the API's pure parts: the catalogue, the map outlines, the models."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.notify.api import bearer
from services.notify.console.backend import rfc3339, rfc3339_text
from services.notify.console.mapdata import OVERSEAS, outlines
from services.notify.console.resources import SilenceIn
from services.notify.console.views import CATALOGUE, map_level, translate

TEMPLATES = Path(__file__).resolve().parents[2] / "services/notify/console/templates"


def test_every_string_the_templates_use_is_in_the_catalogue_in_both_languages() -> None:
    used = set()
    for f in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"t\('([a-z.]+)'\)", f.read_text()))
    families = {
        "state.": ("firing", "acknowledged", "resolved"),
        "severity.": ("critical", "high", "warning", "info"),
        "detail.done.": ("ack", "resolve"),
        "silences.": ("created", "expired"),
    }
    used |= {prefix + x for prefix, xs in families.items() for x in xs}
    missing = sorted(k for k in used if k not in CATALOGUE)
    assert missing == []
    assert all(set(v) == {"fr", "en"} and all(v.values()) for v in CATALOGUE.values())
    assert translate("fr")("nav.alerts") == "Alertes en cours"
    assert translate("en")("nav.alerts") == "Live alerts"


def test_map_has_every_departement_metropolitan_and_overseas() -> None:
    codes = {o.code for o in outlines()}
    metro = {f"{i:02d}" for i in range(1, 96) if i != 20} | {"2A", "2B"}
    assert metro | set(OVERSEAS) <= codes
    assert all(o.viewbox != "0 0 1010 1010" for o in outlines() if o.code in OVERSEAS)
    assert [map_level(n) for n in (0, 1, 2, 4, 5, 50)] == [0, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "body",
    [
        {"matchers": ["rule=="], "duration": 60},
        {"matchers": ['{a="1",b="2"}'], "duration": 60},
        {"matchers": ['rule="x"'], "duration": float("inf")},
        {"matchers": ['rule="x"'], "duration": 1e308},
        {"matchers": ['rule="x"']},
        {"matchers": ['rule="x"'], "duration": 60, "endsAt": "2999-01-01T00:00:00Z"},
        {"matchers": ['rule="x"'], "endsAt": "2999-01-01T00:00:00"},  # no offset
        {"matchers": ['rule=~"("'], "duration": 60},  # regex does not compile
        {"matchers": ['rule="x"'] * 33, "duration": 60},
        {"matchers": ['rule="x"'], "duration": 60, "comment": "x" * 501},
    ],
)
def test_bad_silences_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SilenceIn.model_validate_json(json.dumps(body))


def test_good_silence_and_its_period() -> None:
    s = SilenceIn(matchers=['rule="x"', "department=13", 'a!~"b.*"'], duration=3600)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert s.period(now) == (now, now + timedelta(hours=1))
    past = SilenceIn(matchers=["a=1"], endsAt=now - timedelta(seconds=1))
    with pytest.raises(ValueError, match="future"):
        past.period(now)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer t", "t"),
        ("bearer t", "t"),
        ("BEARER  t ", "t"),
        ("Basic t", None),
        ("Bearer", None),
    ],
)
def test_bearer_scheme_in_any_case(header: str, token: str | None) -> None:
    assert bearer(header) == token


def test_times_are_rfc3339_with_an_offset() -> None:
    assert rfc3339_text("2026-01-01T10:00:00") == "2026-01-01T10:00:00+00:00"
    assert rfc3339_text("2026-01-01T10:00:00+02:00") == "2026-01-01T10:00:00+02:00"
    assert rfc3339("1767261600.5") == "2026-01-01T10:00:00.500000+00:00"
    assert rfc3339(None) is None and rfc3339("nan-ish") is None
