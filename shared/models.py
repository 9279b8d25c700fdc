"""The data contracts: the inbound event (v1), the normalised event, the alert.

* :class:`InboundEvent` — CONTRACT, what agencies publish on
  ``agency.<agency>.events``. Unknown top-level fields are refused (a typo must
  not silently drop data); ``details`` is open but bounded in size.
* :class:`NormalizedEvent` — what ingest publishes on ``vigie.events.v1``:
  entity values replaced by pseudonymous tokens, location enriched.
* :class:`Alert` — CONTRACT, what correlate publishes on ``vigie.alerts.v1``.

Validation errors are ``pydantic.ValidationError``; callers turn them into
dead-letter records, never into crashes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from shared.topics import AGENCIES

Agency = Literal[
    "police", "gendarmerie", "douane", "marine", "justice", "diplomatie", "sgmer", "ofast"
]
assert set(Agency.__args__) == set(AGENCIES)  # type: ignore[attr-defined]


class EventType(StrEnum):
    """The v1 event types (CONTRACT)."""

    INTERNATIONAL_TIP = "international_tip"
    MARITIME_INTEL = "maritime_intel"
    SEIZURE = "seizure"
    DEAL_POINT = "deal_point"
    DISMANTLING_OPERATION = "dismantling_operation"
    INTEL_SHARE = "intel_share"
    DEATH_THREAT = "death_threat"
    KIDNAPPING = "kidnapping"
    SEQUESTRATION = "sequestration"
    TORTURE = "torture"
    HOMICIDE = "homicide"
    ATTEMPTED_HOMICIDE = "attempted_homicide"
    SHOOTING = "shooting"
    WEAPONS_SEIZURE = "weapons_seizure"
    CORRUPTION_SIGNAL = "corruption_signal"
    SUSPICIOUS_TRANSACTION = "suspicious_transaction"
    ASSET_SEIZURE = "asset_seizure"
    ARREST = "arrest"
    PLANNED_OPERATION = "planned_operation"
    OPERATION_REPORT = "operation_report"


#: Violent incidents (axis "organisations"), used by several default rules.
VIOLENT_TYPES: frozenset[str] = frozenset(
    {"kidnapping", "sequestration", "torture", "homicide", "attempted_homicide", "shooting"}
)

#: Which axis of the plan an event type belongs to.
AXIS_OF_TYPE: dict[str, str] = {
    t.value: (
        "circulation"
        if t.value
        in {
            "international_tip",
            "maritime_intel",
            "seizure",
            "deal_point",
            "dismantling_operation",
            "intel_share",
            "planned_operation",
            "operation_report",
            "arrest",
        }
        else "organisations"
    )
    for t in EventType
}


#: The ``details`` the default rule pack reads (documented in the inbound JSON
#: Schema; ``details`` stays open, none is required).
KNOWN_DETAILS: dict[str, Any] = {
    "starts_at": {
        "type": "string",
        "format": "date-time",
        "description": "planned_operation: when it starts (operation_deconfliction)",
    },
    "ends_at": {
        "type": "string",
        "format": "date-time",
        "description": "planned_operation: when it ends; an outcome report is expected "
        "within 3 days on the same case_ref (operation_without_outcome)",
    },
    "expected_arrival": {
        "type": "string",
        "format": "date-time",
        "description": "maritime_intel, international_tip: when the vessel or container is "
        "expected in port; a seizure or operation report on it is expected within 2 days "
        "(maritime_tip_unanswered)",
    },
    "expected_port": {
        "type": "string",
        "description": "maritime_intel, international_tip: the expected port (UN/LOCODE)",
    },
}


class EntityKind(StrEnum):
    PERSON = "person"
    PHONE = "phone"
    VEHICLE = "vehicle"
    VESSEL = "vessel"
    CONTAINER = "container"
    ORGANISATION = "organisation"
    BANK_ACCOUNT = "bank_account"
    WEAPON = "weapon"
    PARCEL = "parcel"


class Handling(StrEnum):
    """Who may see an event's detail. Ordered: ``secret`` > ``restricted``."""

    RESTRICTED = "restricted"
    SECRET = "secret"  # noqa: S105 - a handling level, not a password

    @property
    def rank(self) -> int:
        return 0 if self is Handling.RESTRICTED else 1


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "high", "critical").index(self.value)


#: Département codes: metropolitan 01-95 with 2A/2B (no 20), overseas 971-976.
_DEPARTMENT = re.compile(r"^(0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5]|97[1-6])$")
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")


