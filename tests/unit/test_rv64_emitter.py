"""Emitter RVC choices as read from linux 6.12 arch/riscv/net/bpf_jit.h, and emit_imm lengths.

Expected words come from ``encode`` (proven against GNU as separately); the choices (which form,
how long) are restated here by hand from the kernel helpers' conditions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.emitter import Emitter
from sledfuzz.emu.rv64.offsets import ReachError
from sledfuzz.emu.rv64.regs import A0, A1, A5, FP, RA, S1, SP, T0, T1, ZERO


def c16(*halves: int) -> bytes:
    return b"".join(h.to_bytes(2, "little") for h in halves)


def w32(*words: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def emitted(fn: Callable[[Emitter], None], rvc: bool = True) -> bytes:
    e = Emitter(rvc=rvc)
    fn(e)
    return e.code


CASES: list[tuple[str, Callable[[Emitter], None], bytes]] = [
    # emit_addi: addi16sp / addi4spn / c.addi / 4-byte, in this order
    ("addi sp,sp,-16", lambda e: e.emit_addi(SP, SP, -16), c16(E.c_addi16sp(-16))),
    ("addi sp,sp,496", lambda e: e.emit_addi(SP, SP, 496), c16(E.c_addi16sp(496))),
    ("addi sp,sp,-8", lambda e: e.emit_addi(SP, SP, -8), c16(E.c_addi(SP, -8))),
    ("addi sp,sp,-528", lambda e: e.emit_addi(SP, SP, -528), w32(E.addi(SP, SP, -528))),
    ("addi sp,sp,512", lambda e: e.emit_addi(SP, SP, 512), w32(E.addi(SP, SP, 512))),
    ("addi fp,sp,32", lambda e: e.emit_addi(FP, SP, 32), c16(E.c_addi4spn(FP, 32))),
    ("addi a0,sp,1020", lambda e: e.emit_addi(A0, SP, 1020), c16(E.c_addi4spn(A0, 1020))),
    ("addi a0,sp,1024", lambda e: e.emit_addi(A0, SP, 1024), w32(E.addi(A0, SP, 1024))),
    ("addi a0,sp,-16", lambda e: e.emit_addi(A0, SP, -16), w32(E.addi(A0, SP, -16))),
    ("addi t0,sp,16", lambda e: e.emit_addi(T0, SP, 16), w32(E.addi(T0, SP, 16))),
    ("addi a0,a0,0", lambda e: e.emit_addi(A0, A0, 0), w32(E.addi(A0, A0, 0))),
    ("addi a0,a1,1", lambda e: e.emit_addi(A0, A1, 1), w32(E.addi(A0, A1, 1))),
    ("addi a0,a0,31", lambda e: e.emit_addi(A0, A0, 31), c16(E.c_addi(A0, 31))),
    ("addi a0,a0,32", lambda e: e.emit_addi(A0, A0, 32), w32(E.addi(A0, A0, 32))),
    ("addi a0,fp,-8", lambda e: e.emit_addi(A0, FP, -8), w32(E.addi(A0, FP, -8))),
    # emit_li / emit_mv / emit_add
    ("li a0,-32", lambda e: e.emit_li(A0, -32), c16(E.c_li(A0, -32))),
    ("li a6,33", lambda e: e.emit_li(16, 33), w32(E.addi(16, ZERO, 33))),
    ("li zero,1", lambda e: e.emit_li(ZERO, 1), w32(E.addi(ZERO, ZERO, 1))),
    ("mv a0,a1", lambda e: e.emit_mv(A0, A1), c16(E.c_mv(A0, A1))),
    ("mv a0,zero", lambda e: e.emit_mv(A0, ZERO), w32(E.addi(A0, ZERO, 0))),
    ("add a0,a0,t1", lambda e: e.emit_add(A0, A0, T1), c16(E.c_add(A0, T1))),
    ("add a0,a1,t1", lambda e: e.emit_add(A0, A1, T1), w32(E.add(A0, A1, T1))),
    # emit_lui
    ("lui a0,-1", lambda e: e.emit_lui(A0, -1), c16(E.c_lui(A0, -1))),
    ("lui sp,1", lambda e: e.emit_lui(SP, 1), w32(E.lui(SP, 1))),
    ("lui a0,32", lambda e: e.emit_lui(A0, 32), w32(E.lui(A0, 32))),
    ("lui a0,0x80000", lambda e: e.emit_lui(A0, 0x80000), w32(E.lui(A0, 0x80000))),
    # emit_jalr
    ("jalr ra,t1", lambda e: e.emit_jalr(RA, T1, 0), c16(E.c_jalr(T1))),
    ("jr ra", lambda e: e.emit_jalr(ZERO, RA, 0), c16(0x8082)),
    ("jr t0", lambda e: e.emit_jalr(ZERO, T0, 0), c16(E.c_jr(T0))),
    ("jalr t0,0(t1)", lambda e: e.emit_jalr(T0, T1, 0), w32(0x000302E7)),
    ("jalr zero,8(t0)", lambda e: e.emit_jalr(ZERO, T0, 8), w32(E.jalr(ZERO, T0, 8))),
    # loads and stores (kernel argument order: ld rd,off,rs1 / sd rs1,off,rs2)
    ("ld ra,8(sp)", lambda e: e.emit_ld(RA, 8, SP), c16(E.c_ldsp(RA, 8))),
    ("ld ra,504(sp)", lambda e: e.emit_ld(RA, 504, SP), c16(E.c_ldsp(RA, 504))),
    ("ld ra,512(sp)", lambda e: e.emit_ld(RA, 512, SP), w32(E.ld(RA, SP, 512))),
    ("ld ra,-8(sp)", lambda e: e.emit_ld(RA, -8, SP), w32(0xFF813083)),
    ("ld a0,248(a1)", lambda e: e.emit_ld(A0, 248, A1), c16(E.c_ld(A0, A1, 248))),
    ("ld a0,256(a1)", lambda e: e.emit_ld(A0, 256, A1), w32(E.ld(A0, A1, 256))),
    ("ld a0,4(a1)", lambda e: e.emit_ld(A0, 4, A1), w32(E.ld(A0, A1, 4))),
    ("ld t1,-8(fp)", lambda e: e.emit_ld(T1, -8, FP), w32(E.ld(T1, FP, -8))),
    ("sd zero,8(sp)", lambda e: e.emit_sd(SP, 8, ZERO), c16(E.c_sdsp(ZERO, 8))),
    ("sd ra,-8(sp)", lambda e: e.emit_sd(SP, -8, RA), w32(0xFE113C23)),
    ("sd a5,16(fp)", lambda e: e.emit_sd(FP, 16, A5), c16(E.c_sd(A5, FP, 16))),
    ("sd s1,-8(fp)", lambda e: e.emit_sd(FP, -8, S1), w32(E.sd(S1, FP, -8))),
    ("sd t1,8(fp)", lambda e: e.emit_sd(FP, 8, T1), w32(E.sd(T1, FP, 8))),
    ("lw a0,252(sp)", lambda e: e.emit_lw(A0, 252, SP), c16(E.c_lwsp(A0, 252))),
    ("lw a0,124(a1)", lambda e: e.emit_lw(A0, 124, A1), c16(E.c_lw(A0, A1, 124))),
    ("lw a0,128(a1)", lambda e: e.emit_lw(A0, 128, A1), w32(E.lw(A0, A1, 128))),
    ("sw zero,0(sp)", lambda e: e.emit_sw(SP, 0, ZERO), c16(E.c_swsp(ZERO, 0))),
    ("sw a0,4(a1)", lambda e: e.emit_sw(A1, 4, A0), c16(E.c_sw(A0, A1, 4))),
    # ALU helpers
    ("slli a0,a0,63", lambda e: e.emit_slli(A0, A0, 63), c16(E.c_slli(A0, 63))),
    ("slli t1,t1,12", lambda e: e.emit_slli(T1, T1, 12), c16(E.c_slli(T1, 12))),
    ("slli a0,a0,0", lambda e: e.emit_slli(A0, A0, 0), w32(E.slli(A0, A0, 0))),
    ("srli t1,t1,1", lambda e: e.emit_srli(T1, T1, 1), w32(E.srli(T1, T1, 1))),
    ("srai a0,a0,56", lambda e: e.emit_srai(A0, A0, 56), c16(E.c_srai(A0, 56))),
    ("andi a0,a0,0", lambda e: e.emit_andi(A0, A0, 0), c16(E.c_andi(A0, 0))),
    ("andi a0,a0,255", lambda e: e.emit_andi(A0, A0, 255), w32(E.andi(A0, A0, 255))),
    ("sub a0,a0,a1", lambda e: e.emit_sub(A0, A0, A1), c16(E.c_sub(A0, A1))),
    ("sub a0,a0,t1", lambda e: e.emit_sub(A0, A0, T1), w32(E.sub(A0, A0, T1))),
    ("or fp,fp,a5", lambda e: e.emit_or(FP, FP, A5), c16(E.c_or(FP, A5))),
    ("and a0,a1,a0", lambda e: e.emit_and(A0, A1, A0), w32(E.and_(A0, A1, A0))),
    ("xor a0,a0,a1", lambda e: e.emit_xor(A0, A0, A1), c16(E.c_xor(A0, A1))),
    ("subw a0,a0,a1", lambda e: e.emit_subw(A0, A0, A1), c16(E.c_subw(A0, A1))),
    ("addiw t1,t1,-32", lambda e: e.emit_addiw(T1, T1, -32), c16(E.c_addiw(T1, -32))),
    ("addiw a0,a1,0", lambda e: e.emit_addiw(A0, A1, 0), w32(E.addiw(A0, A1, 0))),
    # sign/zero extension without Zbb/Zba
    ("sext.w a0,a0", lambda e: e.emit_sextw(A0, A0), c16(E.c_addiw(A0, 0))),
    ("sext.w a0,a5", lambda e: e.emit_sextw(A0, A5), w32(E.addiw(A0, A5, 0))),
    ("sext.b a0,a5", lambda e: e.emit_sextb(A0, A5), w32(E.slli(A0, A5, 56)) + c16(E.c_srai(A0, 56))),
    ("sext.h a0,a0", lambda e: e.emit_sexth(A0, A0), c16(E.c_slli(A0, 48), E.c_srai(A0, 48))),
    ("zext.h t1,t1", lambda e: e.emit_zexth(T1, T1), c16(E.c_slli(T1, 48)) + w32(E.srli(T1, T1, 48))),
    ("zext.w a0,a0", lambda e: e.emit_zextw(A0, A0), c16(E.c_slli(A0, 32), E.c_srli(A0, 32))),
    # rv_nop is never compressed
    ("nop", lambda e: e.emit_nop(), w32(0x13)),
]


@pytest.mark.parametrize(("fn", "want"), [(f, w) for _, f, w in CASES], ids=[n for n, _, _ in CASES])
def test_rvc_choice_matches_kernel_helper(fn: Callable[[Emitter], None], want: bytes) -> None:
    assert emitted(fn).hex() == want.hex()


@pytest.mark.parametrize("fn", [f for _, f, _ in CASES], ids=[n for n, _, _ in CASES])
def test_rvc_off_never_compresses(fn: Callable[[Emitter], None]) -> None:
    code = emitted(fn, rvc=False)
    assert len(code) % 4 == 0
    assert all(code[i] & 0b11 == 0b11 for i in range(0, len(code), 4))


def test_ninsns_counts_halfwords() -> None:
    e = Emitter()
    e.emit_c(E.c_nop())
    e.emit(E.addi(ZERO, ZERO, 0))
    assert (e.ninsns, e.pos) == (3, 6)


def test_emit_c_refused_without_rvc() -> None:
    with pytest.raises(ValueError):
        Emitter(rvc=False).emit_c(E.c_nop())


def test_patch_overwrites_placeholder() -> None:
    e = Emitter()
    e.emit_c(E.c_mv(A0, A1))
    at = e.pos
    e.emit_nop()
    e.emit_c(E.c_nop())
    e.patch(at, E.beq(A0, ZERO, 6))
    assert e.code == c16(E.c_mv(A0, A1)) + w32(E.beq(A0, ZERO, 6)) + c16(E.c_nop())
    with pytest.raises(ValueError):
        e.patch(6, E.beq(A0, ZERO, 6))  # would run past the end


# -------------------------------------------------------------------------- emit_imm lengths


@pytest.mark.parametrize(
    ("val", "rvc", "nbytes", "ninsns_rv"),
    [
        # 32-bit value with nonzero upper: lui + addiw, neither fits a compressed form here
        (0xFFFFFFFF80001234, True, 8, 2),
        (0xFFFFFFFF80001234, False, 8, 2),
        # RV_MAX_COUNT_IMM: 0x7FFF7FF7FF7FF7FF -> upper chain 0x7FFF7FF7FF7FF, 0x7FFF7FF7FF, 0x7FFF7FF
        # 0x7FFF7FF is 32-bit: lui 0x7fff + addiw 0x7ff; then three times slli 12 + addi 0x7ff.
        # = 8 instructions; with RVC only the three slli compress: 2*4 + 3*(2+4) = 26 bytes.
        (0x7FFF7FF7FF7FF7FF, False, 32, 8),
        (0x7FFF7FF7FF7FF7FF, True, 26, 8),
        (0, True, 2, 1),  # c.li a0, 0
        (33, True, 4, 1),  # addi a0, zero, 33
        (0x1000, True, 4, 2),  # c.lui a0, 1; c.addiw a0, 0 (addiw is emitted even for lower 0)
        (1 << 32, True, 4, 2),  # c.li a0, 1; c.slli a0, 32 (no addi: lower 0)
        (-1, True, 2, 1),  # c.li a0, -1
        ((1 << 63) - 1, True, 6, 3),  # val+0x800 wraps: c.li -1; c.slli 63; c.addi -1
    ],
)
def test_emit_imm_length(val: int, rvc: bool, nbytes: int, ninsns_rv: int) -> None:
    e = Emitter(rvc=rvc)
    e.emit_imm(A0, val)
    from sledfuzz.emu.rv64.disasm import disassemble

    assert (e.pos, len(disassemble(e.code, 0))) == (nbytes, ninsns_rv)


def test_emit_imm_max_count_sequence() -> None:
    e = Emitter(rvc=True)
    e.emit_imm(T1, 0x7FFF7FF7FF7FF7FF)
    step = c16(E.c_slli(T1, 12)) + w32(E.addi(T1, T1, 0x7FF))
    assert e.code == w32(E.lui(T1, 0x7FFF), E.addiw(T1, T1, 0x7FF)) + step * 3


def test_emit_imm_lui_field_for_int_max() -> None:
    """0x7fffffff: upper rounds to 0x80000 (lui sign-extends), addiw -1 wraps back in 32 bits."""
    e = Emitter(rvc=False)
    e.emit_imm(A0, 0x7FFFFFFF)
    assert e.code == w32(E.lui(A0, 0x80000), E.addiw(A0, A0, -1))


# -------------------------------------------------------------------------- jump and link


def test_jump_and_link_sizing_pass_always_two_insns() -> None:
    e = Emitter()
    e.emit_jump_and_link(RA, 0, True)
    assert e.code == w32(0x00000317, E.jalr(RA, T1, 0))


@pytest.mark.parametrize("off", [2, -(1 << 20), (1 << 20) - 2, 0x800])
def test_jump_and_link_fixed_addr_uses_jal(off: int) -> None:
    e = Emitter()
    e.emit_jump_and_link(RA, off, True)
    assert e.code == w32(E.jal(RA, off))


@pytest.mark.parametrize(("off", "hi20", "lo"), [(0x800, 1, -0x800), (1 << 20, 0x100, 0), (-0x8F40150, 0xF70C0, -336)])
def test_jump_and_link_auipc_t1_pair(off: int, hi20: int, lo: int) -> None:
    e = Emitter()
    e.emit_jump_and_link(T0, off, off == (1 << 20))  # 1<<20 does not fit 21 bits even when fixed
    assert e.code == w32(E.auipc(T1, hi20), E.jalr(T0, T1, lo))


@pytest.mark.parametrize("off", [(1 << 31) - (1 << 11), -(1 << 31) - (1 << 11) - 1, 1 << 40])
@pytest.mark.parametrize("fixed", [True, False])
def test_jump_and_link_out_of_reach(off: int, fixed: bool) -> None:
    e = Emitter()
    with pytest.raises(ReachError):
        e.emit_jump_and_link(RA, off, fixed)
    assert e.pos == 0


def test_jump_and_link_reach_edges() -> None:
    e = Emitter()
    e.emit_jump_and_link(ZERO, (1 << 31) - (1 << 11) - 1, False)
    e.emit_jump_and_link(ZERO, -(1 << 31) - (1 << 11), False)
    assert e.pos == 16


def test_emit_call_uses_base() -> None:
    sizing = Emitter(base=None)
    sizing.emit_c(E.c_nop())
    sizing.emit_call(0x1000, True)
    assert sizing.pos == 2 + 8
    real = Emitter(base=0x1000)
    real.emit_c(E.c_nop())
    real.emit_call(0x1000 + 0x42, True)
    assert real.code[2:] == w32(E.jal(RA, 0x40))


# -------------------------------------------------------------------------- executed helpers


def run(code: bytes, init: dict[int, int], reg: int) -> int:
    from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc
    from unicorn.riscv_const import UC_RISCV_REG_X0

    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    uc.mem_map(0x10000, 0x1000)
    uc.mem_write(0x10000, code)
    for r, v in init.items():
        uc.reg_write(UC_RISCV_REG_X0 + r, v)
    uc.emu_start(0x10000, 0x10000 + len(code))
    out: int = uc.reg_read(UC_RISCV_REG_X0 + reg)
    return out


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return (v - (1 << bits) if v >> (bits - 1) else v) & ((1 << 64) - 1)


@given(st.integers(0, (1 << 64) - 1), st.booleans(), st.sampled_from([(A0, A0), (A0, A5), (T1, T1), (A5, T0)]))
def test_extension_helpers_execute(v: int, rvc: bool, regs: tuple[int, int]) -> None:
    rd, rs = regs
    for helper, want in (
        (Emitter.emit_sextw, _sext(v, 32)),
        (Emitter.emit_sextb, _sext(v, 8)),
        (Emitter.emit_sexth, _sext(v, 16)),
        (Emitter.emit_zexth, v & 0xFFFF),
        (Emitter.emit_zextw, v & 0xFFFFFFFF),
    ):
        e = Emitter(rvc=rvc)
        helper(e, rd, rs)
        assert run(e.code, {rs: v}, rd) == want, helper.__name__


def test_helper_memos_stay_within_their_budget() -> None:
    """A long search draws new addresses and immediates for every case: each helper's memo is
    emptied when it reaches ``_MEMO_MAX`` entries, and all of them together stay within ~65,536
    entries (about 15 MB; at 65,536 per helper RSS grew for tens of minutes, issue 9)."""
    from sledfuzz.emu.rv64 import emitter

    assert len(emitter._MEMOS) >= 20  # the bpf_jit.h helpers are memoized
    assert emitter._MEMO_MAX * len(emitter._MEMOS) <= 1 << 16
    e = Emitter(rvc=True)
    for i in range(3 * emitter._MEMO_MAX):
        e.emit_imm(T1, 0x1234_5000_0000 + (i << 12) + 0x7FF)  # a new cookie/address every time
        e.emit_addi(A0, A1, i % 2048 - 1024)
    assert max(len(memo) for memo in emitter._MEMOS) <= emitter._MEMO_MAX
