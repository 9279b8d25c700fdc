"""Unit tests of the platform pieces: settings, topics, keys, logs, replay parsing."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import JsonFormatter
from shared.redis import Keys, redact_url
from shared.settings import Settings, SettingsError, load
from shared.topics import AGENCIES, Topics, inbound_topic
from vigie.replay import parse_lines


def test_settings_defaults_and_contract_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_KAFKA_BOOTSTRAP", "k1:9092, k2:19092")
    monkeypatch.setenv("VIGIE_REDIS_URL", "redis://:pw@r:6379/3")
    monkeypatch.setenv("VIGIE_WEB_PORT", "7001")
    s = load(Settings)
    assert s.bootstrap_servers == ["k1:9092", "k2:19092"]
    assert s.redis_url == "redis://:pw@r:6379/3"
    assert s.web_port == 7001


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("VIGIE_KAFKA_BOOTSTRAP", "no-port"),
        ("VIGIE_KAFKA_BOOTSTRAP", "h:99999"),
        ("VIGIE_REDIS_URL", "http://r:6379"),
        ("VIGIE_WEB_PORT", "seventy"),
        ("VIGIE_LOG_LEVEL", "LOUD"),
        ("VIGIE_TOPIC_PARTITIONS", "0"),
    ],
)
def test_bad_setting_is_a_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        load(Settings)
    message = str(exc.value)
    assert var in message
    assert "\n" not in message


def test_topics_contract_names_and_prefix() -> None:
    assert inbound_topic("douane") == "agency.douane.events"
    t = Topics()
    assert t.events == "vigie.events.v1"
    assert t.alerts == "vigie.alerts.v1"
    assert t.events_dlq == "vigie.events.dlq"
    assert t.events_late == "vigie.events.late"
    assert t.notifications == "vigie.notifications.v1"
    assert t.notifications_dlq == "vigie.notifications.dlq"
    assert len(t.all()) == len(AGENCIES) + 6
    p = Topics("test-x.")
    assert p.inbound("marine") == "test-x.agency.marine.events"
    assert p.agency_of("test-x.agency.marine.events") == "marine"
    assert p.agency_of("agency.marine.events") is None
    assert p.agency_of("test-x.agency.unknown.events") is None
    with pytest.raises(ValueError):
        inbound_topic("interpol")


def test_keys_share_a_hash_tag() -> None:
    k = Keys("vigie")
    assert k.k("a", "b") == "vigie:a:b"
    assert k.tagged("tok", "x") == "vigie:{tok}:x"


def test_redact_url_hides_password() -> None:
    assert redact_url("redis://:secret@host:6379/0") == "redis://***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_json_formatter_keeps_extra_fields() -> None:
    record = logging.LogRecord("vigie.x", logging.INFO, "f", 1, "hello %s", ("you",), None)
    record.reason = "schema"
    line = json.loads(JsonFormatter("ingest").format(record))
    assert line["msg"] == "hello you"
    assert line["reason"] == "schema"
    assert line["service"] == "ingest"
    assert line["level"] == "info"


def test_replay_parse_lines_routes_by_agency_and_reports_bad_lines() -> None:
    text = [
        '{"agency": "police", "event_id": "p1"}',
        "",
        "{broken",
        '"a string"',
        '{"agency": "cia"}',
        '{"agency": "douane", "event_id": "d1"}',
    ]
    good, bad = parse_lines(text, Topics("t."))
    assert [(g.number, g.topic, g.key) for g in good] == [
        (1, "t.agency.police.events", b"p1"),
        (6, "t.agency.douane.events", b"d1"),
    ]
    assert [n for n, _ in bad] == [3, 4, 5]
    forced, bad2 = parse_lines(text, Topics(), force_topic="x")
    assert {g.topic for g in forced} == {"x"} and len(forced) == 3
    assert [n for n, _ in bad2] == [3, 4]
