"""Rule fixtures: events in, expected alerts out, through the real engine and Redis.

A fixture file (YAML)::

    rule: violence_cluster          # the alerts compared (default: this rule only)
    rules: ../my-rules              # optional rules directory (default: the shipped pack)
    cases:
      - name: positive
        events:                     # processed one at a time, in this order
          - {id: s1, agency: police, type: shooting, at: "2026-03-01T10:00:00Z",
             dept: "13", lat: 43.3, lon: 5.38, entities: {phone: tok-a},
             details: {...}, handling: secret}
        expect:                     # one item per alert: its rule (default: the
          - {evidence: [s1, s2, s3]} # file's) and its evidence's event ids
        late: [s0]                  # events expected on vigie.events.late
        watermark: "2026-03-20T00:00:00Z"  # optional: event time reached at the end

Absence rules fire as event time passes their deadlines: after each event
(the watermark is then the highest event time so far, one stream) and at the
end, at ``watermark`` when given. Their expectations say when they fire:
``{evidence: [tip], at: "2026-03-12T00:00:00Z"}`` (the deadline, the alert's
``starts_at``); ``at`` is required for them and ignored for the other kinds.

Every case runs on a fresh key prefix; then all its events are replayed in
one batch, which must raise no alert more. :func:`run_file` returns one
:class:`CaseResult` per case; :func:`cli_rules_test` prints a table and
returns non-zero on any mismatch or error.

``PATH`` (``vigie rules test [PATH]``) is a fixture file, a directory of fixture
files (default: the shipped pack's), or a **rules directory**: then the
fixtures of every rule in it are run against *its* rules (whatever their
``rules:`` key says). They are the fixture files whose ``rule``/``scope`` names a
rule of the directory, found in ``<rules dir>/fixtures/`` or, as for the
shipped pack, in a ``fixtures/`` directory next to it; a rule without any
fixture is a failure.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from services.correlate.absence import AbsenceStore
from services.correlate.engine import Engine
from services.correlate.rules import DEFAULT_DIR, FIXTURES_DIR
from services.correlate.rules.loader import RuleError, RuleSet, load_dir
from services.correlate.state import RedisState
from shared.config import ConfigError, load_yaml
from shared.models import Alert, NormalizedEvent
from shared.redis import Keys, RedisUnreachable, check_redis

#: Allowed lateness used by fixtures (the service default: 7 days).
LATENESS_MS = 7 * 86_400_000
#: A fixed clock: fixtures never depend on the wall clock.
CLOCK_MS = 1_800_000_000_000


class FixtureError(ValueError):
    """A fixture file that cannot be read; the message names the file and case."""


@dataclass
class CaseResult:
    file: str
    case: str
    expected: list[tuple[str, tuple[str, ...]]]
    got: list[tuple[str, tuple[str, ...]]]
    late_expected: list[str]
    late_got: list[str]
    replay_alerts: int
    #: Set when the case could not run as such (a rule without fixtures).
    problem: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.problem
            and Counter(self.expected) == Counter(self.got)
            and sorted(self.late_expected) == sorted(self.late_got)
            and self.replay_alerts == 0
        )


def to_event(raw: dict[str, Any]) -> NormalizedEvent:
    """The compact fixture form of an event → a :class:`NormalizedEvent`."""
    raw = dict(raw)
    location = dict(raw.pop("location", {}) or {})
    for short, name in (
        ("dept", "department"),
        ("lat", "lat"),
        ("lon", "lon"),
        ("site", "site"),
        ("h3", "h3"),
        ("insee", "insee"),
    ):
        if short in raw:
            location[name] = raw.pop(short)
    entities = []
    for kind, tokens in (raw.pop("entities", {}) or {}).items():
        for token in tokens if isinstance(tokens, list) else [tokens]:
            entities.append({"kind": kind, "token": f"fx:{token}"})
    doc = {
        "event_id": raw.pop("id"),
        "occurred_at": raw.pop("at"),
        "location": location,
        "entities": entities,
        **raw,
    }
    doc.setdefault("case_ref", f"case-{doc['event_id']}")
    doc.setdefault("contact", f"unit-{doc['agency']}")
    return NormalizedEvent.model_validate(doc)


def _alert_key(rule: str, ids: list[str] | tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    return (rule, tuple(sorted(ids)))


def _when(raw: Any, what: str) -> int:
    """An ISO 8601 time (UTC when naive) in ms; 0 for None."""
    if raw is None:
        return 0
    try:
        dt = datetime.fromisoformat(str(raw))
    except ValueError:
        raise FixtureError(f"{what}: {raw!r} is not an ISO 8601 time") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)


def _stamp(ms: int) -> str:
    return "@" + datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expected(rule: str, x: dict[str, Any], absent: set[str]) -> tuple[str, tuple[str, ...]]:
    rule_, ids = _alert_key(rule, [str(i) for i in x["evidence"]])
    if rule in absent:
        if "at" not in x:
            raise FixtureError(f"expectation of absence rule {rule!r} without 'at'")
        ids = (*ids, _stamp(_when(x["at"], f"{rule}: at")))
    return rule_, ids


def _got(alert: Alert, absent: set[str]) -> tuple[str, tuple[str, ...]]:
    rule, ids = _alert_key(alert.rule, [e.event_id for e in alert.evidence])
    if alert.rule in absent:
        ids = (*ids, _stamp(int(alert.starts_at.timestamp() * 1000)))
    return rule, ids


async def run_case(
    redis: aioredis.Redis,
    rules: RuleSet,
    scope: set[str],
    file: str,
    case: dict[str, Any],
    default_rule: str,
) -> CaseResult:
    """Run one case on a fresh key prefix (deleted afterwards)."""
    name = str(case.get("name", "?"))
    try:
        events = [to_event(e) for e in case.get("events", [])]
    except (ValidationError, KeyError, TypeError, AttributeError) as exc:
        raise FixtureError(f"{file}: case {name!r}: bad event: {exc}") from None
    absent = {r.id for r in rules.rules if r.kind == "absence"}
    expected = [
        _expected(str(x.get("rule", default_rule)), x, absent) for x in case.get("expect", []) or []
    ]
    end = _when(case.get("watermark"), f"{file}: case {name!r}: watermark")
    prefix = f"vigie-fixture:{uuid.uuid4().hex[:12]}"
    engine = Engine(
        rules,
        RedisState(redis),
        Keys(prefix),
        LATENESS_MS,
        clock=lambda: CLOCK_MS,
        absences=AbsenceStore(redis, prefix),
    )
    got: list[tuple[str, tuple[str, ...]]] = []
    late: list[str] = []

    def keep(alerts: list[Alert]) -> list[tuple[str, tuple[str, ...]]]:
        return [_got(a, absent) for a in alerts if a.rule in scope]

    async def fire(watermark: int) -> list[Alert]:
        fired = await engine.fire(watermark)
        await engine.ack(fired)
        return [a for a, *_ in fired]

    try:
        for event in events:
            outcome = await engine.process([event])
            late += [e.event_id for e in outcome.late]
            got += keep([a for a, _ in outcome.alerts])
            got += keep(await fire(engine.watermark))
        got += keep(await fire(max(end, engine.watermark)))
        replay = await engine.process(events)
        again = [a for a, _ in replay.alerts] + await fire(max(end, engine.watermark))
        replay_alerts = len(keep(again))
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
    return CaseResult(
        file, name, expected, got, [str(i) for i in case.get("late", []) or []], late, replay_alerts
    )


def _read(file: Path) -> Any:
    """A YAML file's data; :class:`FixtureError` (one line: file, line) when it
    is unreadable, not UTF-8 or not YAML."""
    try:
        return load_yaml(file).data
    except ConfigError as exc:
        raise FixtureError(str(exc)) from None


def _yaml_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def _is_fixture(doc: Any) -> bool:
    return isinstance(doc, dict) and "cases" in doc


def is_rules_dir(path: Path) -> bool:
    """A directory of rule files (as opposed to one of fixture files)."""
    files = _yaml_files(path) if path.is_dir() else []
    return bool(files) and not any(_is_fixture(_read(f)) for f in files)


def fixture_files(path: Path | None) -> list[Path]:
    path = path or FIXTURES_DIR
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FixtureError(f"{path}: no such fixture file or directory")
    files = _yaml_files(path)
    if not files:
        raise FixtureError(f"{path}: no fixture files")
    return files


def _scope(doc: dict[str, Any]) -> set[str]:
    return set(doc.get("scope") or [str(doc.get("rule", ""))])


def fixtures_of(rules_dir: Path, rules: RuleSet) -> tuple[list[Path], list[str]]:
    """The fixture files of ``rules_dir``'s rules, and the rules without any."""
    files: list[Path] = []
    covered: set[str] = set()
    for base in (rules_dir / "fixtures", rules_dir.parent / "fixtures"):
        if not base.is_dir():
            continue
        for f in _yaml_files(base):
            doc = _read(f)
            if _is_fixture(doc) and _scope(doc) & set(rules.by_id):
                files.append(f)
                covered |= _scope(doc)
        if files:
            break  # the directory's own fixtures, else the ones next to it
    return files, [r.id for r in rules.rules if r.id not in covered]


