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

from sledfuzz.emu.impls.api import Image, Implementation, Refused, TrampRequest
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.kernel.build import default_linux_src
from sledfuzz.emu.rv64.disasm import disassemble
from sledfuzz.emu.scenario import scenario_for
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import Case
from sledfuzz.model.core_stage import CoreRefusal, core_stage
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


def side_by_side(left: bytes, right: bytes, addr: int, titles: tuple[str, str] = ("v6.12", "kernel")) -> str:
    """Two disassembly columns; ``!`` marks rows whose raw bytes differ."""
    a, b = disassemble(left, addr), disassemble(right, addr)
    width = 52
    rows = [f"  {titles[0]:<{width}} | {titles[1]}"]
    for i in range(max(len(a), len(b))):
        la = f"{a[i].addr & 0xFFFF:04x} {a[i].raw.hex():<8} {a[i].text}" if i < len(a) else ""
        lb = f"{b[i].addr & 0xFFFF:04x} {b[i].raw.hex():<8} {b[i].text}" if i < len(b) else ""
        mark = "!" if i >= len(a) or i >= len(b) or a[i].raw != b[i].raw or a[i].addr != b[i].addr else " "
        rows.append(f"{mark} {la:<{width}} | {lb}")
    return "\n".join(rows)


def _describe(x: int | Image | Refused) -> str:
    if isinstance(x, Refused):
        return f"Refused(errno={x.errno}, {x.reason!r})"
    if isinstance(x, Image):
        return (f"Image(used_len={x.used_len}, len={len(x.code)}, ip_after_call={x.ip_after_call and hex(x.ip_after_call)}, "
                f"ip_epilogue={x.ip_epilogue and hex(x.ip_epilogue)})")
    return str(x)


def _key(x: int | Image | Refused) -> object:
    if isinstance(x, Refused):
        return ("refused", x.errno)
    if isinstance(x, Image):
        return ("image", x.code, x.used_len, x.ip_after_call, x.ip_epilogue)
    return ("size", x)


def _mismatch(what: str, req: TrampRequest, case: Case, era: int | Image | Refused, ker: int | Image | Refused,
              addr: int) -> str:
    msg = [f"{what}: v6.12 and the kernel JIT differ", f"  v6.12:  {_describe(era)}", f"  kernel: {_describe(ker)}",
           f"  request: {req}", f"  case: {case.to_dict()}"]
    if isinstance(era, Image) and isinstance(ker, Image):
        n = max(era.used_len, ker.used_len)
        msg.append(side_by_side(era.code[:n], ker.code[:n], addr))
    return "\n".join(msg)


def _compare(case: Case, era: Implementation, ker: Implementation, stats: Counter[str]) -> None:
    core = core_stage(case)
    if isinstance(core, CoreRefusal):
        stats["core_refused"] += 1
        return
    req = scenario_for().request(case, core.order, core.flags)
    image = case.layout.image
    stats["requests"] += 1
    stats[case.target] += 1
    se, sk = era.jit.size(req), ker.jit.size(req)
    assert _key(se) == _key(sk), _mismatch("size", req, case, se, sk, image)
    if isinstance(se, Refused):
        stats[f"refused errno {se.errno}"] += 1
        return
    assert isinstance(sk, int)
    for size, what in ((se, "emit"), (se - 24, "emit into a too-small image")):
        if size < 16:
            continue
        ee, ek = era.jit.emit(req, image, size), ker.jit.emit(req, image, size)
        assert _key(ee) == _key(ek), _mismatch(what, req, case, ee, ek, image)
        if what == "emit":
            stats["images" if isinstance(ee, Image) else f"emit refused errno {ee.errno}"] += 1
    lay = case.layout
    if case.target == "bpf_prog":
        pe = era.jit.text_poke(lay.func, bytes.fromhex("1300000013000000"), "nop", "call", 0, image)
        pk = ker.jit.text_poke(lay.func, bytes.fromhex("1300000013000000"), "nop", "call", 0, image)
        assert pe == pk, f"bpf_arch_text_poke NOP->CALL at {lay.func:#x} to {image:#x}: v6.12 {pe}, kernel {pk}"
        stats["pokes"] += 1
    elif case.target == "kernel_function":
        sled = era.caps.sled_for("kernel_function", case.sled)
        assert isinstance(sled, SledLayout)
        pe_b = era.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        pk_b = ker.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        assert pe_b == pk_b, f"ftrace patch {sled.key} at {lay.func:#x} to {image:#x}:\n" + side_by_side(
            pe_b, pk_b, lay.func - sled.pre_bytes)
        stats["ftrace patches"] += 1


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
        _compare(case, era, ker, stats)

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
