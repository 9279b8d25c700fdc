"""The cells file: who the receivers are, how to reach them, what they may see.

A YAML mapping ``cells: {<id>: {...}}`` plus optional ``defaults``. Each cell
has a ``clearance`` (``restricted`` or ``secret``), an ``ack_timeout``
(Prometheus duration), an optional ``escalate_to`` (the next cell up:
département → regional antenna → headquarters), a ``contact`` line and its
``channels`` (``webhook``, ``email``, ``matrix``). Loading is strict: unknown
keys, unknown cells in ``escalate_to``, escalation cycles and bad ids raise
:class:`CellsError` with a one-line message; :func:`check_receivers` checks
that every receiver of the routing file is a cell.

The secrets file (path in ``VIGIE_NOTIFY_SECRETS_FILE``) is separate and never
in the repository: ``api_tokens`` (cell → bearer token), ``webhook_secrets``
(cell → HMAC key), ``smtp_password``, ``matrix_access_token``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notify.route import Routing
from shared.config import ConfigError, Document, load_yaml, parse_duration, printable, validate
from shared.models import Handling

_CELL_ID = re.compile(
    r"^(dept-(0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5]|97[1-6])|antenne-[a-z0-9-]+|hq)$"
)


class CellsError(ConfigError):
    """The cells or secrets file cannot be used; the message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    #: URL; ``{cell}`` is replaced by the cell id. Default: ``VIGIE_NOTIFY_WEBHOOK_URL``.
    url: str | None = None


class EmailChannel(_Strict):
    type: Literal["email"]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1)]


class MatrixChannel(_Strict):
    type: Literal["matrix"]
    #: A room id (``!abc:server``); the homeserver is ``VIGIE_MATRIX_HOMESERVER``.
    room_id: Annotated[str, Field(pattern=r"^!.+:.+$")]


Channel = Annotated[WebhookChannel | EmailChannel | MatrixChannel, Field(discriminator="type")]


class Cell(_Strict):
    id: str
    name: str = ""
    clearance: Handling = Handling.RESTRICTED
    ack_timeout_s: Annotated[float, Field(gt=0)] = 900.0
    escalate_to: str | None = None
    contact: str = ""
    channels: Annotated[list[Channel], Field(min_length=1)]


class _RawCell(_Strict):
    name: str = ""
    clearance: Handling | None = None
    ack_timeout: str | None = None
    escalate_to: str | None = None
    contact: str = ""
    channels: list[Channel] | None = None


def _default_channels() -> list[Channel]:
    return [WebhookChannel(type="webhook")]


class _Defaults(_Strict):
    clearance: Handling = Handling.RESTRICTED
    ack_timeout: str = "15m"
    channels: list[Channel] = Field(default_factory=lambda: _default_channels())


class _CellsFile(_Strict):
    defaults: _Defaults = Field(default_factory=_Defaults)
    cells: dict[str, _RawCell]

    @field_validator("cells")
    @classmethod
    def _ids(cls, value: dict[str, _RawCell]) -> dict[str, _RawCell]:
        for cid in value:
            if not _CELL_ID.match(cid):
                raise ValueError(f"bad cell id {cid!r} (dept-<code>, antenne-<name> or hq)")
        return value


class Cells:
    """The loaded cells, by id."""

    def __init__(self, cells: dict[str, Cell]) -> None:
        self.by_id = cells

    def __getitem__(self, cid: str) -> Cell:
        return self.by_id[cid]

    def __contains__(self, cid: object) -> bool:
        return cid in self.by_id

    def chain(self, cid: str) -> list[str]:
        """The escalation chain above ``cid`` (not including it)."""
        out: list[str] = []
        cur = self.by_id[cid].escalate_to
        while cur is not None:
            out.append(cur)
            cur = self.by_id[cur].escalate_to
        return out

    def contact_for(self, cid: str, handling: Handling) -> Cell | None:
        """The nearest cell up the chain cleared for ``handling`` (who to contact)."""
        for up in self.chain(cid):
            if self.by_id[up].clearance.rank >= handling.rank:
                return self.by_id[up]
        return None


def parse_cells(raw: Any, doc: Document | None = None) -> Cells:
    """Validate a parsed cells document; :class:`CellsError` (one line naming the
    file, the line and the place) on any problem."""
    doc = doc or Document(Path("cells file"), raw)
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise CellsError(f"{doc.path}: expected a mapping with `cells`, got {got}")
    try:
        doc_model: _CellsFile = validate(doc, _CellsFile)
    except ConfigError as exc:
        raise CellsError(str(exc)) from None
    return _cells(doc_model, doc)


