"""The routing file: an Alertmanager configuration, loaded strictly, and its route tree.

:func:`load_routing` reads ``route``, ``receivers``, ``inhibit_rules`` and
``time_intervals`` (plus the older ``mute_time_intervals``) through strict
pydantic models (:class:`RoutingFile`: unknown keys refused, with the nearest
valid key named; matchers and durations parsed), then checks what the models
cannot (references to receivers and time intervals, the root route's
constraints), raising :class:`RoutingError` with one line naming the file,
the line and the route path (``route.routes.2.group_wait``).
:meth:`Route.match` picks the routes an alert's labels reach with
Alertmanager's semantics: depth-first, the first matching child wins unless it
has ``continue: true``, a node with no matching child is itself the match;
children inherit ``receiver``, ``group_by`` and the three timers, not the time
intervals. The file stays an Alertmanager configuration: ``amtool config
routes test`` picks the same receivers (tests/unit/notify/test_amtool_compat.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.notify.matchers import Matcher, all_match, from_maps, parse_matchers
from services.notify.timeinterval import TimeInterval, in_any
from shared.config import (
    ConfigError,
    Document,
    did_you_mean,
    load_yaml,
    parse_duration,
    validate,
)

__all__ = ["RoutingError", "parse_duration"]


class RoutingError(ConfigError):
    """The routing file cannot be used; the message is one line."""


def _matcher_list(value: Any) -> list[Matcher]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a list of matchers like 'severity=\"critical\"'")
    return parse_matchers([str(x) for x in value])


#: Alertmanager's receiver integrations (for the did-you-mean of a typo).
_AM_CONFIGS = [
    f"{x}_configs"
    for x in [
        "email",
        "discord",
        "jira",
        "msteams",
        "msteamsv2",
        "opsgenie",
        "pagerduty",
        "pushover",
        "rocketchat",
        "slack",
        "sns",
        "telegram",
        "victorops",
        "webex",
        "webhook",
        "wechat",
    ]
]

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Matchers = Annotated[list[Matcher], BeforeValidator(_matcher_list)]
LabelMap = dict[str, Annotated[str, BeforeValidator(str)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


class RouteModel(_Strict):
    """One ``route`` node as written (Alertmanager's keys)."""

    receiver: str | None = None
    group_by: list[Annotated[str, BeforeValidator(str)]] | None = None
    continue_: bool = Field(False, alias="continue")
    matchers: Matchers = Field(default_factory=list)
    match: LabelMap | None = None
    match_re: LabelMap | None = None
    group_wait: Seconds | None = None
    group_interval: Seconds | None = None
    repeat_interval: Seconds | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteModel] = Field(default_factory=list)


class ReceiverModel(BaseModel):
    """A receiver: a name (a cell) and Alertmanager's ``*_configs`` (ignored)."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _only_configs(self) -> ReceiverModel:
        for key in self.model_extra or {}:
            if not str(key).endswith("_configs"):
                raise ValueError(did_you_mean(str(key), ["name", *_AM_CONFIGS]))
        return self


class InhibitModel(_Strict):
    source_matchers: Matchers = Field(default_factory=list)
    target_matchers: Matchers = Field(default_factory=list)
    source_match: LabelMap | None = None
    source_match_re: LabelMap | None = None
    target_match: LabelMap | None = None
    target_match_re: LabelMap | None = None
    equal: list[str] = Field(default_factory=list)


class TimeIntervalModel(_Strict):
    name: Annotated[str, Field(min_length=1)]
    time_intervals: list[dict[str, Any]] = Field(default_factory=list)


class RoutingFile(_Strict):
    """The routing file's top level (an Alertmanager configuration)."""

    global_: dict[str, Any] | None = Field(None, alias="global")
    route: RouteModel
    receivers: list[ReceiverModel] = Field(default_factory=list)
    inhibit_rules: list[InhibitModel] = Field(default_factory=list)
    time_intervals: list[TimeIntervalModel] = Field(default_factory=list)
    mute_time_intervals: list[TimeIntervalModel] = Field(default_factory=list)
    templates: list[str] | None = None
    tracing: dict[str, Any] | None = None