async def run_file(
    redis: aioredis.Redis, file: Path, rules: RuleSet | None = None
) -> list[CaseResult]:
    """Every case of one fixture file, against ``rules`` (default: the file's
    ``rules:`` directory, else the shipped pack). Raises :class:`FixtureError` or
    :class:`RuleError`."""
    doc = await asyncio.to_thread(_read, file)
    if not _is_fixture(doc) or not isinstance(doc.get("cases"), list):
        raise FixtureError(f"{file.name}: expected a mapping with 'cases: [...]'")
    if rules is None:
        rules_dir = (file.parent / doc["rules"]) if doc.get("rules") else DEFAULT_DIR
        rules = load_dir(rules_dir)
    default_rule = str(doc.get("rule", ""))
    scope = _scope(doc)
    unknown = scope - set(rules.by_id)
    if unknown:
        raise FixtureError(f"{file.name}: unknown rule(s) {sorted(unknown)}")
    return [
        await run_case(redis, rules, scope, file.name, case, default_rule) for case in doc["cases"]
    ]


async def run_all(redis_url: str, path: Path | None) -> list[CaseResult]:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        results: list[CaseResult] = []
        if path is not None and is_rules_dir(path):
            rules = load_dir(path)
            files, missing = fixtures_of(path, rules)
            for file in files:
                results += await run_file(redis, file, rules)
            results += [
                CaseResult("-", f"{rule}: no fixture", [], [], [], [], 0, problem="no fixture")
                for rule in missing
            ]
            return results
        for file in fixture_files(path):
            results += await run_file(redis, file)
        return results
    finally:
        await redis.aclose()


