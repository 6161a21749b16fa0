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
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from sledfuzz.emu.impls.api import Image, Implementation, Refused
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
from sledfuzz.emu.kernel.impl import factory, tree_report
from sledfuzz.emu.scenario import scenario_for
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import Case
from sledfuzz.model.contract import F_TAIL_CALL_CTX
from sledfuzz.model.core_stage import CoreRefusal, core_stage, derive_flags
from tests.properties.test_kernel_v612_identity import _describe, _key, side_by_side
from tests.support.tools import missing

REQUESTS = 2000
TREES = ("7.2", "7.3")

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def _full_key(x: int | Image | Refused) -> object:
    return (_key(x), x.skips) if isinstance(x, Image) else _key(x)


def _compare(case: Case, era: Implementation, ker: Implementation, stats: Counter[str], *,
             variant: bool = False) -> None:
    core = core_stage(case)
    if isinstance(core, CoreRefusal):
        stats["core_refused"] += 1
        return
    req = scenario_for().request(case, core.order, core.flags)
    image = case.layout.image
    stats["tail-call variants" if variant else "requests"] += 1
    stats[case.target] += 1
    if any(link.kind == "fsession" for link in req.links):
        stats["fsession"] += 1
        if any(link.session_cookie for link in req.links):
            stats["session cookies"] += 1
    if req.flags & F_TAIL_CALL_CTX:
        stats["tail_call_ctx"] += 1

    def fail(what: str, e: int | Image | Refused, k: int | Image | Refused) -> str:
        msg = [f"{what}: {era.name} and {ker.description} differ", f"  era:    {_describe(e)}",
               f"  kernel: {_describe(k)}", f"  request: {req}", f"  case: {case.to_dict()}"]
        if isinstance(e, Image) and isinstance(k, Image):
            msg.append(f"  skips: era {e.skips}, kernel {k.skips}")
            n = max(e.used_len, k.used_len)
            msg.append(side_by_side(e.code[:n], k.code[:n], image, (era.name, "kernel")))
        return "\n".join(msg)

    se, sk = era.jit.size(req), ker.jit.size(req)
    assert _key(se) == _key(sk), fail("size", se, sk)
    if isinstance(se, Refused):
        stats[f"refused errno {se.errno}"] += 1
        return
    assert isinstance(sk, int)
    for size, what in ((se, "emit"), (se - 24, "emit into a too-small image")):
        if size < 16:
            continue
        ee, ek = era.jit.emit(req, image, size), ker.jit.emit(req, image, size)
        assert _full_key(ee) == _full_key(ek), fail(what, ee, ek)
        if what == "emit":
            stats["images" if isinstance(ee, Image) else f"emit refused errno {ee.errno}"] += 1
            if isinstance(ee, Image) and ee.skips:
                _, nop, target = ee.skips[0]
                site = ee.code[nop - image:nop - image + 8]
                pe = era.jit.tramp_skip(nop, site, target)  # type: ignore[attr-defined]
                pk = ker.jit.tramp_skip(nop, site, target)  # type: ignore[attr-defined]
                assert pe == pk, f"arch_bpf_trampoline_skip at {nop:#x} to {target:#x}: era {pe}, kernel {pk}"
                stats["skip pokes"] += 1
    lay = case.layout
    if case.target == "bpf_prog":
        nops = bytes.fromhex("1300000013000000")
        pe = era.jit.text_poke(lay.func, nops, "nop", "call", 0, image)
        pk = ker.jit.text_poke(lay.func, nops, "nop", "call", 0, image)
        assert pe == pk, f"bpf_arch_text_poke NOP->CALL at {lay.func:#x} to {image:#x}: era {pe}, kernel {pk}"
        stats["pokes"] += 1
    elif case.target == "kernel_function":
        sled = era.caps.sled_for("kernel_function", case.sled)
        assert isinstance(sled, SledLayout)
        pe_b = era.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        pk_b = ker.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        assert pe_b == pk_b, f"ftrace patch {sled.key} at {lay.func:#x} to {image:#x}:\n" + side_by_side(
            pe_b, pk_b, lay.func - sled.pre_bytes, (era.name, "kernel"))
        stats["ftrace patches"] += 1


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

    @settings(max_examples=int(REQUESTS * 1.15), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(search_cases(era.caps))
    def check(case: Case) -> None:
        _compare(case, era, ker, stats)
        if case.target == "bpf_prog" and case.flags is None:
            # the flag set the core gives a tail-call-reachable BPF program (7.3 acts on it)
            _compare(replace(case, flags=derive_flags(case) | F_TAIL_CALL_CTX), era, ker, stats,
                     variant=True)

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
