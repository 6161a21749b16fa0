"""Differential check of our era model: ``v6.12`` vs the real JIT of the tree, byte for byte.

Requests come from the fuzzing strategies (``search_cases`` = ``cases`` + ``fuzz_cases`` over
kernel_function / bpf_prog / struct_ops, for the v6.12 capabilities), through the scenario's own
request builder (``Scenario.request`` after ``core_stage``), so the JIT sees exactly what a fuzzing
run hands it. For each request: the size (or refusal), the image emitted at the sized length
(bytes, used length, ip_after_call, ip_epilogue, or refusal), the image emitted into a page 24
bytes too small, the BPF prologue NOP->CALL poke and the ftrace patch words. Any difference is
shown as a side-by-side disassembly. Generation is derandomized: the same requests every run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.kernel.build import default_linux_src
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.case import Case
from tests.support.identity import compare, side_by_side
from tests.support.tools import skip_if_missing

REQUESTS = 2000


def _linux_src() -> Path | None:
    env = os.environ.get("SLEDFUZZ_LINUX_SRC")
    return Path(env) if env else default_linux_src()


pytestmark = pytest.mark.kernel
needs_tree = skip_if_missing(
    _linux_src() is None,
    reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH",
)


@pytest.mark.slow
@needs_tree
def test_v612_era_emits_the_kernels_bytes_for_strategy_requests() -> None:
    ker = resolve("kernel")  # the tree is there (needs_tree): one that does not build is a failure
    era = resolve("v6.12")
    stats: Counter[str] = Counter()

    @settings(max_examples=int(REQUESTS * 1.3), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(search_cases(era.caps))
    def check(case: Case) -> None:
        compare(case, era, ker, stats, skips=False)

    start = time.perf_counter()
    check()
    elapsed = time.perf_counter() - start
    print(f"\nv6.12 vs {ker.description}: {stats['requests']} requests compared in {elapsed:.1f} s; "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k != "requests"))
    assert stats["requests"] >= REQUESTS, stats
    for target in ("kernel_function", "bpf_prog", "struct_ops"):
        assert stats[target] >= REQUESTS // 10, stats


def test_side_by_side_marks_the_differing_instruction() -> None:
    """The report helper itself: one differing word, one marked row (capstone's text)."""
    addi = (0x00000013).to_bytes(4, "little")  # nop
    ret = (0x00008067).to_bytes(4, "little")  # ret
    text = side_by_side(addi + ret, addi + addi, 0x1000)
    rows = text.splitlines()[1:]
    assert [r[0] for r in rows] == [" ", "!"]
    assert "ret" in rows[1] and rows[1].rstrip().endswith("nop")
