"""RISC-V ELF relocation arithmetic (psABI "Relocations"), applied in memory.

pyelftools reads the relocation tables but applies none of RISC-V's, so the field arithmetic is
ours: each function takes the section bytes and returns them with one relocation applied. Types a
compiler emits for kernel-style code are handled; any other type is refused by name (``ElfError``).
No instruction relaxation is performed (``R_RISCV_RELAX`` is a hint: code keeps the length the
compiler gave it); ``R_RISCV_ALIGN`` padding is trimmed by the loader (``image``), as a linker must.
"""

from __future__ import annotations

from dataclasses import dataclass

MASK64 = (1 << 64) - 1
NOP4 = 0x00000013
C_NOP = 0x0001


class ElfError(Exception):
    """An ELF file sledfuzz cannot load; the message is one line naming the cause."""


# psABI relocation numbers (only the ones handled; names for the error message come from pyelftools)
R_RISCV_32 = 1
R_RISCV_64 = 2
R_RISCV_BRANCH = 16
R_RISCV_JAL = 17
R_RISCV_CALL = 18
R_RISCV_CALL_PLT = 19
R_RISCV_PCREL_HI20 = 23
R_RISCV_PCREL_LO12_I = 24
R_RISCV_PCREL_LO12_S = 25
R_RISCV_HI20 = 26
R_RISCV_LO12_I = 27
R_RISCV_LO12_S = 28
R_RISCV_ADD8, R_RISCV_ADD16, R_RISCV_ADD32, R_RISCV_ADD64 = 33, 34, 35, 36
R_RISCV_SUB8, R_RISCV_SUB16, R_RISCV_SUB32, R_RISCV_SUB64 = 37, 38, 39, 40
R_RISCV_ALIGN = 43
R_RISCV_RVC_BRANCH = 44
R_RISCV_RVC_JUMP = 45
R_RISCV_RELAX = 51
R_RISCV_SUB6 = 52
R_RISCV_SET6, R_RISCV_SET8, R_RISCV_SET16, R_RISCV_SET32 = 53, 54, 55, 56
R_RISCV_32_PCREL = 57
R_RISCV_SET_ULEB128 = 60
R_RISCV_SUB_ULEB128 = 61

#: types that need no change to the bytes when nothing is relaxed
HINTS = frozenset({R_RISCV_ALIGN, R_RISCV_RELAX})
PCREL_HI = frozenset({R_RISCV_PCREL_HI20})
PCREL_LO = frozenset({R_RISCV_PCREL_LO12_I, R_RISCV_PCREL_LO12_S})
SUPPORTED = frozenset(
    {
        R_RISCV_32, R_RISCV_64, R_RISCV_BRANCH, R_RISCV_JAL, R_RISCV_CALL, R_RISCV_CALL_PLT,
        R_RISCV_PCREL_HI20, R_RISCV_PCREL_LO12_I, R_RISCV_PCREL_LO12_S, R_RISCV_HI20, R_RISCV_LO12_I,
        R_RISCV_LO12_S, R_RISCV_ADD8, R_RISCV_ADD16, R_RISCV_ADD32, R_RISCV_ADD64, R_RISCV_SUB8,
        R_RISCV_SUB16, R_RISCV_SUB32, R_RISCV_SUB64, R_RISCV_RVC_BRANCH, R_RISCV_RVC_JUMP, R_RISCV_SUB6,
        R_RISCV_SET6, R_RISCV_SET8, R_RISCV_SET16, R_RISCV_SET32, R_RISCV_32_PCREL,
        R_RISCV_SET_ULEB128, R_RISCV_SUB_ULEB128,
    }
) | HINTS


#: psABI names, for messages (pyelftools has no RISC-V relocation names)
NAMES = {
    0: "NONE", 1: "32", 2: "64", 3: "RELATIVE", 4: "COPY", 5: "JUMP_SLOT", 6: "TLS_DTPMOD32",
    7: "TLS_DTPMOD64", 8: "TLS_DTPREL32", 9: "TLS_DTPREL64", 10: "TLS_TPREL32", 11: "TLS_TPREL64",
    12: "TLSDESC", 16: "BRANCH", 17: "JAL", 18: "CALL", 19: "CALL_PLT", 20: "GOT_HI20",
    21: "TLS_GOT_HI20", 22: "TLS_GD_HI20", 23: "PCREL_HI20", 24: "PCREL_LO12_I", 25: "PCREL_LO12_S",
    26: "HI20", 27: "LO12_I", 28: "LO12_S", 29: "TPREL_HI20", 30: "TPREL_LO12_I", 31: "TPREL_LO12_S",
    32: "TPREL_ADD", 33: "ADD8", 34: "ADD16", 35: "ADD32", 36: "ADD64", 37: "SUB8", 38: "SUB16",
    39: "SUB32", 40: "SUB64", 41: "GOT32_PCREL", 43: "ALIGN", 44: "RVC_BRANCH", 45: "RVC_JUMP",
    51: "RELAX", 52: "SUB6", 53: "SET6", 54: "SET8", 55: "SET16", 56: "SET32", 57: "32_PCREL",
    58: "IRELATIVE", 59: "PLT32", 60: "SET_ULEB128", 61: "SUB_ULEB128",
}


