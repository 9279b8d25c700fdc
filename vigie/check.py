"""Offline validation of Vigie's configuration and of an inbound event (no broker, no Redis).

``vigie check config`` and ``vigie run`` (before it connects to anything) call
:func:`check_service_config` / the ``check_*`` functions here. Each raises
:class:`ConfigProblem` (a ``ValueError``) with one line naming the file and the
place in it; on success it returns a one-line summary.

What is checked:

* routing file: a valid Alertmanager configuration (:mod:`services.notify.route`);
* cells file (:mod:`services.notify.cells`), and every receiver of the routing
  file is a cell;
* channels have their settings (e-mail: ``VIGIE_SMTP_HOST``; Matrix:
  ``VIGIE_MATRIX_HOMESERVER`` and the secrets file's token);
* secrets file: names only cells, no shared token, and — when ``complete`` —
  every cell has an API token and every cell with a webhook channel a webhook
  secret (or ``VIGIE_WEBHOOK_SECRET`` is set);
* rules directory (:mod:`services.correlate.rules.loader`);
* an inbound event file: ingest's own decision (:func:`services.ingest.pipeline.process`),
  so the v1 contract, CloudEvents envelopes, identifier check digits and the
  clock-skew tolerance are checked exactly as ingest will.
"""

from __future__ import annotations

import errno
import json
import secrets as _random
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.correlate.rules.loader import RuleError, load_dir
from services.notify.cells import (
    Cells,
    CellsError,
    Secrets,
    WebhookChannel,
    check_channels,
    check_receivers,
    load_cells,
    load_secrets,
)
from services.notify.route import Routing, RoutingError, load_routing
from services.notify.settings import NotifySettings
from shared.settings import Settings


class ConfigProblem(ValueError):
    """A configuration or event file Vigie cannot use; the message is one line."""


@dataclass(frozen=True)
class NotifyFiles:
    """The files notify reads, and the settings their checks depend on."""

    routing: Path
    cells: Path
    secrets: Path | None
    smtp_host: str | None = None
    matrix_homeserver: str | None = None
    default_webhook_secret: bool = False


def load_notify(files: NotifyFiles) -> tuple[Routing, Cells, Secrets]:
    """Load and cross-check the routing, cells and secrets files (one line on error)."""
    try:
        routing = load_routing(files.routing)
        cells = load_cells(files.cells)
        check_receivers(routing, cells)
        secrets = load_secrets(files.secrets, cells)
        check_channels(cells, secrets, files.smtp_host, files.matrix_homeserver)
    except (RoutingError, CellsError) as exc:
        raise ConfigProblem(str(exc)) from None
    return routing, cells, secrets


def missing_secrets(files: NotifyFiles, cells: Cells, secrets: Secrets) -> list[str]:
    """One line per cell lacking an API token, or a webhook secret its channel needs."""
    where = f"{files.secrets}" if files.secrets else "no secrets file (VIGIE_NOTIFY_SECRETS_FILE)"
    out = []
    for cid, cell in cells.by_id.items():
        if cid not in secrets.api_tokens:
            out.append(f"{where}: cell {cid!r} has no API token (api_tokens.{cid})")
        webhook = any(isinstance(ch, WebhookChannel) for ch in cell.channels)
        if webhook and cid not in secrets.webhook_secrets and not files.default_webhook_secret:
            out.append(
                f"{where}: cell {cid!r} has a webhook channel but no webhook secret "
                f"(webhook_secrets.{cid}, or VIGIE_WEBHOOK_SECRET)"
            )
    return out


def check_notify(files: NotifyFiles, complete: bool = True) -> str:
    """Validate notify's files; with ``complete``, every cell must have its secrets."""
    routing, cells, secrets = load_notify(files)
    if complete:
        missing = missing_secrets(files, cells, secrets)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ConfigProblem(missing[0] + more)
    return (
        f"routing {files.routing}: {len(routing.by_id())} routes, "
        f"{len(routing.receivers)} receivers, all cells; cells {files.cells}: "
        f"{len(cells.by_id)} cells; secrets: "
        + (f"{files.secrets}: complete" if complete else "not checked for completeness")
    )


def check_rules(path: Path) -> str:
    """Validate a rules directory (or file)."""
    try:
        rules = load_dir(path)
    except (RuleError, OSError) as exc:
        raise ConfigProblem(str(exc)) from None
    return f"rules {path}: {len(rules.rules)} rules, version {rules.version}"


def check_event(
    path: Path,
    agency: str | None = None,
    max_bytes: int = 256 * 1024,
    future_tolerance_s: int = 300,
) -> str:
    """What ingest would do with the event in ``path`` (JSON: a v1 event or a
    structured CloudEvent). Raises :class:`ConfigProblem` naming the reason and
    the field when ingest would dead-letter it."""
    from services.ingest.pipeline import Accepted, Source, process
    from services.ingest.pseudonymize import Pseudonymizer

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigProblem(f"cannot read {path}: {exc.strerror}") from None
    pseudo = Pseudonymizer(_random.token_bytes(32), "check")
    # the topic's agency: the one given, else the event's own (read leniently)
    topic_agency = agency or _agency_in(raw) or "unknown"
    src = Source(f"agency.{topic_agency}.events", 0, 0, None, topic_agency)
    now = datetime.now(UTC)
    out = process(raw, src, pseudo, now, max_bytes, timedelta(seconds=future_tolerance_s))
    if isinstance(out, Accepted):
        ev = out.event
        return (
            f"{path}: valid v1 inbound event {ev.event_id!r} of {ev.agency} "
            f"({ev.type}, {len(ev.entities)} entities, partition key {out.key.decode()})"
        )
    field = out.record.get("field")
    at = f" at {field}" if field else ""
    raise ConfigProblem(f"{path}: refused ({out.reason}{at}): {out.record['message']}")


def _agency_in(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        doc = doc["data"]
    value = doc.get("agency") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def check_service_config(settings: Settings) -> None:
    """What ``vigie run`` validates before connecting to anything, by the
    service its settings are for. Raises ``ValueError`` (one line)."""
    from services.correlate.rules import DEFAULT_DIR
    from services.correlate.settings import CorrelateSettings
    from services.ingest.settings import IngestSettings
    from services.notify.settings import NotifySettings

    if isinstance(settings, IngestSettings):
        settings.key_bytes()
    elif isinstance(settings, CorrelateSettings):
        check_rules(settings.rules_dir or DEFAULT_DIR)
    elif isinstance(settings, NotifySettings):
        load_notify(notify_files(settings))


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigProblem` when ``host:port`` cannot be listened on
    (in use, or not an address of this machine): the worker's web server would
    fail after connecting to everything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigProblem(f"VIGIE_WEB_PORT {port} on VIGIE_WEB_HOST {host}: {why}") from None


def notify_files(settings: NotifySettings) -> NotifyFiles:
    """The notify files (and the settings their checks need) ``settings`` names."""
    from services.notify.cells import default_cells_path
    from services.notify.route import default_routing_path

    return NotifyFiles(
        routing=settings.notify_routing_file or default_routing_path(),
        cells=settings.notify_cells_file or default_cells_path(),
        secrets=settings.notify_secrets_file,
        smtp_host=settings.smtp_host,
        matrix_homeserver=settings.matrix_homeserver,
        default_webhook_secret=settings.webhook_secret is not None,
    )
