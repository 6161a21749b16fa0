"""Sled patchers: bytes against SEMANTICS 1.1, round trips, per-mechanism verification, reach, I-TORN."""

from __future__ import annotations

import pytest

from sledfuzz.emu.impls.patchers import Concurrency, FtracePatcher, ftrace_split
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.impls.torn import torn_states, torn_violations
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.contract import EFAULT, EINVAL, ERANGE

FUNC = 0xFFFFFFFF80200000
CALLER = 0xFFFFFFFF80200800  # ftrace_caller, within the v6.16 auipc reach
TRAMP = 0xFFFFFFFF80400000
T0_C = SledLayout("kernel_function", 4, 0, 2, "t0")
T0_W = SledLayout("kernel_function", 2, 0, 4, "t0")
OPS_C = SledLayout("kernel_function", 8, 4, 2, "t0", call_ops=True)
OPS_W = SledLayout("kernel_function", 4, 2, 4, "t0", call_ops=True)
DETOUR_C = SledLayout("kernel_function", 8, 0, 2, "ra_detour")
BPF_T0 = SledLayout("bpf_prog", 2, 0, 4, "t0")
BPF_DETOUR = SledLayout("bpf_prog", 4, 0, 4, "ra_detour")


def w(*words: int) -> bytes:
    return b"".join(x.to_bytes(4, "little") for x in words)


def ftrace(name: str) -> FtracePatcher:
    p = resolve(name).patcher.ftrace  # type: ignore[attr-defined]
    assert isinstance(p, FtracePatcher)
    return p


# -- SEMANTICS 1.1 words and Björn's example ------------------------------------------------


def test_bjorn_example_words() -> None:
    # bpf_fentry_test1 patched to auipc t0,-150208512 (0xf70c0297); jalr t0,-336(t0) (0xeb0282e7)
    off = -0x8F40150
    p = ftrace("v6.6")
    site = p.patch(T0_C, FUNC, FUNC + off, CALLER)
    assert site == w(0xF70C0297, 0xEB0282E7)


def test_compiler_and_init_sleds() -> None:
    p = ftrace("v6.6")
    assert p.compiler_sled(T0_C) == bytes.fromhex("0100") * 4
    assert p.compiler_sled(T0_W) == w(0x13, 0x13)
    # ftrace_init_nop writes NOP4, NOP4 even over 4 c.nop
    assert p.init_sled(T0_C, FUNC, CALLER) == w(0x13, 0x13)
    assert p.unpatch(T0_C, FUNC, CALLER) == w(0x13, 0x13)


def test_t0_patch_words_zero_offset_bases() -> None:
    p = ftrace("v6.6")
    assert p.patch(T0_W, FUNC, FUNC, CALLER) == w(0x00000297, 0x000282E7)  # auipc t0,0; jalr t0,0(t0)


def test_detour_words() -> None:
    p = ftrace("ftrace=v6.2,tramp=v6.3")
    site = p.patch(DETOUR_C, FUNC, FUNC + 4, CALLER)  # offset 0 from the auipc at ip+4
    assert site == w(0xFE113C23, 0x00000097, 0x000080E7, 0xFF813083)
    assert p.init_sled(DETOUR_C, FUNC, CALLER) == w(0x13, 0x13, 0x13, 0x13)
    assert p.entry_state(DETOUR_C, FUNC).link_value == FUNC + 12
    assert p.entry_state(DETOUR_C, FUNC).body == FUNC + 16


def test_atomic_init_patch_literal() -> None:
    p = ftrace("v6.19")
    nop_ops, ops = 0xFFFFFFFF81200000, 0xFFFFFFFF81300000
    init = p.init_sled(OPS_C, FUNC, CALLER, nop_ops=nop_ops)
    # literal at func-8, auipc t0 aimed at ftrace_caller (0x800 from func: hi 1), nop
    assert init == nop_ops.to_bytes(8, "little") + w(0x00001297, 0x13)
    far = p.patch(OPS_C, FUNC, TRAMP, CALLER, ops=ops)
    # trampoline out of +-2 KiB: the jalr goes to ftrace_caller (lo = -0x800), the literal holds ops
    assert far == ops.to_bytes(8, "little") + w(0x00001297, 0x800282E7)
    near = p.patch(OPS_W, FUNC, CALLER + 0x10, CALLER, ops=ops)
    assert near[8:12] == init[8:12]  # the auipc never changes
    assert near[12:16] == w(0x810282E7)  # jalr t0, -0x7f0(t0)
    assert p.unpatch(OPS_C, FUNC, CALLER, nop_ops=nop_ops) == init


@pytest.mark.parametrize("name", ["v6.6", "v6.12", "v6.19", "ftrace=v6.2,tramp=v6.3"])
def test_round_trip_is_byte_exact(name: str) -> None:
    impl = resolve(name)
    for sled in impl.caps.sleds_for("kernel_function") + impl.caps.sleds_for("bpf_prog"):
        init = impl.patcher.init_sled(sled, FUNC, CALLER)
        patched = impl.patcher.patch(sled, FUNC, TRAMP, CALLER)
        assert patched != init
        assert impl.patcher.unpatch(sled, FUNC, CALLER) == init