@dataclass
class Route:
    """One node of the route tree, with inherited settings resolved."""

    id: str
    receiver: str
    matchers: list[Matcher]
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False
    mute_time_intervals: list[str] = field(default_factory=list)
    active_time_intervals: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes ``labels`` reach below (and including) this node; [] if none."""
        if not all_match(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            out.extend(got)
            if got and not child.continue_:
                break
        return out or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that define the alert's group on this route."""
        if self.group_by_all:
            return dict(sorted(labels.items()))
        return {k: labels[k] for k in self.group_by if labels.get(k)}

    def walk(self) -> list[Route]:
        out = [self]
        for child in self.routes:
            out.extend(child.walk())
        return out


@dataclass
class InhibitRule:
    source: list[Matcher]
    target: list[Matcher]
    equal: tuple[str, ...]


#: Label sets whose routes :meth:`Routing.match` remembers (then it starts over).
MATCH_MEMO = 4096


@dataclass
class Routing:
    """A loaded routing file."""

    route: Route
    receivers: list[str]
    inhibit_rules: list[InhibitRule]
    time_intervals: dict[str, list[TimeInterval]]
    raw: dict[str, Any]
    _read: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _memo: dict[tuple[str, ...], list[Route]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._read = tuple(sorted({m.name for r in self.route.walk() for m in r.matchers}))

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """``route.match(labels)``, remembered per value of the labels the tree's
        matchers read (a missing label reads as the empty value, as in a
        matcher): alerts differing only in other labels take the same routes.
        The list is shared: do not change it."""
        key = tuple([labels.get(name, "") for name in self._read])
        got = self._memo.get(key)
        if got is None:
            if len(self._memo) >= MATCH_MEMO:
                self._memo.clear()
            got = self._memo[key] = self.route.match(labels)
        return got

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        """Receivers in route order, without duplicates (what amtool prints)."""
        seen: list[str] = []
        for r in self.match(labels):
            if r.receiver not in seen:
                seen.append(r.receiver)
        return seen

    def muted(self, route: Route, ts: float) -> bool:
        """True when ``route`` must not notify at ``ts`` (mute or outside active intervals)."""
        if any(in_any(self.time_intervals[n], ts) for n in route.mute_time_intervals):
            return True
        if route.active_time_intervals:
            return not any(in_any(self.time_intervals[n], ts) for n in route.active_time_intervals)
        return False

    def by_id(self) -> dict[str, Route]:
        return {r.id: r for r in self.route.walk()}


def _maps(match: LabelMap | None, match_re: LabelMap | None) -> list[Matcher]:
    return from_maps(match, match_re)


def _root_checks(m: RouteModel, fail: Any) -> None:
    if m.matchers or m.match or m.match_re:
        fail("root route must not have any matchers")
    if m.continue_:
        fail("cannot have continue in root route")
    if not m.receiver:
        fail("root route must specify a default receiver")
    if m.mute_time_intervals or m.active_time_intervals:
        fail("root route must not have any mute or active time intervals")


def _group_by(m: RouteModel, parent: Route | None, fail: Any) -> tuple[tuple[str, ...], bool]:
    if m.group_by is None:
        return (parent.group_by, parent.group_by_all) if parent else ((), False)
    if "..." in m.group_by:
        if len(m.group_by) > 1:
            fail("cannot have wildcard group_by (`...`) and other labels")
        return (), True
    if len(set(m.group_by)) != len(m.group_by):
        fail("duplicated label in group_by")
    return tuple(m.group_by), False


def _build(
    m: RouteModel,
    parent: Route | None,
    rid: str,
    loc: tuple[str | int, ...],
    names: set[str],
    doc: Document,
) -> Route:
    """The :class:`Route` of a validated node, its settings inherited."""
    path = ".".join(map(str, loc))

    def fail(problem: str, key: str | None = None) -> None:
        at = doc.where((*loc, key) if key else loc)
        raise RoutingError(f"{at}: {path}: {problem}")

    if parent is None:
        _root_checks(m, fail)
    group_by, group_all = _group_by(m, parent, fail)

    def timer(key: str, default: float) -> float:
        value = getattr(m, key)
        if value is None:
            return float(getattr(parent, key)) if parent else default
        return float(value)

    route = Route(
        id=rid,
        receiver=m.receiver or (parent.receiver if parent else ""),
        matchers=m.matchers + _maps(m.match, m.match_re),
        group_by=group_by,
        group_by_all=group_all,
        group_wait=timer("group_wait", 30.0),
        group_interval=timer("group_interval", 300.0),
        repeat_interval=timer("repeat_interval", 4 * 3600.0),
        continue_=m.continue_,
        mute_time_intervals=list(m.mute_time_intervals),
        active_time_intervals=list(m.active_time_intervals),
    )
    if route.group_interval <= 0:
        fail("group_interval cannot be zero", "group_interval")
    if route.repeat_interval <= 0:
        fail("repeat_interval cannot be zero", "repeat_interval")
    for n in route.mute_time_intervals + route.active_time_intervals:
        if n not in names:
            fail(f"undefined time interval {n!r}")
    route.routes = [
        _build(c, route, f"{rid}.{i}", (*loc, "routes", i), names, doc)
        for i, c in enumerate(m.routes)
    ]
    return route


def _intervals(f: RoutingFile, doc: Document) -> dict[str, list[TimeInterval]]:
    intervals: dict[str, list[TimeInterval]] = {}
    for section in ("time_intervals", "mute_time_intervals"):
        for i, item in enumerate(getattr(f, section)):
            at = doc.where((section, i))
            if item.name in intervals:
                raise RoutingError(f"{at}: {section}.{i}: duplicated name {item.name!r}")
            try:
                intervals[item.name] = [TimeInterval.parse(t) for t in item.time_intervals]
            except (ValueError, KeyError, TypeError) as exc:
                why = " ".join(str(exc).split())
                raise RoutingError(f"{at}: time interval {item.name!r}: {why}") from None
    return intervals


def _receivers(f: RoutingFile, doc: Document) -> list[str]:
    receivers: list[str] = []
    for i, item in enumerate(f.receivers):
        if item.name in receivers:
            at = doc.where(("receivers", i))
            raise RoutingError(f"{at}: notification config name {item.name!r} is not unique")
        receivers.append(item.name)
    return receivers


def check_routing(doc: Document) -> Routing:
    """Validate a parsed routing :class:`~shared.config.Document`; :class:`RoutingError`."""
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else type(doc.data).__name__
        raise RoutingError(f"{doc.path}: expected an Alertmanager configuration, got {got}")
    try:
        f: RoutingFile = validate(doc, RoutingFile)
    except ConfigError as exc:
        raise RoutingError(str(exc)) from None
    intervals = _intervals(f, doc)
    receivers = _receivers(f, doc)
    route = _build(f.route, None, "0", ("route",), set(intervals), doc)
    paths = {"0": "route"}
    for r in route.walk():
        for i, child in enumerate(r.routes):
            paths[child.id] = f"{paths[r.id]}.routes.{i}"
    for r in route.walk():
        if r.receiver not in receivers:
            loc = tuple(int(x) if x.isdigit() else x for x in paths[r.id].split("."))
            raise RoutingError(
                f"{doc.where(loc)}: {paths[r.id]}: undefined receiver {r.receiver!r}"
            )
    rules = [
        InhibitRule(
            source=item.source_matchers + _maps(item.source_match, item.source_match_re),
            target=item.target_matchers + _maps(item.target_match, item.target_match_re),
            equal=tuple(item.equal),
        )
        for item in f.inhibit_rules
    ]
    return Routing(route, receivers, rules, intervals, doc.data)


def parse_routing(raw: Any, path: Path | str = "routing file") -> Routing:
    """Validate a parsed routing document (see :func:`load_routing`)."""
    return check_routing(Document(Path(path), raw))


def load_routing(path: Path) -> Routing:
    """Read and validate a routing file; :class:`RoutingError` (one line naming
    the file, the line and the route path) on any problem."""
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        raise RoutingError(str(exc)) from None
    return check_routing(doc)


def default_routing_path() -> Path:
    return Path(__file__).parent / "config" / "routing.yml"
