"""Alertmanager label matchers: ``name="v"``, ``!=``, ``=~``, ``!~`` and the older maps.

Semantics follow Alertmanager: a missing label has the empty value; regular
expressions are anchored (``^(?:re)$``). :func:`parse_matcher` raises
``ValueError`` with a one-line message on a malformed matcher or regex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(
    r"""^\s*(?P<name>[^\s{}!=~,"']+|"(?:[^"\\]|\\.)*")\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$"""
)


@dataclass(frozen=True)
class Matcher:
    """One label matcher; :meth:`matches` takes a label map."""

    name: str
    op: Op
    value: str
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: Op, value: str) -> Matcher:
        compiled = None
        if op in ("=~", "!~"):
            try:
                compiled = re.compile(f"^(?:{value})$")
            except re.error as exc:
                raise ValueError(f"bad regex {value!r} for {name}: {exc}") from None
        return cls(name, op, value, compiled)

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self._re is not None
        hit = self._re.match(got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"bad quoted value {text}") from None
        if not isinstance(value, str):
            raise ValueError(f"bad quoted value {text}")
        return value
    if '"' in text:
        raise ValueError(f"unbalanced quotes in {text!r}")
    return text


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher as written in ``matchers:`` (value quoted or not)."""
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"bad matcher {text!r}")
    name = _unquote(m.group("name"))
    op: Op = m.group("op")  # type: ignore[assignment]
    return Matcher.make(name, op, _unquote(m.group("value")))


def parse_matchers(items: Iterable[str]) -> list[Matcher]:
    """Parse a ``matchers:`` list; an item may hold several comma-separated matchers
    in braces (``{a="1",b=~"x"}``), as Alertmanager accepts."""
    out: list[Matcher] = []
    for item in items:
        text = item.strip()
        if text.startswith("{") and text.endswith("}"):
            out.extend(parse_matcher(p) for p in _split_commas(text[1:-1]) if p.strip())
        else:
            out.append(parse_matcher(text))
    return out


def _split_commas(text: str) -> list[str]:
    parts, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            cur.append(ch)
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def from_maps(match: Mapping[str, str] | None, match_re: Mapping[str, str] | None) -> list[Matcher]:
    """The older ``match``/``match_re`` (and ``source_match``...) maps as matchers."""
    out = [Matcher.make(k, "=", v) for k, v in sorted((match or {}).items())]
    out += [Matcher.make(k, "=~", v) for k, v in sorted((match_re or {}).items())]
    return out


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