def _check_department(value: str) -> str:
    value = value.strip().upper()
    if not _DEPARTMENT.match(value):
        raise ValueError(f"{value!r} is not a French département code")
    return value


Department = Annotated[
    str,
    AfterValidator(_check_department),
    WithJsonSchema({"type": "string", "pattern": _DEPARTMENT.pattern}),
]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


class Location(BaseModel):
    """Where it happened. Coordinates are WGS84; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    insee: Annotated[str, Field(json_schema_extra={"pattern": _INSEE.pattern})] | None = None
    department: Department | None = None
    site: Annotated[str, Field(json_schema_extra={"pattern": _LOCODE.pattern})] | None = None

    @field_validator("insee")
    @classmethod
    def _check_insee(cls, value: str | None) -> str | None:
        if value is not None and not _INSEE.match(value.strip().upper()):
            raise ValueError(f"{value!r} is not an INSEE commune code")
        return None if value is None else value.strip().upper()

    @field_validator("site")
    @classmethod
    def _check_site(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.replace(" ", "").upper()
        if not _LOCODE.match(value):
            raise ValueError(f"{value!r} is not a UN/LOCODE")
        return value


class Entity(BaseModel):
    """One identifier in clear, as an agency sends it. Never leaves ingest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntityKind
    value: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class InboundEvent(BaseModel):
    """CONTRACT — the inbound event, version 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    agency: Agency
    type: EventType
    occurred_at: UtcDatetime
    reported_at: UtcDatetime | None = None
    location: Location | None = None
    entities: Annotated[list[Entity], Field(max_length=64)] = Field(default_factory=list)
    #: Type-specific and open, but bounded (the message size bounds the rest);
    #: the details rules read are documented in the JSON Schema (not enforced).
    details: Annotated[
        dict[str, Any],
        Field(max_length=64, json_schema_extra={"properties": KNOWN_DETAILS}),
    ] = Field(default_factory=dict)
    handling: Handling = Handling.RESTRICTED
    case_ref: ShortText | None = None
    contact: ShortText | None = None


class EntityToken(BaseModel):
    """A pseudonymised entity: ``token`` is ``<key id>:<hmac>``, never the value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntityKind
    token: str


class NormalizedLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float | None = None
    lon: float | None = None
    insee: str | None = None
    department: str | None = None
    site: str | None = None
    h3: str | None = None


class NormalizedEvent(BaseModel):
    """What ingest publishes on ``vigie.events.v1``: no clear identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["vigie.event.v1"] = Field(default="vigie.event.v1", alias="schema")
    event_id: str
    agency: Agency
    type: EventType
    occurred_at: datetime
    reported_at: datetime | None = None
    location: NormalizedLocation = Field(default_factory=NormalizedLocation)
    entities: list[EntityToken] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    handling: Handling = Handling.RESTRICTED
    case_ref: str | None = None
    contact: str | None = None
    #: When the agency's message was published (Kafka timestamp, ms since epoch).
    published_ms: int | None = None
    #: When ingest accepted it (ms since epoch).
    ingested_ms: int | None = None
    #: The partition of the agency's topic it was read from (correlate's event-time
    #: streams, see services/correlate/eventtime.py); None from older producers.
    source_partition: int | None = None

    @property
    def axis(self) -> str:
        return AXIS_OF_TYPE[self.type.value]


class Evidence(BaseModel):
    """A pointer to another agency's record: who to contact, never its file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency: Agency
    event_id: str
    occurred_at: datetime
    case_ref: str | None = None
    contact: str | None = None


class Annotations(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    summary: str
    description: str = ""


class Alert(BaseModel):
    """CONTRACT — an alert on ``vigie.alerts.v1``.

    ``alert_id`` is a deterministic fingerprint of rule, group key and window:
    the same match raised twice (replay, second worker) has the same id.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    rule: str
    severity: Severity
    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str]
    annotations: Annotations
    starts_at: datetime
    ends_at: datetime | None = None
    evidence: list[Evidence]
    #: The strictest handling among the evidence: who may see the detail.
    handling: Handling = Handling.RESTRICTED
    rules_version: str = ""
    #: Event time of the triggering event to the alert's emission, in ms.
    event_time_lag_ms: int | None = None
    #: Kafka timestamp (ms) of the agency message that completed the match.
    trigger_published_ms: int | None = None
    #: When correlate emitted the alert (ms since epoch).
    emitted_ms: int | None = None
