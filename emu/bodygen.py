"""The traced function's body (DESIGN §1 mini-language) compiled to RV64 machine code.

A body is a normal, ABI-abiding leaf or non-leaf function: it reads its argument slots as it
received them (a0-a7, then the caller's stack words at entry sp + 8*(i-8)), returns
``k + sum(c_i * slot_i)`` (optionally sext.w'd), may store through a pointer slot, may call a
helper, clobbers and restores s1..sn, and leaves ``body.a5`` in a5. Compilation is pure and
cached: the bytes depend only on the body, the slot count and the two addresses.
"""

from __future__ import annotations

from functools import lru_cache

from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.emitter import Emitter
from sledfuzz.emu.rv64.offsets import in_auipc_jalr_range
from sledfuzz.emu.rv64.regs import A0, A5, RA, S0, S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, SP, T0, T1, T2, ZERO
from sledfuzz.model.case import Body

__all__ = ["JUNK", "body_frame_size", "compile_body"]


#: What the body writes into s_i (i = 1..11) before restoring it: ``JUNK ^ i``.
JUNK = 0x0BAD_5EED_0000_0000


def _saved_regs(body: Body) -> tuple[int, ...]:
    """Registers the prologue saves, in frame order from the top: ra, s0 (when framed), s1..sn."""
    framed = body.frame_pointer or body.calls_helper
    s_regs = (S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11)[: body.uses_saved]
    return ((RA, S0) if framed else ()) + s_regs


def body_frame_size(body: Body) -> int:
    """Bytes the body's prologue subtracts from sp (0 for a frameless leaf); a multiple of 16."""
    words = len(_saved_regs(body)) + (1 if body.calls_helper else 0)
    return (8 * words + 15) // 16 * 16


def _load_slot(e: Emitter, rd: int, slot: int, frame: int) -> int:
    """Make slot ``slot`` available; return the register holding it (a_i, or rd after a load)."""
    if slot < 8:
        return A0 + slot
    e.emit_ld(rd, frame + 8 * (slot - 8), SP)
    return rd


@lru_cache(maxsize=1024)  # keyed by address: hits are replays of recent cases (bounded memory)
def compile_body(body: Body, nr_slots: int, addr: int, helper: int) -> bytes:
    """RV64 code of ``body`` placed at ``addr``, calling the host helper at ``helper``.

    Invariant kept: on return, a0 = the model's value, a5 = body.a5, sp/s0-s11/gp/tp/ra as on
    entry, and the only store outside the body's own frame is the optional ``store``.
    """
    e = Emitter(rvc=body.compressed, base=addr)
    saved = _saved_regs(body)
    frame = body_frame_size(body)

    # prologue
    if frame:
        e.emit_addi(SP, SP, -frame)
    for n, reg in enumerate(saved):
        e.emit_sd(SP, frame - 8 * (n + 1), reg)
    if body.frame_pointer:
        e.emit_addi(S0, SP, frame)
    # touch the callee-saved registers the body "uses"
    for n, reg in enumerate(saved[-body.uses_saved :] if body.uses_saved else ()):
        e.emit_imm(reg, JUNK ^ (n + 1))

    # ret = k + sum(c_i * slot_i), accumulated in t0
    e.emit_imm(T0, body.k)
    for i, c in enumerate(body.coeffs[:nr_slots]):
        if c == 0:
            continue
        src = _load_slot(e, T1, i, frame)
        if c == 1:
            e.emit_add(T0, T0, src)
        elif c == -1:
            e.emit(E.sub(T0, T0, src))
        else:
            e.emit_li(T2, c)
            e.emit(E.mul(T1, src, T2))
            e.emit_add(T0, T0, T1)

    # side effect: *(u64 *)slot_j = value
    if body.store is not None:
        ptr = _load_slot(e, T1, body.store.slot, frame)
        if ptr != T1:
            e.emit_mv(T1, ptr)
        e.emit_imm(T2, body.store.value)
        e.emit_sd(T1, 0, T2)

    if body.calls_helper:
        e.emit_sd(SP, 0, T0)  # the helper scrambles every caller-saved register
        off = helper - (addr + e.pos)
        if in_auipc_jalr_range(off):
            e.emit_call(helper, True)
        else:
            e.emit_imm(T1, helper)
            e.emit_jalr(RA, T1, 0)
        e.emit_ld(A0, 0, SP)
    else:
        e.emit_mv(A0, T0)
    if body.ret32:
        e.emit_sextw(A0, A0)
    e.emit_imm(A5, body.a5)

    # epilogue
    for n, reg in enumerate(saved):
        e.emit_ld(reg, frame - 8 * (n + 1), SP)
    if frame:
        e.emit_addi(SP, SP, frame)
    e.emit_jalr(ZERO, RA, 0)
    return e.code

