"""Faust and aiokafka internals live in shared/faust_compat.py only, and still exist.

An upgrade of faust-streaming, mode or aiokafka that removes or changes one of
the private attributes Vigie uses fails here, naming it, rather than in a
running worker.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared import faust_compat
from shared.faust_compat import PRIVATE, Private, incompatibilities

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_api_vigie_uses_still_exists() -> None:
    problems = list(incompatibilities())
    assert not problems, "incompatible Faust/aiokafka upgrade:\n" + "\n".join(problems)


def test_the_check_would_catch_a_removal_and_a_signature_change(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    gone = Private(faust_compat.Stream, "_not_there_any_more", "test")
    moved = Private(faust_compat.AIOKafkaProducer, "_partition", "test", ("topic", "key"))
    monkeypatch.setattr(faust_compat, "PRIVATE", (*PRIVATE, gone, moved))
    problems = list(incompatibilities())
    assert len(problems) == 2
    assert "_not_there_any_more is gone" in problems[0]
    assert "_partition now takes" in problems[1]


#: ``<name>._private`` on an object of these libraries (heuristic: the names
#: Vigie's code gives them), outside shared/faust_compat.py.
_SUSPECT = re.compile(
    r"\b(stream|s|app|producer|consumer|admin|monitor|event|msg|message|worker|thread_cls|"
    r"producer_cls|client)\._[a-z]\w*"
)


def test_no_private_faust_or_aiokafka_api_outside_faust_compat() -> None:
    offenders = []
    for path in [*ROOT.glob("shared/*.py"), *ROOT.glob("services/**/*.py")]:
        if path.name == "faust_compat.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _SUSPECT.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "move these to shared/faust_compat.py:\n" + "\n".join(offenders)


def test_every_listed_private_is_used() -> None:
    source = (ROOT / "shared" / "faust_compat.py").read_text()
    app = (ROOT / "shared" / "app.py").read_text()
    for p in PRIVATE:
        uses = source.count(p.name) + app.count(f"def {p.name}(")
        assert uses >= 2, f"{p.name} is listed but not used"  # the listing and a use


class _Gaps:
    def __bool__(self) -> bool:
        return False


def _consumer(committed: int | None, acked: list[int], held: list[int] = ()) -> object:  # type: ignore[assignment]
    from types import SimpleNamespace

    tp = "tp"
    msgs = [SimpleNamespace(tp=tp, offset=o, acked=False) for o in held]
    return SimpleNamespace(
        _acked={tp: list(acked)},
        _acked_index={tp: set(acked)},
        _gap={tp: _Gaps()},
        _committed_offset={tp: committed},
        _unacked_messages=[],
        _held=msgs,
    )


def test_the_commit_never_skips_a_held_message() -> None:
    """faust-streaming #606: Faust commits 2590 over an un-acked 2585."""
    from shared.faust_compat import _guarded_new_offset

    c = _consumer(2585, [2586, 2587, 2588, 2589])
    assert _guarded_new_offset(c, "tp") is None
    c = _consumer(2585, [2585, 2586, 2588])
    assert _guarded_new_offset(c, "tp") == 2587
    c = _consumer(0, [1, 2])  # committed 0 is a committed offset too
    assert _guarded_new_offset(c, "tp") is None
    c = _consumer(None, [3, 4, 6], held=[5])  # before the first commit: in flight caps it
    c._unacked_messages = c._held  # type: ignore[attr-defined]
    assert _guarded_new_offset(c, "tp") == 5
