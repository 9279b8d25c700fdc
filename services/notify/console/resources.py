"""The notify API's resources: request bodies and answers as pydantic models.

One source of truth: the API validates request bodies with these models and
:mod:`services.notify.api` generates its OpenAPI document from them, so the
document and the behaviour cannot drift. Every field is bounded (strings,
lists), numbers are finite, times are RFC 3339 with an offset. One status
vocabulary for an alert: ``firing`` (open, nobody acknowledged),
``acknowledged`` (open, a cell acknowledged), ``resolved`` (closed, by the
producer or by hand).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from services.notify.matchers import parse_matchers

#: At most this many matchers in one silence (Alertmanager's UI rarely shows 10).
MAX_MATCHERS = 32
MAX_MATCHER_LEN = 256
MAX_COMMENT = 500
#: A silence lasts at most 90 days (a longer mute is a routing change).
MAX_SILENCE_S = 90 * 86400
#: Alert and silence ids: fingerprints and uuids are far shorter.
MAX_ID = 128

Status = Literal["firing", "acknowledged", "resolved"]


def _one_matcher(text: str) -> str:
    """A matcher in Alertmanager's syntax whose value, when not quoted, does not
    start with ``=`` or ``~`` (``rule==`` is a typo, not the value ``=``)."""
    parsed = parse_matchers([text])
    if len(parsed) != 1:
        raise ValueError("one matcher per item")
    m = parsed[0]
    raw_value = text.split(m.op, 1)[1].strip() if m.op in text else ""
    if raw_value[:1] in ("=", "~"):
        raise ValueError(f"bad matcher {text!r}: quote a value starting with = or ~")
    if not m.name:
        raise ValueError(f"bad matcher {text!r}: empty label name")
    return text


#: A label name, an operator, a value quoted or not (an unquoted one not starting
#: with ``=`` or ``~``, nor holding a quote): the document says it too.
MATCHER_PATTERN = (
    r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*("([^"\\]|\\.)*"|[^"=~\s][^"]*)?\s*$'
)
MatcherText = Annotated[
    str,
    StringConstraints(min_length=2, max_length=MAX_MATCHER_LEN, pattern=MATCHER_PATTERN),
    AfterValidator(_one_matcher),
    Field(examples=['rule="target_deconfliction"']),
]
Rfc3339 = Annotated[AwareDatetime, Strict(), Field(description="RFC 3339 time with offset")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SilenceIn(_In):
    """A new silence: matchers, then ``endsAt`` or ``duration`` (seconds)."""

    matchers: Annotated[list[MatcherText], Field(min_length=1, max_length=MAX_MATCHERS)]
    startsAt: Rfc3339 | None = None
    endsAt: Rfc3339 | None = None
    duration: Annotated[float, Field(gt=0, le=MAX_SILENCE_S, allow_inf_nan=False)] | None = None
    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT)] = ""

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.endsAt is None) == (self.duration is None):
            raise ValueError("give exactly one of endsAt and duration")
        return self

    def period(self, now: datetime) -> tuple[datetime, datetime]:
        """(start, end); ``ValueError`` when the end is not after the start and now,
        or the silence would last more than :data:`MAX_SILENCE_S`."""
        start = self.startsAt or now
        end = self.endsAt or start + timedelta(seconds=self.duration or 0)
        if end <= max(start, now):
            raise ValueError("endsAt must be in the future and after startsAt")
        if (end - max(start, now)).total_seconds() > MAX_SILENCE_S:
            raise ValueError(f"a silence lasts at most {MAX_SILENCE_S // 86400} days")
        return start, end


class SilencePreviewIn(_In):
    """Matchers to try against the cell's current alerts."""

    matchers: Annotated[list[MatcherText], Field(min_length=1, max_length=MAX_MATCHERS)]


class Evidence(_Out):
    agency: str
    eventId: str
    occurredAt: str
    caseRef: str | None = None
    contact: str | None = None


class AlertOut(_Out):
    """An alert as the cell may see it (need-to-know: a pointer when ``redacted``)."""

    id: str
    incident: int
    status: Status
    severity: str
    rule: str
    department: str | None = None
    agencies: list[str]
    summary: str
    description: str
    labels: dict[str, str]
    evidence: list[Evidence]
    redacted: bool
    contact: str | None = Field(None, description="whom to call when redacted")
    handling: str
    startsAt: str
    heldSince: str | None = Field(None, description="when the cell got it")
    acknowledgedBy: str | None = None
    acknowledgedAt: str | None = None
    resolvedBy: str | None = Field(None, description="a cell, or 'source' when the producer")
    resolvedAt: str | None = None
    escalationDueAt: str | None = Field(None, description="next escalation, if armed")
    escalatesTo: str | None = None
    escalatedTo: str | None = Field(None, description="the cell it was escalated to")
    notified: bool = Field(
        default=True, description="false: routed to the cell, not sent yet (console)"
    )
    mutedBy: str | None = Field(default=None, description="the cell's silence muting it (console)")


class AlertList(_Out):
    cell: str
    alerts: list[AlertOut]


class IncidentOut(_Out):
    """The alert's incident after an acknowledgement or a resolution."""

    alertId: str
    incident: int
    status: Status
    acknowledgedBy: str | None = None
    acknowledgedAt: str | None = None
    resolvedBy: str | None = None
    resolvedAt: str | None = None


class SilenceOut(_Out):
    id: str
    cell: str
    matchers: list[str]
    startsAt: str
    endsAt: str
    comment: str


class SilenceList(_Out):
    silences: list[SilenceOut]


class SilencePreview(_Out):
    """The cell's open alerts the matchers would mute."""

    alerts: list[AlertOut]


class Expired(_Out):
    expired: str


class Error(_Out):
    error: str


ALL_MODELS: tuple[type[BaseModel], ...] = (
    SilenceIn,
    SilencePreviewIn,
    AlertOut,
    AlertList,
    IncidentOut,
    SilenceOut,
    SilenceList,
    SilencePreview,
    Expired,
    Error,
)


def component_schemas() -> dict[str, Any]:
    """JSON schemas of every model, for ``components.schemas`` (refs rewritten)."""
    out: dict[str, Any] = {}
    for model in ALL_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out