def _cells(model: _CellsFile, doc: Document) -> Cells:
    """The cells of a validated file, defaults applied, escalation chains checked."""
    d = model.defaults
    cells: dict[str, Cell] = {}
    for cid, rc in model.cells.items():
        try:
            timeout = parse_duration(rc.ack_timeout or d.ack_timeout)
        except ValueError as exc:
            at = doc.where(("cells", cid, "ack_timeout"))
            raise CellsError(f"{at}: cells.{cid}.ack_timeout: {exc}") from None
        cells[cid] = Cell(
            id=cid,
            name=rc.name,
            clearance=rc.clearance or d.clearance,
            ack_timeout_s=timeout,
            escalate_to=rc.escalate_to,
            contact=rc.contact,
            channels=rc.channels if rc.channels is not None else d.channels,
        )
    for cid, cell in cells.items():
        seen = {cid}
        cur = cell.escalate_to
        while cur is not None:
            at = doc.where(("cells", cid, "escalate_to"))
            if cur not in cells:
                raise CellsError(f"{at}: cells.{cid}: escalate_to {cur!r} is not a cell")
            if cur in seen:
                raise CellsError(f"{at}: cells.{cid}: escalation cycle through {cur!r}")
            seen.add(cur)
            cur = cells[cur].escalate_to
    return Cells(cells)


def load_cells(path: Path) -> Cells:
    """Read and validate a cells file; :class:`CellsError` (one line) on any problem."""
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        raise CellsError(str(exc)) from None
    return parse_cells(doc.data, doc)


def check_receivers(routing: Routing, cells: Cells) -> None:
    """Every receiver of the routing file must be a cell."""
    for name in routing.receivers:
        if name not in cells:
            raise CellsError(f"receiver {name!r} of the routing file is not a cell")


def check_channels(
    cells: Cells, secrets: Secrets, smtp_host: str | None, matrix_homeserver: str | None
) -> None:
    """Every channel has what it needs: e-mail ``VIGIE_SMTP_HOST``; Matrix
    ``VIGIE_MATRIX_HOMESERVER`` and the secrets file's token. :class:`CellsError` otherwise."""
    for cid, cell in cells.by_id.items():
        for ch in cell.channels:
            if isinstance(ch, EmailChannel) and not smtp_host:
                raise CellsError(f"cell {cid}: email channel but VIGIE_SMTP_HOST is not set")
            if isinstance(ch, MatrixChannel) and not (
                matrix_homeserver and secrets.matrix_access_token
            ):
                raise CellsError(
                    f"cell {cid}: matrix channel but no VIGIE_MATRIX_HOMESERVER "
                    "or matrix_access_token in the secrets file"
                )


def default_cells_path() -> Path:
    return Path(__file__).parent / "config" / "cells.yml"


class Secrets(_Strict):
    """The secrets file: never in the repository."""

    api_tokens: dict[str, str] = Field(default_factory=dict)
    webhook_secrets: dict[str, str] = Field(default_factory=dict)
    smtp_password: str | None = None
    matrix_access_token: str | None = None

    def token_index(self) -> dict[str, str]:
        """sha256(token) → cell id, so a lookup compares digests, not tokens."""
        return {hashlib.sha256(t.encode()).hexdigest(): c for c, t in self.api_tokens.items()}


def load_secrets(path: Path | None, cells: Cells) -> Secrets:
    """Read and validate the secrets file (``None``: no secrets). :class:`CellsError`
    names the file and the place, never a secret value."""
    if path is None:
        return Secrets()
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        raise CellsError(str(exc)) from None
    if doc.data is not None and not isinstance(doc.data, dict):
        raise CellsError(f"{path}: expected a mapping (api_tokens, webhook_secrets...)")
    try:
        secrets: Secrets = validate(Document(doc.path, doc.data or {}, doc.lines), Secrets)
    except ConfigError as exc:
        raise CellsError(str(exc)) from None
    for section in ("api_tokens", "webhook_secrets"):
        for cid in getattr(secrets, section):
            if cid not in cells:
                at = doc.where((section, cid))
                raise CellsError(f"{at}: {section}: {printable(repr(cid))} is not a cell")
    if len(set(secrets.api_tokens.values())) != len(secrets.api_tokens):
        raise CellsError(f"{path}: api_tokens: two cells share an API token")
    return secrets
