"""RV64GC disassembly through capstone, tolerant of bytes capstone cannot decode."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["Insn", "disassemble", "format_listing"]


@dataclass(frozen=True)
class Insn:
    """One decoded instruction; undecodable units get mnemonic ``.word``/``.half``/``.byte``."""

    addr: int
    size: int
    raw: bytes
    mnemonic: str
    op_str: str

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {self.op_str}".rstrip()


@cache
def _capstone() -> Any:
    import capstone

    return capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)


def _undecodable(code: bytes, off: int, addr: int) -> Insn:
    """A data directive for the unit at ``off``: 4 bytes when its low bits say 32-bit, else 2."""
    rest = len(code) - off
    if rest >= 4 and code[off] & 0b11 == 0b11:
        raw = code[off : off + 4]
        return Insn(addr, 4, raw, ".word", f"{int.from_bytes(raw, 'little'):#010x}")
    if rest >= 2:
        raw = code[off : off + 2]
        return Insn(addr, 2, raw, ".half", f"{int.from_bytes(raw, 'little'):#06x}")
    return Insn(addr, 1, code[off : off + 1], ".byte", f"{code[off]:#04x}")


def disassemble(code: bytes, addr: int) -> list[Insn]:
    """Decode ``code`` as if loaded at ``addr``; never raises on bad bytes."""
    md = _capstone()
    out: list[Insn] = []
    off = 0
    while off < len(code):
        for ci in md.disasm(code[off:], addr + off):
            out.append(Insn(ci.address, ci.size, bytes(ci.bytes), ci.mnemonic, ci.op_str))
            off += ci.size
        if off < len(code):
            insn = _undecodable(code, off, addr + off)
            out.append(insn)
            off += insn.size
    return out


def format_listing(code: bytes, addr: int) -> str:
    """An objdump-like listing: address, raw hex (as the little-endian unit), text."""
    lines = []
    for insn in disassemble(code, addr):
        unit = int.from_bytes(insn.raw, "little")
        raw = f"{unit:0{2 * insn.size}x}"
        lines.append(f"{insn.addr:#018x}:  {raw:<8}  {insn.text}")
    return "\n".join(lines)
