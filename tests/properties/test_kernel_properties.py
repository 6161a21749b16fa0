"""Every invariant against the real JIT of the tree: ``judge(case, "kernel")`` on generated cases.

The cases are what a fuzzing campaign searches with (``search_cases`` for the kernel
implementation's own capabilities, which the feature probe derives); generation is derandomized,
so a run is reproducible. A ``fail`` verdict is a finding in the tree (or in the model): the
assertion prints the verdict and the case JSON, and hypothesis shrinks it first.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from emu.impls.registry import resolve
from emu.kernel.build import default_linux_src
from fuzz.oracle import judge
from fuzz.strategies import search_cases
from model.case import Case

CASES = 1000


def _linux_src() -> Path | None:
    env = os.environ.get("SLEDFUZZ_LINUX_SRC")
    return Path(env) if env else default_linux_src()


pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(
        _linux_src() is None,
        reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH",
    ),
]


def test_every_invariant_holds_on_the_trees_jit() -> None:
    try:
        ker = resolve("kernel")
    except Exception as exc:  # a tree that does not build is reported by tests/unit/test_kernel_impl.py
        pytest.skip(f"kernel implementation unavailable: {exc}")
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