def reloc_name(t: int) -> str:
    return f"R_RISCV_{NAMES[t]}" if t in NAMES else f"relocation type {t}"


@dataclass(frozen=True)
class Reloc:
    """One relocation, resolved: ``s`` the symbol's address, ``a`` the addend, ``p`` the place."""

    type: int
    offset: int  # into the section's bytes
    s: int
    a: int
    p: int


def _get(buf: bytearray, off: int, n: int) -> int:
    return int.from_bytes(buf[off : off + n], "little")


def _put(buf: bytearray, off: int, n: int, v: int) -> None:
    buf[off : off + n] = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def hi20(value: int) -> int:
    """The upper 20 bits an auipc/lui must carry so that a sign-extended lo12 completes ``value``."""
    return ((value + 0x800) >> 12) & 0xFFFFF


def lo12(value: int) -> int:
    return value - (((value + 0x800) >> 12) << 12)


def _check_range(value: int, bits: int, what: str, r: Reloc) -> None:
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ElfError(f"relocation {what} at offset {r.offset:#x}: value {value:#x} out of range ({bits} bits)")


def _set_u(buf: bytearray, off: int, v: int) -> None:
    word = _get(buf, off, 4)
    _put(buf, off, 4, (word & 0xFFF) | ((v & 0xFFFFF) << 12))


def _set_i(buf: bytearray, off: int, v: int) -> None:
    word = _get(buf, off, 4)
    _put(buf, off, 4, (word & 0x000FFFFF) | ((v & 0xFFF) << 20))


def _set_s(buf: bytearray, off: int, v: int) -> None:
    word = _get(buf, off, 4)
    word = (word & 0x01FFF07F) | (((v >> 5) & 0x7F) << 25) | ((v & 0x1F) << 7)
    _put(buf, off, 4, word)


def _set_b(buf: bytearray, off: int, v: int) -> None:
    word = _get(buf, off, 4) & 0x01FFF07F
    word |= ((v >> 12) & 1) << 31 | ((v >> 5) & 0x3F) << 25 | ((v >> 1) & 0xF) << 8 | ((v >> 11) & 1) << 7
    _put(buf, off, 4, word)


def _set_j(buf: bytearray, off: int, v: int) -> None:
    word = _get(buf, off, 4) & 0xFFF
    word |= ((v >> 20) & 1) << 31 | ((v >> 1) & 0x3FF) << 21 | ((v >> 11) & 1) << 20 | ((v >> 12) & 0xFF) << 12
    _put(buf, off, 4, word)


def _set_cb(buf: bytearray, off: int, v: int) -> None:
    half = _get(buf, off, 2) & 0xE383
    half |= ((v >> 8) & 1) << 12 | ((v >> 3) & 3) << 10 | ((v >> 6) & 3) << 5 | ((v >> 1) & 3) << 3 | ((v >> 5) & 1) << 2
    _put(buf, off, 2, half)


def _set_cj(buf: bytearray, off: int, v: int) -> None:
    half = _get(buf, off, 2) & 0xE003
    bits = (
        ((v >> 11) & 1) << 10 | ((v >> 4) & 1) << 9 | ((v >> 8) & 3) << 7 | ((v >> 10) & 1) << 6
        | ((v >> 6) & 1) << 5 | ((v >> 7) & 1) << 4 | ((v >> 1) & 7) << 1 | ((v >> 5) & 1)
    )
    _put(buf, off, 2, half | bits << 2)


def _uleb_span(buf: bytearray, off: int) -> int:
    n = 0
    while buf[off + n] & 0x80:
        n += 1
    return n + 1


def _get_uleb(buf: bytearray, off: int) -> tuple[int, int]:
    n = _uleb_span(buf, off)
    return sum((buf[off + i] & 0x7F) << (7 * i) for i in range(n)), n


