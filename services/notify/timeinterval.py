"""Alertmanager ``time_intervals``: when a route is muted or active.

An interval holds optional ``times``, ``weekdays``, ``days_of_month``,
``months``, ``years`` and ``location``; an instant is inside when every field
given contains it (Alertmanager's semantics; ``end_time`` is exclusive,
negative days count from the month's end). Parsing raises ``ValueError``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [m.lower() for m in calendar.month_name[1:]]


def _minutes(text: str) -> int:
    try:
        h, m = text.split(":")
        value = int(h) * 60 + int(m)
    except ValueError:
        raise ValueError(f"bad time {text!r} (HH:MM)") from None
    if not 0 <= value <= 24 * 60 or not 0 <= int(m) < 60:
        raise ValueError(f"bad time {text!r}")
    return value


def _named(text: str, names: list[str], kind: str) -> int:
    t = text.strip().lower()
    if t in names:
        return names.index(t) + 1
    if kind == "month" and t.isdigit() and 1 <= int(t) <= 12:
        return int(t)
    raise ValueError(f"bad {kind} {text!r}")


def _ranges(items: list[Any], parse: Any) -> list[tuple[int, int]]:
    out = []
    for item in items:
        text = str(item)
        if ":" in text.lstrip("-"):
            idx = text.index(":", 1) if text.startswith("-") else text.index(":")
            lo, hi = parse(text[:idx]), parse(text[idx + 1 :])
        else:
            lo = hi = parse(text)
        out.append((lo, hi))
    return out


def _day(text: str) -> int:
    value = int(text)
    if value == 0 or not -31 <= value <= 31:
        raise ValueError(f"bad day of month {text!r}")
    return value


@dataclass(frozen=True)
class TimeInterval:
    times: list[tuple[int, int]] | None = None
    weekdays: list[tuple[int, int]] | None = None
    days_of_month: list[tuple[int, int]] | None = None
    months: list[tuple[int, int]] | None = None
    years: list[tuple[int, int]] | None = None
    location: str = "UTC"

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TimeInterval:
        allowed = {"times", "weekdays", "days_of_month", "months", "years", "location"}
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown time interval field(s): {', '.join(sorted(unknown))}")
        times = None
        if raw.get("times") is not None:
            times = []
            for t in raw["times"]:
                lo, hi = _minutes(t["start_time"]), _minutes(t["end_time"])
                if lo >= hi:
                    raise ValueError("start_time must be before end_time")
                times.append((lo, hi))
        location = str(raw.get("location") or "UTC")
        if location.lower() == "local":
            location = "UTC"
        try:
            ZoneInfo(location)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown location {location!r}") from None
        return cls(
            times=times,
            weekdays=_ranges(raw["weekdays"], lambda s: _named(s, _WEEKDAYS, "weekday"))
            if raw.get("weekdays") is not None
            else None,
            days_of_month=_ranges(raw["days_of_month"], _day)
            if raw.get("days_of_month") is not None
            else None,
            months=_ranges(raw["months"], lambda s: _named(s, _MONTHS, "month"))
            if raw.get("months") is not None
            else None,
            years=_ranges(raw["years"], int) if raw.get("years") is not None else None,
            location=location,
        )

    def contains(self, ts: float) -> bool:
        t = datetime.fromtimestamp(ts, UTC).astimezone(ZoneInfo(self.location))
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(lo <= minute < hi for lo, hi in self.times):
                return False
        if self.weekdays is not None:
            wd = t.isoweekday()
            if not any(lo <= wd <= hi for lo, hi in self.weekdays):
                return False
        if self.days_of_month is not None:
            last = calendar.monthrange(t.year, t.month)[1]

            def norm(d: int) -> int:
                return d if d > 0 else last + d + 1

            if not any(norm(lo) <= t.day <= norm(hi) for lo, hi in self.days_of_month):
                return False
        if self.months is not None and not any(lo <= t.month <= hi for lo, hi in self.months):
            return False
        return self.years is None or any(lo <= t.year <= hi for lo, hi in self.years)


def in_any(intervals: list[TimeInterval], ts: float) -> bool:
    """True when ``ts`` falls in one of ``intervals``."""
    return any(i.contains(ts) for i in intervals)
