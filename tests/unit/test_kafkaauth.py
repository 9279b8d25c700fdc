"""Kafka client security settings: what every Vigie client is given, and the one-line
errors for a setting it cannot use (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from shared.kafkaauth import client_options, faust_credentials
from shared.kafkasecurity import KafkaSecurity, acl_plan
from shared.settings import Settings, SettingsError, load
from shared.topics import AGENCIES, Topics


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"VIGIE_{name}", value)
    return load(Settings)


def test_plaintext_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIE_KAFKA_IDEMPOTENCE", raising=False)  # tests/conftest.py sets it
    s = _settings(monkeypatch)
    assert client_options(s) == {} and faust_credentials(s) is None
    assert s.kafka_idempotence and s.topic_replication == 3 and s.topic_min_insync_replicas == 2


def test_sasl_ssl_gives_every_client_the_same_principal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sec = KafkaSecurity(principals=["vigie-ingest"])
    sec.prepare(tmp_path)
    s = _settings(
        monkeypatch,
        **{k.removeprefix("VIGIE_"): v for k, v in sec.client_env("vigie-ingest").items()},
    )
    opts = client_options(s)
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "vigie-ingest"
    assert opts["sasl_plain_password"] == sec.passwords["vigie-ingest"]
    assert opts["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "vigie-ingest" and creds.ssl_context is not None
    assert (tmp_path / "secrets" / "vigie-ingest.password").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "VIGIE_KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "VIGIE_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password",
            },
            "VIGIE_KAFKA_SASL_PASSWORD_FILE",
        ),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "VIGIE_KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSSL"}, "VIGIE_KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "VIGIE_KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_setting_vigie_cannot_use_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as exc:
        _settings(monkeypatch, **env)
    assert named in str(exc.value) and "\n" not in str(exc.value)


def test_an_empty_password_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match=r"VIGIE_KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        _settings(
            monkeypatch,
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_SASL_USERNAME="u",
            KAFKA_SASL_PASSWORD_FILE=str(empty),
        )


def test_the_acl_plan_is_least_privilege() -> None:
    plan = acl_plan(Topics(""))
    for agency in AGENCIES:
        mine = {(k, n, op) for who, k, n, op in plan if who == f"agency-{agency}"}
        assert mine == {
            ("TOPIC", f"agency.{agency}.events", "WRITE"),
            ("TOPIC", f"agency.{agency}.events", "DESCRIBE"),
        }
    reads = {(who, n) for who, k, n, op in plan if op == "READ" and k == "TOPIC"}
    assert ("vigie-correlate", "vigie.events.v1") in reads
    assert not any(n == "vigie.events.v1" for who, n in reads if who != "vigie-correlate")
    groups = {(who, n) for who, k, n, op in plan if k == "GROUP"}
    assert groups == {(f"vigie-{s}", f"vigie-{s}") for s in ("ingest", "correlate", "notify")}