def _put_uleb(buf: bytearray, off: int, n: int, v: int) -> None:
    v &= (1 << (7 * n)) - 1  # the field keeps its width (the assembler reserved it)
    for i in range(n):
        byte = (v >> (7 * i)) & 0x7F
        buf[off + i] = byte | (0x80 if i < n - 1 else 0)


_WIDTH = {
    R_RISCV_ADD8: 1, R_RISCV_ADD16: 2, R_RISCV_ADD32: 4, R_RISCV_ADD64: 8,
    R_RISCV_SUB8: 1, R_RISCV_SUB16: 2, R_RISCV_SUB32: 4, R_RISCV_SUB64: 8,
    R_RISCV_SET8: 1, R_RISCV_SET16: 2, R_RISCV_SET32: 4,
}


def apply(buf: bytearray, r: Reloc, pcrel_hi: dict[int, int]) -> None:
    """Apply ``r`` to ``buf`` in place. ``pcrel_hi`` maps the address of each auipc carrying a
    PCREL_HI20 to its full pc-relative value (a PCREL_LO12's symbol is that auipc's label)."""
    t, off = r.type, r.offset
    value = (r.s + r.a) & MASK64
    rel = ((r.s + r.a - r.p + (1 << 63)) & MASK64) - (1 << 63)  # signed S+A-P
    if t in HINTS:
        return
    if t == R_RISCV_32:
        _put(buf, off, 4, value)
    elif t == R_RISCV_64:
        _put(buf, off, 8, value)
    elif t == R_RISCV_32_PCREL:
        _put(buf, off, 4, rel)
    elif t == R_RISCV_BRANCH:
        _check_range(rel, 13, "R_RISCV_BRANCH", r)
        _set_b(buf, off, rel)
    elif t == R_RISCV_JAL:
        _check_range(rel, 21, "R_RISCV_JAL", r)
        _set_j(buf, off, rel)
    elif t in (R_RISCV_CALL, R_RISCV_CALL_PLT):
        _check_range(rel, 32, "R_RISCV_CALL", r)
        _set_u(buf, off, hi20(rel))
        _set_i(buf, off + 4, lo12(rel))
    elif t == R_RISCV_PCREL_HI20:
        _check_range(rel, 32, "R_RISCV_PCREL_HI20", r)
        _set_u(buf, off, hi20(rel))
    elif t in PCREL_LO:
        if r.s not in pcrel_hi:
            raise ElfError(f"relocation PCREL_LO12 at offset {off:#x}: no PCREL_HI20 at its label {r.s:#x}")
        lo = lo12(pcrel_hi[r.s])
        (_set_i if t == R_RISCV_PCREL_LO12_I else _set_s)(buf, off, lo)
    elif t == R_RISCV_HI20:
        _set_u(buf, off, hi20(value))
    elif t == R_RISCV_LO12_I:
        _set_i(buf, off, lo12(value))
    elif t == R_RISCV_LO12_S:
        _set_s(buf, off, lo12(value))
    elif t in (R_RISCV_ADD8, R_RISCV_ADD16, R_RISCV_ADD32, R_RISCV_ADD64):
        n = _WIDTH[t]
        _put(buf, off, n, _get(buf, off, n) + r.s + r.a)
    elif t in (R_RISCV_SUB8, R_RISCV_SUB16, R_RISCV_SUB32, R_RISCV_SUB64):
        n = _WIDTH[t]
        _put(buf, off, n, _get(buf, off, n) - r.s - r.a)
    elif t in (R_RISCV_SET8, R_RISCV_SET16, R_RISCV_SET32):
        _put(buf, off, _WIDTH[t], value)
    elif t == R_RISCV_SET6:
        buf[off] = (buf[off] & 0xC0) | (value & 0x3F)
    elif t == R_RISCV_SUB6:
        buf[off] = (buf[off] & 0xC0) | ((buf[off] - r.s - r.a) & 0x3F)
    elif t == R_RISCV_RVC_BRANCH:
        _check_range(rel, 9, "R_RISCV_RVC_BRANCH", r)
        _set_cb(buf, off, rel)
    elif t == R_RISCV_RVC_JUMP:
        _check_range(rel, 12, "R_RISCV_RVC_JUMP", r)
        _set_cj(buf, off, rel)
    elif t == R_RISCV_SET_ULEB128:
        _, n = _get_uleb(buf, off)
        _put_uleb(buf, off, n, value)
    elif t == R_RISCV_SUB_ULEB128:
        cur, n = _get_uleb(buf, off)
        _put_uleb(buf, off, n, cur - r.s - r.a)
    else:  # pragma: no cover - callers check SUPPORTED first
        raise ElfError(f"relocation type {t} is not supported")
