"""The routing file: an Alertmanager configuration, loaded strictly, and its route tree.

:func:`load_routing` reads ``route``, ``receivers``, ``inhibit_rules`` and
``time_intervals`` (plus the older ``mute_time_intervals``), refuses unknown
keys and checks references (receivers, time intervals) at load time, raising
:class:`RoutingError` with a one-line message. :meth:`Route.match` picks the
routes an alert's labels reach with Alertmanager's semantics: depth-first,
the first matching child wins unless it has ``continue: true``, a node with
no matching child is itself the match; children inherit ``receiver``,
``group_by`` and the three timers, not the time intervals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.notify.matchers import Matcher, all_match, from_maps, parse_matchers
from services.notify.timeinterval import TimeInterval, in_any


class RoutingError(ValueError):
    """The routing file cannot be used; the message is one line."""


_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: Any) -> float:
    """A Prometheus duration (``30s``, ``1h30m``, ``0s``) in seconds."""
    s = str(text).strip()
    m = _DURATION.match(s)
    if not s or not m or not any(m.groups()):
        raise RoutingError(f"bad duration {text!r}")
    groups = m.groups()
    return float(sum(int(groups[i * 2 + 1]) * u for i, u in enumerate(_UNITS) if groups[i * 2]))


_ROUTE_KEYS = {
    "receiver",
    "group_by",
    "continue",
    "matchers",
    "match",
    "match_re",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
    "routes",
}
_TOP_KEYS = {
    "global",
    "route",
    "receivers",
    "inhibit_rules",
    "time_intervals",
    "mute_time_intervals",
    "templates",
    "tracing",
}
_INHIBIT_KEYS = {
    "source_matchers",
    "target_matchers",
    "equal",
    "source_match",
    "source_match_re",
    "target_match",
    "target_match_re",
}


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


def _strict(raw: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RoutingError(f"{where}: expected a mapping")
    unknown = set(raw) - allowed
    if unknown:
        raise RoutingError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    return raw


def _str_map(raw: Any, where: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RoutingError(f"{where}: expected a mapping")
    return {str(k): str(v) for k, v in raw.items()}


def _matchers(raw: dict[str, Any], where: str, new: str, old: str, old_re: str) -> list[Matcher]:
    try:
        out = parse_matchers([str(x) for x in raw.get(new) or []])
        out += from_maps(_str_map(raw.get(old), where), _str_map(raw.get(old_re), where))
    except ValueError as exc:
        raise RoutingError(f"{where}: {exc}") from None
    return out


def _build(raw: Any, parent: Route | None, rid: str, names: set[str]) -> Route:
    where = f"route {rid}"
    raw = _strict(raw, _ROUTE_KEYS, where)
    matchers = _matchers(raw, where, "matchers", "match", "match_re")
    if parent is None:
        if matchers:
            raise RoutingError("root route must not have any matchers")
        if raw.get("continue"):
            raise RoutingError("cannot have continue in root route")
        if not raw.get("receiver"):
            raise RoutingError("root route must specify a default receiver")
        if raw.get("mute_time_intervals") or raw.get("active_time_intervals"):
            raise RoutingError("root route must not have any mute or active time intervals")
    group_by: tuple[str, ...] = parent.group_by if parent else ()
    group_all = parent.group_by_all if parent else False
    if "group_by" in raw and raw["group_by"] is not None:
        items = [str(x) for x in raw["group_by"]]
        if "..." in items:
            if len(items) > 1:
                raise RoutingError(
                    f"{where}: cannot have wildcard group_by (`...`) and other labels"
                )
            group_all, group_by = True, ()
        else:
            if len(set(items)) != len(items):
                raise RoutingError(f"{where}: duplicated label in group_by")
            group_all, group_by = False, tuple(items)

    def timer(key: str, default: float) -> float:
        if raw.get(key) is None:
            return getattr(parent, key) if parent else default
        return parse_duration(raw[key])

    route = Route(
        id=rid,
        receiver=str(raw.get("receiver") or (parent.receiver if parent else "")),
        matchers=matchers,
        group_by=group_by,
        group_by_all=group_all,
        group_wait=timer("group_wait", 30.0),
        group_interval=timer("group_interval", 300.0),
        repeat_interval=timer("repeat_interval", 4 * 3600.0),
        continue_=bool(raw.get("continue", False)),
        mute_time_intervals=[str(x) for x in raw.get("mute_time_intervals") or []],
        active_time_intervals=[str(x) for x in raw.get("active_time_intervals") or []],
    )
    if route.group_interval <= 0:
        raise RoutingError(f"{where}: group_interval cannot be zero")
    if route.repeat_interval <= 0:
        raise RoutingError(f"{where}: repeat_interval cannot be zero")
    for n in route.mute_time_intervals + route.active_time_intervals:
        if n not in names:
            raise RoutingError(f"{where}: undefined time interval {n!r}")
    children = raw.get("routes") or []
    if not isinstance(children, list):
        raise RoutingError(f"{where}: routes must be a list")
    route.routes = [_build(c, route, f"{rid}.{i}", names) for i, c in enumerate(children)]
    return route


def parse_routing(raw: Any) -> Routing:
    """Validate a parsed routing document (see :func:`load_routing`)."""
    raw = _strict(raw, _TOP_KEYS, "routing file")
    if "route" not in raw:
        raise RoutingError("no route provided in config")
    intervals: dict[str, list[TimeInterval]] = {}
    for section in ("time_intervals", "mute_time_intervals"):
        for i, item in enumerate(raw.get(section) or []):
            item = _strict(item, {"name", "time_intervals"}, f"{section}[{i}]")
            name = str(item.get("name") or "")
            if not name or name in intervals:
                raise RoutingError(f"{section}[{i}]: missing or duplicated name {name!r}")
            try:
                intervals[name] = [TimeInterval.parse(t) for t in item.get("time_intervals") or []]
            except (ValueError, KeyError, TypeError) as exc:
                raise RoutingError(f"time interval {name!r}: {exc}") from None
    receivers: list[str] = []
    for i, item in enumerate(raw.get("receivers") or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise RoutingError(f"receivers[{i}]: missing name")
        extra = [k for k in item if k != "name" and not str(k).endswith("_configs")]
        if extra:
            raise RoutingError(f"receivers[{i}]: unknown key(s) {', '.join(map(str, extra))}")
        if item["name"] in receivers:
            raise RoutingError(f"notification config name {item['name']!r} is not unique")
        receivers.append(str(item["name"]))
    route = _build(raw["route"], None, "0", set(intervals))
    for r in route.walk():
        if r.receiver not in receivers:
            raise RoutingError(f"undefined receiver {r.receiver!r} used in route {r.id}")
    rules = []
    for i, item in enumerate(raw.get("inhibit_rules") or []):
        where = f"inhibit_rules[{i}]"
        item = _strict(item, _INHIBIT_KEYS, where)
        rules.append(
            InhibitRule(
                source=_matchers(item, where, "source_matchers", "source_match", "source_match_re"),
                target=_matchers(item, where, "target_matchers", "target_match", "target_match_re"),
                equal=tuple(str(x) for x in item.get("equal") or []),
            )
        )
    return Routing(route, receivers, rules, intervals, raw)


def load_routing(path: Path) -> Routing:
    """Read and validate a routing file; :class:`RoutingError` on any problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise RoutingError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RoutingError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    return parse_routing(raw)


def default_routing_path() -> Path:
    return Path(__file__).parent / "config" / "routing.yml"
