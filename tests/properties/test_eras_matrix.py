"""The era matrix, by search: every bug configuration is found, every era violates exactly its
declared known bugs, and each counterexample passes on the configuration it derives from.

Finding is searching: ``fuzz.campaign.search_cell`` generates cases with hypothesis's generate
phase only — no corpus, no atheris seeds, no ``@example``, no database — and stops once every bug
the configuration isolates has been seen (or its budget is spent).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sledfuzz.emu.impls.registry import available, resolve
from sledfuzz.fuzz.campaign import cell_context, judge_case, search_cell
from sledfuzz.fuzz.oracle import PASSING
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw

#: Per-configuration budget; bugs are typically found in well under a second.
BUDGET_S = 45.0
MINIMIZE_S = 4.0

#: searches with a time budget (the budget only bounds a hang), ~1 min in all
pytestmark = pytest.mark.slow

SHIPPED = [name for name, _ in available(include_plugins=False) if name != "kernel"]
WITH_BUGS = [n for n in SHIPPED if resolve(n).caps.known_bugs]

@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.mark.parametrize("name", WITH_BUGS)
def test_every_declared_bug_is_found_and_nothing_else(name: str, out_dir: Path) -> None:
    ctx = cell_context(name)
    targets = frozenset(ctx.new_result().target_bugs)
    assert targets, f"{name} declares known bugs but isolates none of them"
    res = search_cell(name, seconds=BUDGET_S, seed=0, out_dir=str(out_dir), minimize=True,
                      minimize_seconds=MINIMIZE_S, stop_on=targets)
    assert not res.error, res.error
    counts = res.counts
    print(f"{name}: {counts.cases} cases, {counts.judged} judged, {counts.refused} refused, "
          f"{counts.unspecified} unspecified; found {sorted(res.findings)} in {res.seconds:.1f}s")
    assert counts.unspecified == 0, "the default search must never report an unspecified case"
    assert counts.judged > 0, counts  # the bugs were found by running cases, not by refusing them
    # exactly the declared bugs
    extra = list(res.unexpected)
    assert not extra, f"{name}: undeclared violations " + "; ".join(res.findings[i].message for i in extra)
    # every bug the configuration isolates is found
    missed = [c for c, f in res.bugs_found.items() if f is None]
    assert not missed, f"{name}: declared bugs not found in {res.seconds:.0f}s: {missed}"
    # each counterexample of an isolated bug passes where the configuration derives from
    if ctx.origin_name is not None:
        for commit, f in res.bugs_found.items():
            if f is not None and f.origin_required:
                assert f.origin_status in PASSING, (
                    f"{name}: the {commit} counterexample {f.case_path} is {f.origin_status} on {ctx.origin_name}")


#: Cases each clean configuration is judged on: a count, not a time (the same cases under any load).
CLEAN_CASES = 300


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in WITH_BUGS])
def test_clean_configurations_report_nothing(name: str) -> None:
    impl = resolve(name)
    statuses: Counter[str] = Counter()
    for i in range(CLEAN_CASES):
        case = case_from_draw(RandomDraw((1 << 40) ^ i), impl.caps)
        judged = judge_case(case, impl)
        statuses[judged.status] += 1
        assert judged.status != "fail", f"{name}: case {i}: " + "; ".join(judged.messages)
    assert statuses["pass"] >= CLEAN_CASES // 2, statuses  # judged by running, not refused or skipped