# -- verification per mechanism ------------------------------------------------------------


def test_ftrace_modify_call_einval_and_make_call_no_check() -> None:
    p = ftrace("v6.12")
    site = p.patch(T0_W, FUNC, TRAMP, CALLER)
    ok = p.modify_call(T0_W, FUNC, site, TRAMP, TRAMP + 0x1000, CALLER)
    assert ok.rc == 0 and ok.site == p.patch(T0_W, FUNC, TRAMP + 0x1000, CALLER)
    bad = p.modify_call(T0_W, FUNC, site, TRAMP + 0x40, TRAMP + 0x1000, CALLER)
    assert bad.rc == EINVAL and bad.site == site
    garbage = b"\xff" * 8
    assert p.make_call(T0_W, FUNC, garbage, TRAMP, CALLER).rc == 0
    assert p.make_nop(T0_W, FUNC, garbage, CALLER).site == w(0x13, 0x13)


def test_bpf_text_poke_efault_and_encodings() -> None:
    jit = resolve("v6.19").jit
    ip = 0xFFFFFFFF80300000
    nops = w(0x13, 0x13)
    call = jit.text_poke(ip, nops, "nop", "call", 0, ip)
    assert call.rc == 0 and call.site == w(0x00000317, 0x000302E7)  # auipc t1,0; jalr t0,0(t1)
    jump = jit.text_poke(ip, call.site, "call", "jump", ip, ip)
    assert jump.rc == 0 and jump.site == w(0x00000317, 0x00030067)  # auipc t1,0; jalr zero,0(t1)
    assert jit.text_poke(ip, jump.site, "jump", "nop", ip, 0).site == nops
    wrong = jit.text_poke(ip, call.site, "call", "nop", ip + 4, 0)
    assert wrong.rc == EFAULT and wrong.site == call.site
    # before ae4a3160d19c one poke type serves both sides: CALL -> JUMP cannot be expressed
    assert resolve("v6.12").jit.text_poke(ip, call.site, "call", "jump", ip, ip).rc == EFAULT


def test_v63_bpf_poke_is_the_16_byte_detour() -> None:
    impl = resolve("v6.3")
    ip = 0xFFFFFFFF80300000
    site = impl.patcher.patch(BPF_DETOUR, ip, ip + 4, CALLER)
    assert site == w(0xFE113C23, 0x00000317, 0x000300E7, 0xFF813083)  # jalr ra, 0(t1)


@pytest.mark.parametrize("name", ["v6.6", "v6.19"])
def test_reach_limit_erange(name: str) -> None:
    jit = resolve(name).jit
    ip = 0xFFFFFFFF00000000
    nops = w(0x13, 0x13)
    edge = (1 << 31) - (1 << 11)
    assert jit.text_poke(ip, nops, "nop", "call", 0, ip + edge - 1).rc == 0
    assert jit.text_poke(ip, nops, "nop", "call", 0, ip + edge).rc == ERANGE
    low = -(1 << 31) - (1 << 11)
    assert jit.text_poke(ip, nops, "nop", "jump", 0, ip + low).rc == 0
    assert jit.text_poke(ip, nops, "nop", "jump", 0, ip + low - 1).rc == ERANGE


def test_ftrace_split_truncates_without_check() -> None:
    # ftrace's own split does no range check: 2^31 - 2^11 wraps to a negative upper part
    hi, lo = ftrace_split((1 << 31) - (1 << 11))
    assert hi == 0x80000 and lo == -0x800


# -- I-TORN ----------------------------------------------------------------------------------


def test_torn_v616_never_off_target() -> None:
    p = ftrace("v6.16")
    for old, new in ((None, TRAMP), (TRAMP, TRAMP + 0x3000), (TRAMP, None), (None, CALLER + 0x100)):
        states = torn_states(p, OPS_C, FUNC, old, new, CALLER)
        assert states, "the atomic scheme has intermediate states (literal and jalr)"
        assert all(s.reachable for s in states)
        assert torn_violations(states) == ()


def test_torn_v66_stop_machine_none_reachable() -> None:
    p = ftrace("v6.6")
    assert p.concurrency == Concurrency(stop_machine=True, preemptible=False)
    states = torn_states(p, T0_W, FUNC, TRAMP, TRAMP + 0x3AB0, CALLER)
    assert states and not any(s.reachable for s in states)
    assert any(s.landed not in s.allowed for s in states)  # they would be torn, were they reachable


def test_torn_v66_pre_8547649981e6_reachable_off_target() -> None:
    p = ftrace("v6.6-pre-8547649981e6")
    states = torn_states(p, T0_W, FUNC, TRAMP, TRAMP + 0x3AB0, CALLER)
    bad = torn_violations(states)
    assert bad
    # old auipc (hi 0x200 of +0x200000) with the new jalr (lo -0x550 of +0x203ab0): neither target
    assert any(s.landed == TRAMP - 0x550 for s in bad)
    # enabling from nops: resuming at the new jalr with t0 never set
    assert any(s.landed is None for s in torn_violations(torn_states(p, T0_W, FUNC, None, TRAMP, CALLER)))
