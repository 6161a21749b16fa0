"""Differential check of the ``v7.2`` and ``v7.3`` eras against the real 7.2 / 7.3 JITs, byte for byte.

Like ``test_kernel_v612_identity.py``: requests come from the fuzzing strategies for the era's
capabilities (which draw fsession programs, with and without a session cookie, and
``BPF_TRAMP_F_TAIL_CALL_CTX`` flag sets), built by the scenario's own request builder after
``core_stage``. Per request: the size (or refusal), the image emitted at the sized length (bytes,
used length, the absent ``ip_after_call``/``ip_epilogue``, and the per-program skips: link kind,
nop, target), the image emitted 24 bytes too small, the detach poke (``arch_bpf_trampoline_skip``)
of the first skip, the BPF prologue NOP->CALL poke and the ftrace patch words. The trees are the
Debian ones scripts/setup.sh fetches; the test keys on the version each declares.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from sledfuzz.emu.impls.api import TrampRequest
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
from sledfuzz.emu.kernel.impl import factory, tree_report
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.case import Case
from sledfuzz.model.contract import F_TAIL_CALL_CTX
from sledfuzz.model.core_stage import derive_flags
from tests.support.identity import compare
from tests.support.tools import missing

REQUESTS = 2000
TREES = ("7.2", "7.3")

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def _count_7x(stats: Counter[str]) -> Callable[[TrampRequest], None]:
    """What the 7.x requests must reach: fsession programs, session cookies, TAIL_CALL_CTX."""
    def count(req: TrampRequest) -> None:
        if any(link.kind == "fsession" for link in req.links):
            stats["fsession"] += 1
            if any(link.session_cookie for link in req.links):
                stats["session cookies"] += 1
        if req.flags & F_TAIL_CALL_CTX:
            stats["tail_call_ctx"] += 1
    return count


@pytest.mark.parametrize("version", TREES)
def test_v7x_era_emits_the_kernels_bytes_for_strategy_requests(version: str) -> None:
    try:
        src = str(resolve_tree(f"debian:{version}", download=False))
    except DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")
    ker = factory(src, name=f"kernel-{version}")
    assert tree_report(src).build.version.startswith(version + ".")
    era = resolve(f"v{version}")
    stats: Counter[str] = Counter()
    count = _count_7x(stats)

    @settings(max_examples=int(REQUESTS * 1.3), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(search_cases(era.caps))
    def check(case: Case) -> None:
        compare(case, era, ker, stats, skips=True, on_request=count)
        if case.target == "bpf_prog" and case.flags is None:
            # the flag set the core gives a tail-call-reachable BPF program (7.3 acts on it)
            compare(replace(case, flags=derive_flags(case) | F_TAIL_CALL_CTX), era, ker, stats, skips=True,
                    counted_as="tail-call variants", on_request=count)

    start = time.perf_counter()
    check()
    elapsed = time.perf_counter() - start
    print(f"\nv{version} vs {ker.description}: {stats['requests']} requests compared in {elapsed:.1f} s; "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k != "requests"))
    assert stats["requests"] >= REQUESTS, stats  # strategy requests, not counting the tail-call variants
    for target in ("kernel_function", "bpf_prog", "struct_ops"):
        assert stats[target] >= REQUESTS // 10, stats
    assert stats["fsession"] >= REQUESTS // 10 and stats["session cookies"] >= REQUESTS // 20, stats
    assert stats["tail_call_ctx"] >= REQUESTS // 5 and stats["skip pokes"] >= REQUESTS // 2, stats


@pytest.mark.parametrize("version", TREES)
def test_v7x_caps_equal_the_kernels(version: str) -> None:
    """The kernel implementation of each tree is judged exactly as its era (interface facts)."""
    try:
        src = str(resolve_tree(f"debian:{version}", download=False))
    except DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")
    ker = factory(src, name="kernel")
    assert ker.caps == replace(resolve(f"v{version}").caps, name="kernel")
