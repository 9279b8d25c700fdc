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

import yaml
from pydantic import TypeAdapter, ValidationError

from services.correlate.rules.model import Rule, RuleFile

log = logging.getLogger("vigie.correlate.rules")

_RULE: TypeAdapter[Any] = TypeAdapter(Rule)  # type: ignore[arg-type]


class RuleError(ValueError):
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


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def load_dir(path: Path) -> RuleSet:
    """Every rule under ``path`` (a directory of YAML files, or one file).

    Raises :class:`RuleError` on unreadable YAML, an invalid rule (unknown
    key, bad duration, unknown event type...), or a duplicate id.
    """
    digest = hashlib.sha256()
    rules: list[Any] = []
    seen: dict[str, Path] = {}
    for file in _files(path):
        raw_bytes = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw_bytes + b"\0")
        try:
            doc = yaml.safe_load(raw_bytes)
        except yaml.YAMLError as exc:
            raise RuleError(f"{file.name}: not valid YAML: {exc}") from None
        docs = doc.get("rules") if isinstance(doc, dict) and "rules" in doc else [doc]
        if isinstance(doc, dict) and "rules" in doc:
            extra = set(doc) - {"rules"}
            if extra:
                raise RuleError(f"{file.name}: unknown top-level keys {sorted(extra)}")
        if not isinstance(docs, list):
            raise RuleError(f"{file.name}: 'rules' must be a list")
        for item in docs:
            rid = item.get("id", "?") if isinstance(item, dict) else "?"
            try:
                rule = _RULE.validate_python(item)
            except ValidationError as exc:
                raise RuleError(f"{file.name}: rule {rid!r}: {_describe(exc)}") from None
            if rule.id in seen:
                raise RuleError(
                    f"{file.name}: rule {rule.id!r} already defined in {seen[rule.id].name}"
                )
            seen[rule.id] = file
            rules.append(rule)
    if not rules:
        raise RuleError(f"{path}: no rules")
    RuleFile(rules=rules)  # the pack as a whole is valid too
    return RuleSet.of(rules, digest.hexdigest()[:12], str(path))


def signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap change detector: names, sizes and mtimes of the rule files."""
    try:
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in _files(path))
    except (OSError, RuleError):
        return ()


class Reloader:
    """The active rule set, reloaded when the directory changes (or on demand).

    A bad new version is logged and rejected; the previous rules stay active.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.active = load_dir(path)
        self._sig = signature(path)
        self.last_error: str | None = None

    def maybe_reload(self, force: bool = False) -> bool:
        """Reload if the files changed (or ``force``); return True if the set changed."""
        sig = signature(self.path)
        if not force and sig == self._sig:
            return False
        self._sig = sig
        try:
            new = load_dir(self.path)
        except (RuleError, OSError) as exc:
            self.last_error = str(exc)
            log.error(
                "rules rejected, previous rules stay active",
                extra={"error": str(exc), "version": self.active.version},
            )
            return False
        self.last_error = None
        if new.version == self.active.version:
            return False
        log.info("rules reloaded", extra={"version": new.version, "rules": len(new.rules)})
        self.active = new
        return True
