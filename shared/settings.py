"""Settings common to every service, read once from the environment.

CONTRACT: ``VIGIE_KAFKA_BOOTSTRAP`` (``host:port[,host:port...]``),
``VIGIE_REDIS_URL`` (``redis://`` or ``rediss://``; a Redis Cluster:
``redis+cluster://`` or ``rediss+cluster://``, see :mod:`shared.redis`) and
``VIGIE_WEB_PORT`` are honoured by every service. Every other setting has a safe default.

A bad value raises :class:`SettingsError` with a one-line message naming the
variable; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


class SettingsError(ValueError):
    """A setting has a value Vigie cannot use; the message is one line."""


class Settings(BaseSettings):
    """The environment every Vigie process reads (prefix ``VIGIE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIE_", extra="ignore", frozen=True, validate_default=True
    )

    kafka_bootstrap: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    #: 1-65535 (Faust's web server refuses 0; a port in use is reported by ``vigie run``).
    web_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    web_host: str = "0.0.0.0"  # noqa: S104 - a service in a pod listens on all interfaces
    #: Prepended to every topic name; empty in production. Tests use it to get
    #: throwaway topics (``test-<uuid>.``) on a shared broker.
    topic_prefix: str = ""
    #: Prepended to every Redis key, so tests and several deployments can share
    #: one Redis without touching each other's keys.
    redis_prefix: str = "vigie"
    #: Consumer group (and Faust app id) of the worker; empty means
    #: ``<topic_prefix>vigie-<service>``. Set it to read the topics again from
    #: the start under a new group (a benchmark round, a re-correlation).
    consumer_group: str = ""
    #: Partitions for the topics Vigie creates (inbound and internal).
    topic_partitions: Annotated[int, Field(ge=1, le=1024)] = 8
    #: Replication factor and ``min.insync.replicas`` of the topics Vigie
    #: creates; both capped at the number of brokers (a one-broker development
    #: broker gets 1 and no ``min.insync.replicas``). With 3 and 2, a write
    #: acknowledged (``acks=all``) is on two brokers at least.
    topic_replication: Annotated[int, Field(ge=1, le=7)] = 3
    topic_min_insync_replicas: Annotated[int, Field(ge=1, le=7)] = 2
    #: Idempotent producers (no duplicate from a producer's own retries).
    #: Producers always use ``acks=all``. Tansu's memory engine refuses
    #: ``InitProducerId``: the local stack sets this to false on Tansu only.
    kafka_idempotence: bool = True
    #: How every Vigie client (workers, replay, benches) talks to the brokers:
    #: ``PLAINTEXT`` (local), ``SSL``, ``SASL_SSL`` (production: SCRAM over TLS).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    #: The SASL principal (required with ``SASL_*``): one per service.
    kafka_sasl_username: str = ""
    #: A file holding the SASL password (a mounted Secret), read once at start.
    kafka_sasl_password_file: Path | None = None
    #: The CA bundle that signed the brokers' certificates (``SSL``,
    #: ``SASL_SSL``); empty: the system's trust store.
    kafka_ssl_cafile: Path | None = None
    #: Consumer-group session timeout. Tansu admits a new member only after
    #: half of it: keep it short (6 s) locally; Kafka deployments may use 30-60 s.
    broker_session_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: How long the broker may hold a fetch when no data is there. Faust
    #: hard-codes 1500 ms; Tansu holds every fetch that long even when records
    #: wait, adding up to 1.5 s per hop. 10 ms keeps a hop under a few ms here;
    #: Apache Kafka answers as soon as data arrives, so production may raise it.
    fetch_max_wait_ms: Annotated[int, Field(ge=0, le=60_000)] = 10
    #: Redis connection pool size (a BlockingConnectionPool: callers wait).
    redis_pool_size: Annotated[int, Field(ge=1, le=1024)] = 32
    #: Where Faust keeps its working files (nothing durable: tables are not
    #: used). Must be writable: in a pod, an ``emptyDir`` mounted on /tmp.
    data_dir: Path = Path(tempfile.gettempdir()) / "vigie"
    #: Upper bound (seconds) on a graceful stop after SIGTERM/SIGINT: stop
    #: consuming, finish in-flight work, commit, close. Past it the process
    #: exits with code 70 (EX_SOFTWARE). Keep it below the pod's
    #: terminationGracePeriodSeconds (30 s).
    shutdown_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    log_level: str = "INFO"
    #: ``json`` (one object a line, for machines) or ``text`` (for people).
    log_format: str = "json"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("expected host:port[,host:port...]")
        for host in hosts:
            match = _HOSTPORT.match(host)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{host!r} is not host:port")
        return ",".join(hosts)

    @field_validator("kafka_sasl_username")
    @classmethod
    def _check_username(cls, value: str, info: ValidationInfo) -> str:
        if str(info.data.get("kafka_security_protocol", "")).startswith("SASL") and not value:
            raise ValueError("required when VIGIE_KAFKA_SECURITY_PROTOCOL is SASL_*")
        return value

    @field_validator("kafka_sasl_password_file")
    @classmethod
    def _check_password_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if not str(info.data.get("kafka_security_protocol", "")).startswith("SASL"):
            return value
        if value is None:
            raise ValueError("required when VIGIE_KAFKA_SECURITY_PROTOCOL is SASL_*")
        try:
            secret = value.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            raise ValueError(
                f"cannot read {value}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        if not secret:
            raise ValueError(f"{value} is empty")
        return value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _check_cafile(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no CA file at {value}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if not value.startswith(schemes):
            raise ValueError("expected a redis://, rediss:// or redis+cluster:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("log_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in {"json", "text"}:
            raise ValueError("expected json or text")
        return value

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap list split into ``host:port`` strings."""
        return self.kafka_bootstrap.split(",")


def describe_validation_error(exc: ValidationError, prefix: str = "VIGIE_") -> str:
    """One line naming the first bad variable and why it is refused."""
    err = exc.errors()[0]
    name = prefix + str(err["loc"][0]).upper() if err.get("loc") else prefix
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"bad setting {name}: {msg}"


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Build a settings object, turning a validation error into :class:`SettingsError`."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", "VIGIE_"))
        raise SettingsError(describe_validation_error(exc, prefix)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once (raises :class:`SettingsError`)."""
    return load(Settings)
