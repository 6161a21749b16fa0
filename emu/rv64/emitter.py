"""A JIT emission buffer modelled on the RV64 BPF JIT context, with its RVC-choosing helpers.

The helpers make the same compressed-or-not choice as the like-named ``emit_*`` inline helpers of
arch/riscv/net/bpf_jit.h (and ``emit_imm`` / ``emit_jump_and_link`` / ``emit_call`` of
bpf_jit_comp64.c) in Linux 6.12, so that an era's JIT written on top of this class produces the
same bytes as the kernel's. The conditions were read from that tree and are restated per helper;
Zba and Zbb are treated as absent.

Argument order is the kernel's, so that a JIT port can follow the kernel call sites argument for
argument: ``emit_ld(rd, off, rs1)``, ``emit_sd(rs1, off, rs2)`` (unlike ``encode.ld`` /
``encode.sd``, which follow the assembly text).

Over 400 lines because it is one class mirroring one kernel header: a helper per ``emit_*`` of
bpf_jit.h, each short, kept side by side so a reader can compare them with the kernel's in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.offsets import ReachError, check_reach, fits_signed, sign_extend
from sledfuzz.emu.rv64.regs import RA, SP, T1, ZERO, is_creg

__all__ = ["Emitter"]

_MASK64 = (1 << 64) - 1


def _s64(value: int) -> int:
    """Wrap to a signed 64-bit value, as the kernel's s64 arithmetic does."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _uint_below(value: int, bits: int) -> bool:
    """The kernel's is_<n>b_uint: the value taken as unsigned is below 2^bits (negatives fail)."""
    return 0 <= value < (1 << bits)


_F = TypeVar("_F", bound=Callable[..., None])
# Entries per helper; the cache is emptied when full. Small on purpose: the hits are the few hundred
# shapes the JITs repeat, while keys holding addresses grow with every new layout (the shape
# builder draws one per case): at 1 << 16 the 28 memos grew RSS for tens of minutes (docs/results.md).
_MEMO_MAX = 1 << 11
_MEMOS: list[dict[tuple[object, ...], bytes]] = []  # every helper's memo (bounded; tests check)


def _memo(fn: _F) -> _F:
    """Remember the bytes a helper appends for (rvc, arguments): the helpers are pure functions
    of those (position-dependent ``emit_call`` is not memoized, the ``emit_jump_and_link`` it calls
    is), and the JITs emit the same few hundred shapes over and over. A call that raises is not
    remembered, so errors are raised exactly as before."""
    cache: dict[tuple[object, ...], bytes] = {}
    _MEMOS.append(cache)

    def helper(self: Emitter, *args: int, **kwargs: int) -> None:
        if kwargs:
            fn(self, *args, **kwargs)
            return
        key = (self.rvc, *args)
        hit = cache.get(key)
        if hit is not None:
            self._buf += hit
            return
        start = len(self._buf)
        fn(self, *args)
        if len(cache) >= _MEMO_MAX:
            cache.clear()
        cache[key] = bytes(self._buf[start:])

    helper.__name__ = fn.__name__
    helper.__qualname__ = fn.__qualname__
    helper.__doc__ = fn.__doc__
    return cast(_F, helper)


