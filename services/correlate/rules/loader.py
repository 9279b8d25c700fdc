"""Load a rules directory strictly; a bad file names itself and its rule.

:func:`load_dir` returns a :class:`RuleSet` (rules plus a version: a digest of
the files' contents) or raises :class:`RuleError`; nothing is half-loaded.
:class:`Reloader` keeps the active set and swaps it only for a valid new one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.correlate.rules.model import Rule, RuleFile
from shared import config
from shared.config import ConfigError, Document, describe, did_you_mean, load_yaml

log = logging.getLogger("vigie.correlate.rules")

_RULE: TypeAdapter[Any] = TypeAdapter(Rule)  # type: ignore[arg-type]


class RuleError(ConfigError):
    """A rules directory that cannot be loaded; the message names file and rule."""


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Any, ...]
    version: str
    source: str = ""
    by_id: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: list[Any], version: str, source: str = "") -> RuleSet:
        return cls(tuple(rules), version, source, {r.id: r for r in rules})


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RuleError(f"{path}: no such rules file or directory")
    return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def _rules_of(doc: Document) -> list[tuple[tuple[str | int, ...], Any]]:
    """(location in the file, raw rule) for each rule of a file: one rule, or a
    pack ``{rules: [...]}``. :class:`RuleError` naming the file otherwise."""
    data = doc.data
    if data is None:
        raise RuleError(f"{doc.path}: empty file, no rule in it")
    if isinstance(data, dict) and "rules" in data:
        extra = sorted(str(k) for k in data if k != "rules")
        if extra:
            raise RuleError(f"{doc.where((extra[0],))}: {did_you_mean(extra[0], ['rules'])}")
        if not isinstance(data["rules"], list):
            raise RuleError(f"{doc.where(('rules',))}: 'rules' must be a list of rules")
        return [(("rules", i), item) for i, item in enumerate(data["rules"])]
    return [((), data)]


def _rule(doc: Document, loc: tuple[str | int, ...], item: Any) -> Any:
    if not isinstance(item, dict):
        where = ".".join(map(str, loc)) or "the file"
        got = type(item).__name__
        raise RuleError(f"{doc.where(loc)}: {where}: expected a rule (a mapping), got {got}")
    rid = item.get("id")
    prefix = f"rule {rid!r}" if isinstance(rid, str) and rid else f"rule #{loc[-1] if loc else 0}"
    try:
        return _RULE.validate_python(item)
    except ValidationError as exc:
        raise RuleError(describe(exc, Rule, doc, prefix, base=loc)) from None


def load_dir(path: Path) -> RuleSet:
    """Every rule under ``path`` (a directory of YAML files, or one file).

    Raises :class:`RuleError` with one line naming the file, the line and the
    rule on unreadable or non-UTF-8 files, bad YAML, an empty file, an invalid
    rule (a misspelled key is named as unknown with the nearest valid one, bad
    duration, unknown event type...), or a duplicate id.
    """
    digest = hashlib.sha256()
    rules: list[Any] = []
    seen: dict[str, Path] = {}
    for file in _files(path):
        try:
            doc = load_yaml(file)
        except ConfigError as exc:
            raise RuleError(str(exc)) from None
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        for loc, item in _rules_of(doc):
            rule = _rule(doc, loc, item)
            if rule.id in seen:
                raise RuleError(
                    f"{doc.where(loc)}: rule {rule.id!r} already defined in {seen[rule.id].name}"
                )
            seen[rule.id] = file
            rules.append(rule)
    if not rules:
        raise RuleError(f"{path}: no rules")
    RuleFile(rules=rules)  # the pack as a whole is valid too
    return RuleSet.of(rules, digest.hexdigest()[:12], str(path))


class Reloader(config.Reloader[RuleSet]):
    """The active rule set, reloaded when the directory's content changes (or on
    demand), on :class:`shared.config.Reloader`: a bad new version is logged and
    rejected, the previous rules stay active."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            [path],
            lambda: load_dir(path),
            "rules",
            log,
            lambda rules: {"version": rules.version, "rules": len(rules.rules)},
            lambda old, new: old.version == new.version,
        )