def _fmt(alerts: list[tuple[str, tuple[str, ...]]]) -> str:
    return "\n".join(f"{r}: {','.join(ids)}" for r, ids in sorted(alerts)) or "-"


async def _redis_url() -> str | None:
    import os

    url = os.environ.get("VIGIE_REDIS_URL", "")
    if url:
        try:
            await check_redis(url, timeout=1.0)
        except RedisUnreachable:
            return None
        return url
    return None


def cli_rules_test(path: Path | None, out: Console, err: Console) -> int:
    """``vigie rules test [PATH]``: 0 if every case matches, 1 on a mismatch, 2 on an error.

    Uses the Redis at ``VIGIE_REDIS_URL`` when it answers, else starts a private
    one (``shared.localstack``) for the run.
    """
    from shared.localstack import LocalStack, LocalStackError

    stack: LocalStack | None = None
    try:
        url = asyncio.run(_redis_url())
        if url is None:
            stack = LocalStack(workdir=Path(tempfile.mkdtemp(prefix="vigie-rules-")))
            stack.start_redis()
            url = stack.redis_url
        results = asyncio.run(run_all(url, path))
    except (FixtureError, RuleError, LocalStackError, RedisUnreachable, OSError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    finally:
        if stack is not None:
            stack.stop()
    table = Table(title="Rule fixtures")
    for col in ("file", "case", "expected", "got", "late", "replay", "result"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.file,
            r.case,
            _fmt(r.expected),
            _fmt(r.got),
            ",".join(r.late_got) or "-",
            "ok" if r.replay_alerts == 0 else f"+{r.replay_alerts}",
            "[green]PASS[/]" if r.ok else f"[red]FAIL[/] {r.problem}".rstrip(),
        )
    out.print(table)
    failed = [r for r in results if not r.ok]
    out.print(f"{len(results) - len(failed)}/{len(results)} cases pass")
    return 1 if failed else 0