class Emitter:
    """Instruction buffer counted in 2-byte units like ``struct rv_jit_context``.

    ``rvc`` stands for CONFIG_RISCV_ISA_C (the kernel's ``rvc_enabled()``). ``base`` is the address
    the code will run at (the kernel's ``ro_insns``); None models the sizing pass, where
    ``emit_call`` has no image address and uses offset 0.
    """

    def __init__(self, rvc: bool = True, base: int | None = None) -> None:
        self.rvc = rvc
        self.base = base
        self._buf = bytearray()

    # ---------------------------------------------------------------- buffer

    @property
    def ninsns(self) -> int:
        """Length in 2-byte units (the kernel's ``ctx->ninsns``)."""
        return len(self._buf) // 2

    @property
    def pos(self) -> int:
        """Length in bytes: the byte offset the next instruction goes to."""
        return len(self._buf)

    @property
    def pc(self) -> int | None:
        """Address of the next instruction, or None when no base was given."""
        return None if self.base is None else self.base + len(self._buf)

    @property
    def code(self) -> bytes:
        return bytes(self._buf)

    def emit(self, word: int) -> None:
        """Append a 4-byte instruction (the kernel's ``emit``)."""
        if not 0 <= word <= 0xFFFFFFFF or word & 0b11 != 0b11:
            raise E.EncodingError(f"{word:#x} is not a 32-bit instruction word")
        self._buf += word.to_bytes(4, "little")

    def emit_c(self, half: int) -> None:
        """Append a 2-byte compressed instruction (the kernel's ``emitc``)."""
        if not self.rvc:
            raise E.EncodingError("compressed instruction emitted with rvc disabled")
        if not 0 <= half <= 0xFFFF or half & 0b11 == 0b11:
            raise E.EncodingError(f"{half:#x} is not a 16-bit compressed instruction")
        self._buf += half.to_bytes(2, "little")

    def patch(self, pos: int, word: int) -> None:
        """Overwrite the 4-byte instruction at byte offset ``pos`` (branch placeholders)."""
        if pos < 0 or pos + 4 > len(self._buf) or pos % 2:
            raise ValueError(f"patch position {pos} outside the {len(self._buf)}-byte buffer")
        if not 0 <= word <= 0xFFFFFFFF or word & 0b11 != 0b11:
            raise E.EncodingError(f"{word:#x} is not a 32-bit instruction word")
        self._buf[pos : pos + 4] = word.to_bytes(4, "little")

    # ---------------------------------------------------------------- bpf_jit.h helpers

    @_memo
    def emit_nop(self) -> None:
        """rv_nop(): always the 4-byte ``addi x0, x0, 0``, never c.nop."""
        self.emit(E.addi(ZERO, ZERO, 0))

    @_memo
    def emit_jalr(self, rd: int, rs: int, imm: int) -> None:
        """emit_jalr: c.jalr when linking through ra, c.jr when not linking; offset 0 and rs != x0."""
        if self.rvc and rd == RA and rs and not imm:
            self.emit_c(E.c_jalr(rs))
        elif self.rvc and not rd and rs and not imm:
            self.emit_c(E.c_jr(rs))
        else:
            self.emit(E.jalr(rd, rs, imm))

    @_memo
    def emit_mv(self, rd: int, rs: int) -> None:
        """emit_mv: c.mv unless either register is x0; otherwise ``addi rd, rs, 0``."""
        if self.rvc and rd and rs:
            self.emit_c(E.c_mv(rd, rs))
        else:
            self.emit(E.addi(rd, rs, 0))

    @_memo
    def emit_add(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_add: c.add for the two-operand shape rd == rs1, neither rd nor rs2 x0."""
        if self.rvc and rd and rd == rs1 and rs2:
            self.emit_c(E.c_add(rd, rs2))
        else:
            self.emit(E.add(rd, rs1, rs2))

    @_memo
    def emit_addi(self, rd: int, rs: int, imm: int) -> None:
        """emit_addi: three compressed shapes, tried in this order.

        sp += nonzero multiple of 16 in 10-bit signed range -> c.addi16sp; a creg rd from sp plus a
        nonzero multiple of 4 below 1024 -> c.addi4spn; rd == rs (not x0) plus a nonzero 6-bit
        signed value -> c.addi. There is no c.mv / c.li shortcut here (imm 0 stays 4 bytes).
        """
        if self.rvc and rd == SP and rd == rs and fits_signed(imm, 10) and imm and not imm & 0xF:
            self.emit_c(E.c_addi16sp(imm))
        elif self.rvc and is_creg(rd) and rs == SP and _uint_below(imm, 10) and not imm & 0x3 and imm:
            self.emit_c(E.c_addi4spn(rd, imm))
        elif self.rvc and rd and rd == rs and imm and fits_signed(imm, 6):
            self.emit_c(E.c_addi(rd, imm))
        else:
            self.emit(E.addi(rd, rs, imm))

    @_memo
    def emit_li(self, rd: int, imm: int) -> None:
        """emit_li (12-bit only): c.li for rd != x0 and a 6-bit signed value, else addi from x0."""
        if self.rvc and rd and fits_signed(imm, 6):
            self.emit_c(E.c_li(rd, imm))
        else:
            self.emit(E.addi(rd, ZERO, imm))

    @_memo
    def emit_lui(self, rd: int, imm: int) -> None:
        """emit_lui: c.lui when rd is neither x0 nor sp and the field is a nonzero 6-bit signed value.

        ``imm`` is the 20-bit field as a signed value (emit_imm passes ``upper``); 0x80000 is also
        accepted because emit_imm produces it for values just below 2^31.
        """
        if self.rvc and rd and rd != SP and fits_signed(imm, 6) and imm:
            self.emit_c(E.c_lui(rd, imm))
        else:
            self.emit(E.lui(rd, imm & 0xFFFFF if -0x80000 <= imm <= 0x80000 else imm))

    @_memo
    def emit_slli(self, rd: int, rs: int, imm: int) -> None:
        """emit_slli: c.slli for rd == rs (not x0) and a shift of 1..63."""
        if self.rvc and rd and rd == rs and 0 < imm < 64:
            self.emit_c(E.c_slli(rd, imm))
        else:
            self.emit(E.slli(rd, rs, imm))

    @_memo
    def emit_andi(self, rd: int, rs: int, imm: int) -> None:
        """emit_andi: c.andi for a creg rd == rs and a 6-bit signed value (0 included)."""
        if self.rvc and is_creg(rd) and rd == rs and fits_signed(imm, 6):
            self.emit_c(E.c_andi(rd, imm))
        else:
            self.emit(E.andi(rd, rs, imm))

    @_memo
    def emit_srli(self, rd: int, rs: int, imm: int) -> None:
        """emit_srli: c.srli for a creg rd == rs and a shift of 1..63."""
        if self.rvc and is_creg(rd) and rd == rs and 0 < imm < 64:
            self.emit_c(E.c_srli(rd, imm))
        else:
            self.emit(E.srli(rd, rs, imm))

    @_memo
    def emit_srai(self, rd: int, rs: int, imm: int) -> None:
        """emit_srai: c.srai for a creg rd == rs and a shift of 1..63."""
        if self.rvc and is_creg(rd) and rd == rs and 0 < imm < 64:
            self.emit_c(E.c_srai(rd, imm))
        else:
            self.emit(E.srai(rd, rs, imm))

    @_memo
    def emit_sub(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_sub: c.sub for creg rd == rs1 and creg rs2."""
        if self.rvc and is_creg(rd) and rd == rs1 and is_creg(rs2):
            self.emit_c(E.c_sub(rd, rs2))
        else:
            self.emit(E.sub(rd, rs1, rs2))

    @_memo
    def emit_or(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_or: c.or for creg rd == rs1 and creg rs2."""
        if self.rvc and is_creg(rd) and rd == rs1 and is_creg(rs2):
            self.emit_c(E.c_or(rd, rs2))
        else:
            self.emit(E.or_(rd, rs1, rs2))

    @_memo
    def emit_and(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_and: c.and for creg rd == rs1 and creg rs2."""
        if self.rvc and is_creg(rd) and rd == rs1 and is_creg(rs2):
            self.emit_c(E.c_and(rd, rs2))
        else:
            self.emit(E.and_(rd, rs1, rs2))

    @_memo
    def emit_xor(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_xor: c.xor for creg rd == rs1 and creg rs2."""
        if self.rvc and is_creg(rd) and rd == rs1 and is_creg(rs2):
            self.emit_c(E.c_xor(rd, rs2))
        else:
            self.emit(E.xor(rd, rs1, rs2))

    @_memo
    def emit_lw(self, rd: int, off: int, rs1: int) -> None:
        """emit_lw: c.lwsp from sp (rd != x0, 4-aligned offset < 256); c.lw for cregs (offset < 128)."""
        if self.rvc and rs1 == SP and rd and _uint_below(off, 8) and not off & 0x3:
            self.emit_c(E.c_lwsp(rd, off))
        elif self.rvc and is_creg(rd) and is_creg(rs1) and _uint_below(off, 7) and not off & 0x3:
            self.emit_c(E.c_lw(rd, rs1, off))
        else:
            self.emit(E.lw(rd, rs1, off))

    @_memo
    def emit_sw(self, rs1: int, off: int, rs2: int) -> None:
        """emit_sw: c.swsp to sp (any rs2, 4-aligned offset < 256); c.sw for cregs (offset < 128)."""
        if self.rvc and rs1 == SP and _uint_below(off, 8) and not off & 0x3:
            self.emit_c(E.c_swsp(rs2, off))
        elif self.rvc and is_creg(rs1) and is_creg(rs2) and _uint_below(off, 7) and not off & 0x3:
            self.emit_c(E.c_sw(rs2, rs1, off))
        else:
            self.emit(E.sw(rs2, rs1, off))

    @_memo
    def emit_addiw(self, rd: int, rs: int, imm: int) -> None:
        """emit_addiw: c.addiw for rd == rs (not x0) and a 6-bit signed value (0 included)."""
        if self.rvc and rd and rd == rs and fits_signed(imm, 6):
            self.emit_c(E.c_addiw(rd, imm))
        else:
            self.emit(E.addiw(rd, rs, imm))

    @_memo
    def emit_ld(self, rd: int, off: int, rs1: int) -> None:
        """emit_ld: c.ldsp from sp (rd != x0, 8-aligned offset < 512); c.ld for cregs (< 256)."""
        if self.rvc and rs1 == SP and rd and _uint_below(off, 9) and not off & 0x7:
            self.emit_c(E.c_ldsp(rd, off))
        elif self.rvc and is_creg(rd) and is_creg(rs1) and _uint_below(off, 8) and not off & 0x7:
            self.emit_c(E.c_ld(rd, rs1, off))
        else:
            self.emit(E.ld(rd, rs1, off))

    @_memo
    def emit_sd(self, rs1: int, off: int, rs2: int) -> None:
        """emit_sd: c.sdsp to sp (any rs2, 8-aligned offset < 512); c.sd for cregs (< 256)."""
        if self.rvc and rs1 == SP and _uint_below(off, 9) and not off & 0x7:
            self.emit_c(E.c_sdsp(rs2, off))
        elif self.rvc and is_creg(rs1) and is_creg(rs2) and _uint_below(off, 8) and not off & 0x7:
            self.emit_c(E.c_sd(rs2, rs1, off))
        else:
            self.emit(E.sd(rs2, rs1, off))

    @_memo
    def emit_subw(self, rd: int, rs1: int, rs2: int) -> None:
        """emit_subw: c.subw for creg rd == rs1 and creg rs2."""
        if self.rvc and is_creg(rd) and rd == rs1 and is_creg(rs2):
            self.emit_c(E.c_subw(rd, rs2))
        else:
            self.emit(E.subw(rd, rs1, rs2))

    @_memo
    def emit_sextw(self, rd: int, rs: int) -> None:
        """sext.w = addiw rd, rs, 0 (through emit_addiw, so c.addiw when rd == rs)."""
        self.emit_addiw(rd, rs, 0)

    @_memo
    def emit_sextb(self, rd: int, rs: int) -> None:
        """sext.b without Zbb: slli 56 then srai 56."""
        self.emit_slli(rd, rs, 56)
        self.emit_srai(rd, rd, 56)

    @_memo
    def emit_sexth(self, rd: int, rs: int) -> None:
        """sext.h without Zbb: slli 48 then srai 48."""
        self.emit_slli(rd, rs, 48)
        self.emit_srai(rd, rd, 48)

    @_memo
    def emit_zexth(self, rd: int, rs: int) -> None:
        """zext.h without Zbb: slli 48 then srli 48."""
        self.emit_slli(rd, rs, 48)
        self.emit_srli(rd, rd, 48)

    @_memo
    def emit_zextw(self, rd: int, rs: int) -> None:
        """zext.w without Zba: slli 32 then srli 32."""
        self.emit_slli(rd, rs, 32)
        self.emit_srli(rd, rd, 32)

    # ---------------------------------------------------------------- bpf_jit_comp64.c helpers

    @_memo
    def emit_imm(self, rd: int, val: int) -> None:
        """emit_imm: materialise a 64-bit constant with a value-dependent number of instructions.

        Invariant: after the sequence, rd == val (mod 2^64). A 32-bit signed value is
        ``lui upper; addiw lower`` (or a single ``li lower`` when upper is 0), where upper is
        rounded by +0x800 so that the sign-extended low 12 bits add back correctly. A wider value
        first builds ``upper`` with its trailing zero bits stripped (recursively), then shifts it
        into place and adds the low 12 bits if nonzero. All arithmetic wraps at 64 bits, as the
        kernel's s64 does (values near 2^63 make ``val + 0x800`` wrap, and the result is still
        right).
        """
        val = _s64(val)
        upper = _s64(val + (1 << 11)) >> 12
        lower = sign_extend(val, 12)

        if fits_signed(val, 32):
            if upper:
                self.emit_lui(rd, upper)
                self.emit_addiw(rd, rd, lower)
            else:
                self.emit_li(rd, lower)
            return

        shift = (upper & -upper).bit_length() - 1  # __ffs: index of the lowest set bit
        upper >>= shift
        shift += 12

        self.emit_imm(rd, upper)
        self.emit_slli(rd, rd, shift)
        if lower:
            self.emit_addi(rd, rd, lower)

    @_memo
    def emit_jump_and_link(self, rd: int, rvoff: int, fixed_addr: bool) -> None:
        """emit_jump_and_link: one 4-byte ``jal`` or ``auipc t1; jalr rd, lo(t1)``.

        The single jal is used only when the offset is nonzero, the caller says the address is
        final (``fixed_addr``) and it fits 21 bits; offset 0 (the sizing pass) therefore always
        counts the two-instruction form. Raises ReachError outside [-2^31-2^11, 2^31-2^11).
        """
        if rvoff and fixed_addr and fits_signed(rvoff, 21):
            self.emit(E.jal(rd, rvoff))
            return
        try:
            check_reach(rvoff)
        except ReachError as exc:
            raise ReachError(f"bpf-jit: target offset {rvoff:#x} is out of range") from exc
        upper = (rvoff + (1 << 11)) >> 12
        self.emit(E.auipc(T1, upper & 0xFFFFF))
        self.emit(E.jalr(rd, T1, sign_extend(rvoff, 12)))

    def emit_call(self, addr: int, fixed_addr: bool) -> None:
        """emit_call: ``emit_jump_and_link(ra, addr - pc, fixed_addr)``; offset 0 without a base."""
        off = 0
        if addr and self.base is not None:
            off = addr - (self.base + len(self._buf))
        self.emit_jump_and_link(RA, off, fixed_addr)
