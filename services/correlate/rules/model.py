"""The rule schema: one strict pydantic model per kind.

Unknown keys, bad durations and unknown event types are validation errors;
:func:`~.loader.load_dir` turns them into :class:`~.loader.RuleError` naming
the file and the rule.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shared.config import parse_duration as config_duration
from shared.models import AXIS_OF_TYPE, EntityKind, EventType, Severity
from shared.topics import AGENCIES


def parse_duration(value: Any) -> int:
    """A duration in milliseconds: a Prometheus duration (``"90d"``, ``"12h"``,
    ``"1h30m"``, ``"500ms"``; :func:`shared.config.parse_duration`, the one
    parser of every Vigie file) or an int of ms. Must be positive."""
    if isinstance(value, bool):
        raise ValueError("a duration like '90d', '12h', '30m', '45s'")
    ms = value if isinstance(value, int) else round(config_duration(value) * 1000)
    if ms <= 0:
        raise ValueError("a duration must be positive")
    return ms


DurationMs = Annotated[int, BeforeValidator(parse_duration)]


def _agency(value: str) -> str:
    if value not in AGENCIES:
        raise ValueError(f"unknown agency {value!r}")
    return value


AgencyName = Annotated[str, AfterValidator(_agency)]
DetailValue = str | int | float | bool | list[str | int | float | bool]

#: A group key: ``entity:<kind>``, ``entity:*`` (every kind), ``department``, ``site``,
#: ``h3``, ``insee``, ``case_ref`` (the agency's case: agency and reference).
_GROUP = re.compile(r"^(entity:(\*|[a-z_]+)|department|site|h3|insee|case_ref)$")


def _group_key(value: str) -> str:
    if not _GROUP.match(value):
        raise ValueError(
            f"{value!r}: group keys are entity:<kind>, entity:*, department, site, h3, insee,"
            " case_ref"
        )
    if value.startswith("entity:") and value != "entity:*":
        EntityKind(value.split(":", 1)[1])  # raises on an unknown kind
    return value


GroupKey = Annotated[str, AfterValidator(_group_key)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Strict):
    """Which events a rule (or a step) looks at. Empty means every event.

    ``details`` predicates: a scalar must be equal, a list must contain the
    value, ``"*"`` only asks for the field to be present.
    """

    types: list[EventType] = Field(default_factory=list)
    agencies: list[AgencyName] = Field(default_factory=list)
    details: dict[str, DetailValue] = Field(default_factory=dict)

    def matches(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        if self.types and etype not in self.types:
            return False
        if self.agencies and agency not in self.agencies:
            return False
        for name, want in self.details.items():
            if name not in details:
                return False
            got = details[name]
            if want == "*":
                continue
            if isinstance(want, list):
                if got not in want:
                    return False
            elif got != want:
                return False
        return True


class _RuleBase(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    severity: Severity
    #: Axis of the plan; by default the axis of the first filtered type.
    axis: Literal["circulation", "organisations"] | None = None
    filter: Filter = Field(default_factory=Filter)
    window: DurationMs
    #: After firing, the same rule and group stays quiet this long (event time).
    suppress: DurationMs | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reserved_labels(self) -> _RuleBase:
        clash = {"rule", "severity"} & set(self.labels)
        if clash:
            raise ValueError(f"labels {sorted(clash)} are set by the engine")
        return self

    def all_types(self) -> list[str]:
        return [t.value for t in self.filter.types]

    def resolved_axis(self) -> str:
        if self.axis:
            return self.axis
        types = self.all_types()
        return AXIS_OF_TYPE[types[0]] if types else "organisations"

    def wants(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        return self.filter.matches(etype, agency, details)


class _Grouped(_RuleBase):
    group_by: Annotated[list[GroupKey], Field(min_length=1)]


class ThresholdRule(_Grouped):
    """≥ ``count`` matching events per group within the window (Sigma ``event_count``)."""

    kind: Literal["threshold"]
    count: Annotated[int, Field(ge=2, le=1000)]


class DistinctRule(_Grouped):
    """≥ ``count`` distinct values of ``field`` per group within the window (``value_count``)."""

    kind: Literal["distinct"]
    field: Literal["agency", "type", "department", "site"] = "agency"
    count: Annotated[int, Field(ge=2, le=100)]


class SequenceRule(_Grouped):
    """Steps on the same group key within the window.

    ``ordered`` (the default): step 1 then step 2 (then 3) in event-time order,
    whatever the arrival order; an ``until`` event between the first and the
    last step cancels the match. ``ordered: false``: every step within the
    window, in any order.
    """

    kind: Literal["sequence"]
    steps: Annotated[list[Filter], Field(min_length=2, max_length=3)]
    until: Filter | None = None
    ordered: bool = True

    def all_types(self) -> list[str]:
        out = [t.value for s in self.steps for t in s.types]
        return out or super().all_types()

    def step_of(self, etype: str, agency: str, details: dict[str, Any]) -> list[int]:
        return [i for i, s in enumerate(self.steps) if s.matches(etype, agency, details)]

    def is_until(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        return self.until is not None and self.until.matches(etype, agency, details)

    def wants(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        if not self.filter.matches(etype, agency, details):
            return False
        return bool(self.step_of(etype, agency, details)) or self.is_until(etype, agency, details)


class ProximityRule(_RuleBase):
    """A ``trigger`` event within ``radius_m`` of a ``reference`` event that came
    at most ``window`` before it (Redis GEO). Either may arrive first."""

    kind: Literal["proximity"]
    reference: Filter
    trigger: Filter
    radius_m: Annotated[float, Field(gt=0, le=100_000)]

    def all_types(self) -> list[str]:
        return [t.value for t in self.trigger.types] or super().all_types()

    def role(self, etype: str, agency: str, details: dict[str, Any]) -> str | None:
        if not self.filter.matches(etype, agency, details):
            return None
        if self.trigger.matches(etype, agency, details):
            return "t"
        if self.reference.matches(etype, agency, details):
            return "r"
        return None

    def wants(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        return self.role(etype, agency, details) is not None


class OverlapRule(_RuleBase):
    """Two events whose intervals (``details.starts_at``/``ends_at``) overlap and
    whose places are within ``radius_m``; from different agencies unless
    ``different_agencies: false``. ``window``: how long an interval is kept
    after it ends."""

    kind: Literal["overlap"]
    radius_m: Annotated[float, Field(gt=0, le=100_000)]
    different_agencies: bool = True


class AbsenceRule(_Grouped):
    """An ``expect`` event, then **no** ``missing`` event on the same group by its
    deadline: ``window`` after the event time, or after the time its
    ``details[after]`` names (ISO 8601; the event time when absent or unreadable).

    It fires once, when event time (the watermark shared by the workers) passes
    the deadline plus ``lateness`` with no ``missing`` event between the
    ``expect`` event and the deadline; a ``missing`` event that arrives before
    then, in time or late, cancels it (docs/rules.md, "Absence").
    """

    kind: Literal["absence"]
    expect: Filter
    missing: Filter
    after: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    #: How long after the deadline (event time) a late ``missing`` event may still cancel it.
    lateness: DurationMs | None = None

    def all_types(self) -> list[str]:
        return [t.value for t in self.expect.types] or super().all_types()

    def role(self, etype: str, agency: str, details: dict[str, Any]) -> str | None:
        """``"a"`` (an expect event), ``"b"`` (a missing one) or None."""
        if not self.filter.matches(etype, agency, details):
            return None
        if self.expect.matches(etype, agency, details):
            return "a"
        if self.missing.matches(etype, agency, details):
            return "b"
        return None

    def wants(self, etype: str, agency: str, details: dict[str, Any]) -> bool:
        return self.role(etype, agency, details) is not None


Rule = Annotated[
    ThresholdRule | DistinctRule | SequenceRule | ProximityRule | OverlapRule | AbsenceRule,
    Field(discriminator="kind"),
]


class RuleFile(_Strict):
    """A pack: several rules in one file."""

    rules: list[Rule]


def window_label(ms: int) -> str:
    """``7776000000`` → ``"90d"`` (for summaries)."""
    td = timedelta(milliseconds=ms)
    if td.days and not td.seconds:
        return f"{td.days}d"
    return f"{int(td.total_seconds())}s"
