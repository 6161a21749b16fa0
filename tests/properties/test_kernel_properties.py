"""Every invariant against the real JIT of each Debian tree: ``judge(case, kernel)`` on generated cases.

The cases are what a fuzzing campaign searches with (``search_cases`` for the kernel
implementation's own capabilities, which the interface facts of the tree decide); generation is
derandomized, so a run is reproducible. A ``fail`` verdict is a finding in the tree (or in the
model): the assertion prints the verdict and the case JSON, and hypothesis shrinks it first. A tree
that does not build fails the test (it is a regression of the adapter), it is not skipped.

The trees are those scripts/setup.sh fetches (``debian:6.12``, ``debian:7.2``, ``debian:7.3``); the
test keys on the version each tree declares in its Makefile, never on a point release.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
from sledfuzz.emu.kernel.impl import factory, tree_report
from sledfuzz.fuzz.oracle import judge
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.case import Case
from tests.support.tools import missing

CASES = 1000
TREES = ("6.12", "7.2", "7.3")

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.mark.parametrize("version", TREES)
def test_every_invariant_holds_on_the_trees_jit(version: str) -> None:
    try:
        src = str(resolve_tree(f"debian:{version}", download=False))
    except DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")
    ker = factory(src, name=f"kernel-{version}")
    report = tree_report(src)
    assert report.build.version.startswith(version + "."), report.build.version
    counts: Counter[str] = Counter()

    @settings(max_examples=int(CASES * 1.2), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(search_cases(ker.caps))
    def check(case: Case) -> None:
        verdict = judge(case, ker)
        counts[verdict.status] += 1
        counts[f"{verdict.status} {case.target}"] += 1
        assert verdict.status != "fail", (
            f"{ker.description}: {verdict.summary}\n"
            + "\n".join(f"  {v}" for v in verdict.violations)
            + f"\n  case: {json.dumps(case.to_dict(), sort_keys=True)}"
        )

    start = time.perf_counter()
    check()
    elapsed = time.perf_counter() - start
    judged = sum(counts[s] for s in ("pass", "fail", "refused", "unspecified", "invalid"))
    print(f"\n{ker.description}: {judged} cases in {elapsed:.1f} s: judged (pass) {counts['pass']}, "
          f"refused {counts['refused']}, unspecified {counts['unspecified']}, invalid {counts['invalid']}; "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if " " in k))
    assert judged >= CASES, counts
    assert counts["pass"] >= CASES // 2, counts  # most cases must actually run and be judged
