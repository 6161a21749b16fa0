"""The campaign's cell runner and the judge seam: deadlines honoured on every path, observers."""

from __future__ import annotations

import time

from emu.impls.registry import resolve
from fuzz.campaign import CellSpec, run_cells
from fuzz.judging import judge_case, observing
from fuzz.shape import RandomDraw, case_from_draw
from model.case import Case


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
