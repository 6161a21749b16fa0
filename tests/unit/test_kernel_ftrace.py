"""ftrace since v6.16 as the kernel does it: the era's patcher and the tree's own (7.3) patcher.

Three disagreements between sledfuzz and ``arch/riscv/kernel/ftrace.c`` (issue 11), each pinned
here with words assembled by hand from the ISA (auipc/jalr fields), not by the code under test:

1. ``ftrace_modify_call`` compares only the auipc word and always points the jalr at FTRACE_ADDR;
2. ``ftrace_make_call`` tests the jalr's reach from ``&ftrace_caller`` while encoding against the
   auipc rounded for ftrace_caller, so a target just across an x.800 edge is mis-encoded;
3. ``ftrace_make_nop`` writes the literal before the jalr (and ``ftrace_make_call`` too).

Each of these failed on the patcher before the fix (main at 096715c). The tree tests (marked
``kernel``) check that the 7.3 tree's patcher, built from its ftrace.h macros and ftrace.c facts,
writes the v6.19 era's bytes.
"""

from __future__ import annotations

import random

import pytest

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.impls.torn import _states
from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
from sledfuzz.emu.kernel.ftrace import FtraceFacts, KernelAtomicPatcher
from sledfuzz.emu.kernel.impl import factory
from sledfuzz.model.contract import EINVAL
from tests.support.tools import missing

T0 = 5
FUNC = 0xFFFFFFFF80200000
NOP = 0x00000013


def _auipc(rd: int, imm20: int) -> bytes:
    return (((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17).to_bytes(4, "little")


def _jalr(rd: int, rs1: int, imm12: int) -> bytes:
    return (((imm12 & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67).to_bytes(4, "little")


def _era() -> tuple[object, object]:
    era = resolve("v6.19")
    sled = era.caps.sleds_for("kernel_function")[0]
    return era.patcher.ftrace, sled  # type: ignore[attr-defined]


def test_modify_call_checks_only_the_auipc_and_re_points_the_jalr_at_ftrace_caller() -> None:
    ft, sled = _era()
    fc, image = FUNC + 0x40000, FUNC + 0x900000  # image far from ftrace_caller: the jalr goes to fc
    site = ft.patch(sled, FUNC, image, fc, ops=0x1234)  # type: ignore[attr-defined]
    auipc_fc = _auipc(T0, 0x40)
    assert site[8:16] == auipc_fc + _jalr(T0, T0, 0)
    # a wrong old target is not noticed (the target is never compared) ...
    r = ft.modify_call(sled, FUNC, site, fc + 0x10, image, fc, ops=0x5678)  # type: ignore[attr-defined]
    assert r.rc == 0 and r.site == (0x5678).to_bytes(8, "little") + auipc_fc + _jalr(T0, T0, 0)
    # ... even one a direct jalr could reach: the new jalr still goes to FTRACE_ADDR
    r = ft.modify_call(sled, FUNC, site, image, fc + 0x10, fc)  # type: ignore[attr-defined]
    assert r.rc == 0 and r.site[12:16] == _jalr(T0, T0, 0)
    # an auipc that is not ftrace_caller's is -EINVAL, and the site is left alone
    bad = site[:8] + _auipc(T0, 0x41) + site[12:]
    r = ft.modify_call(sled, FUNC, bad, image, image, fc)  # type: ignore[attr-defined]
    assert r.rc == EINVAL and r.site == bad


def test_make_call_reach_is_measured_from_ftrace_caller_and_misencodes_across_the_edge() -> None:
    ft, sled = _era()
    fc = FUNC + 0x407F0  # fc - func = 0x407f0: bit 11 clear, the init auipc is not rounded
    near = fc + 0x10  # within reach of fc, and target - func = 0x40800 has bit 11 set
    site = ft.patch(sled, FUNC, near, fc)  # type: ignore[attr-defined]
    assert site[8:12] == _auipc(T0, 0x40)
    assert site[12:16] == _jalr(T0, T0, -0x800)  # low 12 bits of 0x40800: lands at func+0x3f800, not near
    far = fc + 0x800  # out of the kernel's reach test: through ftrace_caller
    assert ft.patch(sled, FUNC, far, fc)[12:16] == _jalr(T0, T0, 0x7F0)  # type: ignore[attr-defined]


def test_make_nop_and_make_call_write_the_literal_before_the_jalr() -> None:
    ft, sled = _era()
    fc, image = FUNC + 0x40000, FUNC + 0x900000
    on = ft.patch(sled, FUNC, image, fc, ops=image)  # type: ignore[attr-defined]
    off = ft.init_sled(sled, FUNC, fc, nop_ops=0)  # type: ignore[attr-defined]
    for old, new in ((on, off), (off, on)):
        states = _states(ft, old, new, sled)  # type: ignore[arg-type]
        assert len(states) == 3
        assert states[1][:8] == new[:8] and states[1][12:16] == old[12:16]  # literal first, jalr second


def _tree_patcher() -> KernelAtomicPatcher:
    try:
        src = str(resolve_tree("debian:7.3", download=False))
    except DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")
    ft = factory(src, name="kernel-7.3").patcher.ftrace  # type: ignore[attr-defined]
    assert isinstance(ft, KernelAtomicPatcher)
    return ft


@pytest.mark.kernel
def test_the_7_3_trees_facts_are_the_ones_documented() -> None:
    facts = _tree_patcher().facts
    assert facts == FtraceFacts(mcount_insn_size=4, direct_calls=True, stop_machine=False, preemptible=True,
                                literal_back=12, literal_align=8, reach_from_caller=True, modify_via_caller=True)
    assert facts.literal_addr(FUNC) == FUNC - 8 and facts.literal_addr(FUNC + 4) == FUNC - 8


@pytest.mark.kernel
def test_the_7_3_trees_patcher_writes_the_v6_19_eras_bytes() -> None:
    ker = _tree_patcher()
    era, _ = _era()
    rnd = random.Random(73)
    for sled in resolve("v6.19").caps.sleds_for("kernel_function"):
        for _ in range(2000):
            func = 0xFFFFFFFF80000000 + rnd.randrange(1 << 26) * 8
            fc = (func + rnd.randrange(-(1 << 30), 1 << 30) * 4) & ((1 << 64) - 1)
            d = rnd.choice((rnd.randrange(-0x900, 0x900), rnd.randrange(-(1 << 30), 1 << 30)))
            target = (fc + d * 2) & ((1 << 64) - 1)
            ops = rnd.randrange(1 << 64)
            assert ker.patch(sled, func, target, fc, ops=ops) == era.patch(sled, func, target, fc, ops=ops), (  # type: ignore[attr-defined]
                hex(func), hex(fc), hex(target))
            assert ker.init_sled(sled, func, fc) == era.init_sled(sled, func, fc)  # type: ignore[attr-defined]
            site = era.patch(sled, func, target, fc)  # type: ignore[attr-defined]
            for bad in (site, site[:8] + NOP.to_bytes(4, "little") + site[12:]):
                assert ker.modify_call(sled, func, bad, target, fc, fc, ops=ops) == era.modify_call(  # type: ignore[attr-defined]
                    sled, func, bad, target, fc, fc, ops=ops)
