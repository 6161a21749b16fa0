"""The campaign's cell runner and the judge seam: deadlines honoured on every path, observers."""

from __future__ import annotations

import time
from pathlib import Path

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.campaign import CellSpec, run_cells
from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.fuzz.judging import judge_case, observing
from sledfuzz.fuzz.minimal_case import minimal_case
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.model.case import Case


def test_one_job_keeps_the_shared_deadline() -> None:
    """``run``'s cells share a wall-clock deadline; in-process (``--jobs 1``) as in workers. A
    deadline already past ends the cell before its first case, whatever its own time share."""
    spec = CellSpec("v6.19", seconds=10.0, seed=1, strict_flags=False, out_dir=None, minimize=False,
                    deadline_wall=time.time() - 1.0, engine="random")
    results, interrupted = run_cells([spec], jobs=1)
    assert not interrupted
    assert [r.impl for r in results] == ["v6.19"]
    assert results[0].counts.cases == 0 and not results[0].error


def test_observers_see_each_judged_case_only_while_observing() -> None:
    impl = resolve("v6.19")
    cases = [case_from_draw(RandomDraw(i), impl.caps) for i in range(3)]
    seen: list[Case] = []
    with observing(seen.append):
        for case in cases[:2]:
            judge_case(case, impl)
    judge_case(cases[2], impl)
    assert seen == cases[:2]


SIZE_BUG = "v6.19-pre-9f1e16fb1fc9"  # I-SIZE
SIZE_CASE = Path(__file__).resolve().parents[2] / "corpus" / "regressions" / "9f1e16fb1fc9-size-pass-im.json"


def test_the_minimal_case_passes_on_its_origin_when_the_original_did() -> None:
    case = load_entry(SIZE_CASE).case
    small = minimal_case(case, resolve(SIZE_BUG), "I-SIZE", origin=resolve("v6.19"), strict_flags=False, seconds=5)
    assert small.origin_demanded
    assert small.judged.status == "fail" and "I-SIZE" in small.judged.invariants
    assert small.origin_judged is not None and small.origin_judged.passed


def test_an_origin_the_original_fails_on_is_not_demanded() -> None:
    """Asked to pass on a configuration it already fails on, the case keeps its verdict there."""
    case = load_entry(SIZE_CASE).case
    bug = resolve(SIZE_BUG)
    small = minimal_case(case, bug, "I-SIZE", origin=bug, strict_flags=False, shrink=False)
    assert not small.origin_demanded and small.case is case
    assert small.origin_judged is not None and small.origin_judged.status == "fail"
