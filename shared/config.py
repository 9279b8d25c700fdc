"""Vigie's configuration files: one YAML loader, located one-line errors, one
duration parser and one reload mechanism (rules, routing, cells).

* :func:`load_yaml` reads a file into a :class:`Document` (the data and where
  each key sits); unreadable, non-UTF-8 or malformed YAML raises
  :class:`ConfigError` with ``file:line:column: problem``.
* :func:`validate` checks a document against a strict pydantic model and
  turns the first problem into one line naming the file, the line and the
  path inside the document. A misspelled key is named as unknown, with the
  nearest valid key (``gruop_by: unknown key, did you mean group_by?``)
  rather than the correct key reported missing.
* :func:`parse_duration`: Prometheus durations (``1h30m``, ``500ms``, ``90d``).
* :class:`Reloader`: the active value built from some files, rebuilt when
  their content changes and swapped only for a valid new one.

Every error is a :class:`ConfigError` (a ``ValueError``) whose message is one
line; nothing here prints or logs except :class:`Reloader` (one error line per
rejected version).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

log = logging.getLogger("vigie.config")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file Vigie cannot use; the message is one line naming it."""


@dataclass
class Document:
    """A parsed YAML file: ``data``, and the line of each key path (1-based)."""

    path: Path
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def resolve(self, loc: Sequence[str | int]) -> tuple[str | int, ...]:
        """The part of ``loc`` that names places in the file: elements that are
        not keys there (a pydantic union's tag, ``threshold``) are skipped."""
        out: tuple[str | int, ...] = ()
        for part in loc:
            if (*out, part) in self.lines:
                out = (*out, part)
        return out

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest place of ``loc`` found in the file."""
        return self.lines.get(self.resolve(loc))

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line`` for ``loc`` (``file`` alone when unknown)."""
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def _index(node: yaml.Node, prefix: tuple[str | int, ...], out: dict[Any, int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            out[(*prefix, name)] = key.start_mark.line + 1
            _index(value, (*prefix, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*prefix, i), out)


def parse_yaml(text: str, path: Path) -> Document:
    """A :class:`Document` from YAML text; :class:`ConfigError` (``file:line:col``)."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{at}: not valid YAML: {problem}") from None
    lines: dict[Any, int] = {}
    if node is not None:
        _index(node, (), lines)
    return Document(path, data, lines)


def read_text(path: Path) -> str:
    """The file's text; :class:`ConfigError` when unreadable or not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


def load_yaml(path: Path) -> Document:
    """Read and parse a YAML file (see :func:`read_text`, :func:`parse_yaml`)."""
    return parse_yaml(read_text(path), Path(path))


# -- validation -------------------------------------------------------------


def printable(text: object, limit: int = 60) -> str:
    """``text`` safe to put in a one-line message: as it is when it is short and
    printable, else its ``repr`` (newlines and control characters escaped), cut."""
    s = str(text)
    if s.isprintable() and len(s) <= limit:
        return s
    shown = repr(s)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """``"`key`: unknown key, did you mean `other`?"`` (or without the suggestion)."""
    close = difflib.get_close_matches(str(key), sorted(set(valid)), n=1, cutoff=0.6)
    hint = f", did you mean `{close[0]}`?" if close else ""
    return f"`{printable(key)}`: unknown key{hint}"


def _alternatives(tp: Any) -> list[Any]:
    """The types an annotation stands for, through ``Annotated`` and unions."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for a in typing.get_args(tp) for alt in _alternatives(a)]
    return [tp]


def _members(tp: Any) -> list[Any]:
    """The model types an annotation may hold (through Optional and unions)."""
    return [t for t in _alternatives(tp) if isinstance(t, type) and issubclass(t, BaseModel)]


def _children(tp: Any) -> list[Any]:
    """The element types of a list or dict annotation (values, for a dict)."""
    out: list[Any] = []
    for t in _alternatives(tp):
        origin = typing.get_origin(t)
        if origin in (list, tuple, set, frozenset, Sequence):
            out += typing.get_args(t)[:1]
        elif origin is dict:
            out += typing.get_args(t)[1:2]
    return out


def _keys(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()} | set(model.model_fields)


def valid_keys(root: Any, loc: Sequence[str | int]) -> set[str]:
    """The keys the model(s) at ``loc`` accept, following fields, lists, dicts and
    unions (a union's tag in ``loc`` is skipped). Empty when unknown."""
    current: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            models = _members(tp)
            for m in models:
                f = m.model_fields.get(str(part)) or next(
                    (f for f in m.model_fields.values() if f.alias == part), None
                )
                if f is not None:
                    nxt.append(f.annotation)
            if not models or isinstance(part, int) or not nxt:
                nxt += _children(tp)
                if not _children(tp) and models:  # a union tag (``threshold``): stay
                    nxt.append(tp)
        current = nxt
    return {k for tp in current for m in _members(tp) for k in _keys(m)}


def _pick(errors: list[Any]) -> Any:
    """The error to report: an unknown key before anything else (a misspelled
    key also makes the right one "missing"), else the first."""
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    return extra[0] if extra else errors[0]


def describe(
    exc: ValidationError,
    root: Any,
    doc: Document | None = None,
    prefix: str = "",
    base: tuple[str | int, ...] = (),
) -> str:
    """One line for a pydantic error: ``file:line: path: problem``.

    ``root`` is the validated type (for the did-you-mean of an unknown key);
    ``prefix`` is prepended to the path (``rule 'x'``, ``route``...); ``base``
    is where the validated value sits in ``doc`` (for the line)."""
    err = _pick(exc.errors(include_url=False))
    loc = tuple(err["loc"])
    shown = loc
    if doc is not None and doc.lines:  # the places in the file (no union tags), a missing key
        found = doc.resolve(base + loc)[len(base) :]
        shown = found + loc[-1:] if loc and found[-1:] != loc[-1:] else found
    if err["type"] == "extra_forbidden" and loc:
        problem = did_you_mean(str(loc[-1]), valid_keys(root, loc[:-1]))
        shown = shown[:-1]
    elif err["type"] == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        name = str(ctx.get("discriminator", "")).strip("'")
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        problem = did_you_mean(str(ctx.get("tag")), expected).replace(
            "unknown key", f"unknown {name}"
        )
        shown = (*shown, name) if name else shown
    else:
        problem = str(err["msg"]).replace("\n", " ").removeprefix("Value error, ")
    path = ".".join(printable(p) for p in shown)
    where = ": ".join(p for p in (prefix, path) if p)
    head = doc.where(base + loc) if doc is not None else ""
    return ": ".join(p for p in (head, where, problem) if p)


def validate(doc: Document, model: Any, prefix: str = "", data: Any = None) -> Any:
    """``data`` (default: the whole document) validated as ``model`` (a pydantic
    model or any type); :class:`ConfigError` with :func:`describe`'s line."""
    value = doc.data if data is None else data
    try:
        return TypeAdapter(model).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(describe(exc, model, doc, prefix)) from None


# -- durations --------------------------------------------------------------

_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: Any) -> float:
    """A Prometheus duration (``30s``, ``1h30m``, ``500ms``, ``90d``, ``0s``) in
    seconds. ``ValueError`` naming the bad value otherwise."""
    s = str(text).strip()
    m = _DURATION.match(s)
    if isinstance(text, bool) or not s or not m or not any(m.groups()):
        raise ValueError(f"bad duration {text!r} (like 30s, 5m, 1h30m, 90d)")
    groups = m.groups()
    return float(sum(int(groups[i * 2 + 1]) * u for i, u in enumerate(_UNITS) if groups[i * 2]))


# -- reload -----------------------------------------------------------------


def digest(paths: Iterable[Path]) -> str:
    """A digest of the files' names and contents (a directory: its YAML files);
    an unreadable file is a version of its own."""
    h = hashlib.sha256()
    for path in paths:
        files = (
            sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
            if path.is_dir()
            else [path]
        )
        for f in files:
            h.update(str(f).encode() + b"\0")
            try:
                h.update(f.read_bytes())
            except OSError as exc:
                h.update(f"unreadable:{exc.errno}".encode())
            h.update(b"\0")
    return h.hexdigest()


class Reloader(Generic[T]):
    """The value ``load()`` builds from ``paths``, rebuilt when their content changes.

    The first load raises (one line: a service must not start on a bad
    configuration). Later, a bad new version is logged once (one error line
    naming the problem) and ignored: the previous value stays active, and
    :attr:`last_error` holds the line until a good version comes. Changes are
    detected by content (a file rewritten within the same second, a
    Kubernetes ConfigMap swap are seen).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        load: Callable[[], T],
        what: str,
        logger: logging.Logger = log,
        summary: Callable[[T], dict[str, Any]] | None = None,
        same: Callable[[T, T], bool] | None = None,
    ) -> None:
        """``what`` names the value in the log lines (``"<what> rejected, the
        previous one stays active"``, ``"<what> reloaded"``); ``summary`` gives
        the reloaded line's fields; ``same(old, new)`` true keeps the old value
        (a change back to the active version is not a reload)."""
        self.paths = [Path(p) for p in paths]
        self._load = load
        self.what = what
        self._log = logger
        self._summary = summary
        self._same = same
        self.seen = digest(self.paths)
        self.active: T = load()
        self.last_error: str | None = None

    def maybe_reload(self, force: bool = False) -> bool:
        """Rebuild if the files changed (or ``force``); True when a new value is active."""
        now = digest(self.paths)
        if now == self.seen and not force:
            return False
        self.seen = now
        try:
            value = self._load()
        except (ValueError, OSError) as exc:
            self.last_error = str(exc)
            self._log.error(
                "%s rejected, the previous one stays active",
                self.what,
                extra={"error": self.last_error},
            )
            return False
        self.last_error = None
        if self._same is not None and self._same(self.active, value):
            return False
        self.active = value
        extra = self._summary(value) if self._summary is not None else {}
        self._log.info("%s reloaded", self.what, extra=extra)
        return True
