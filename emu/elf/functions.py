"""Traced functions of a loaded ELF: each function symbol with its ftrace sled.

The compiler records the first nop of every patchable entry in ``__patchable_function_entries``
(the record is ``func - M * nop width``). The layout key ``"N,M/c|w"`` (model.caps.SledLayout.key)
is read back from the bytes: the nop width from the nop at the record (``c.nop`` = 0x0001, ``nop``
= 0x00000013), M from the distance to the symbol, N - M from the nops at the symbol. A body that
itself begins with the same nop would be counted into the sled; compilers do not emit one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sledfuzz.emu.elf.image import ElfError, LoadedElf, Symbol

C_NOP = 0x0001
NOP = 0x00000013

__all__ = ["TracedFunction", "find_function", "traced_functions"]


@dataclass(frozen=True)
class TracedFunction:
    """A function symbol and its sled as the compiler left it."""

    name: str
    addr: int
    size: int
    record: int  # the __patchable_function_entries address (first sled nop)
    n: int
    m: int
    nop_width: int

    @property
    def sled_key(self) -> str:
        return f"{self.n},{self.m}/{'c' if self.nop_width == 2 else 'w'}"

    @property
    def body_addr(self) -> int:
        """The first instruction after the sled."""
        return self.addr + (self.n - self.m) * self.nop_width


def _nop_width_at(elf: LoadedElf, addr: int) -> int | None:
    try:
        if int.from_bytes(elf.read(addr, 2), "little") == C_NOP:
            return 2
        if int.from_bytes(elf.read(addr, 4), "little") == NOP:
            return 4
    except ElfError:
        return None
    return None


def _count_nops(elf: LoadedElf, addr: int, end: int, width: int) -> int:
    want = C_NOP if width == 2 else NOP
    n = 0
    while addr + width <= end:
        try:
            word = int.from_bytes(elf.read(addr, width), "little")
        except ElfError:
            break
        if word != want:
            break
        n += 1
        addr += width
    return n


def _sled_of(elf: LoadedElf, sym: Symbol, records: list[int]) -> TracedFunction | None:
    """The sled of ``sym``: the greatest record at or below the symbol whose nops reach it."""
    for rec in sorted((r for r in records if r <= sym.addr), reverse=True)[:1]:
        width = _nop_width_at(elf, rec)
        if width is None or (sym.addr - rec) % width:
            return None
        m = (sym.addr - rec) // width
        if _count_nops(elf, rec, sym.addr, width) != m:
            return None  # something other than nops between the record and the symbol
        after = _count_nops(elf, sym.addr, sym.addr + max(sym.size, 0), width)
        if m + after == 0:
            return None
        return TracedFunction(sym.name, sym.addr, sym.size, rec, m + after, m, width)
    return None


def traced_functions(elf: LoadedElf) -> tuple[list[TracedFunction], list[str]]:
    """Every function symbol with a sled, and one line for each function without one."""
    records = list(elf.patchable_entries)
    found: list[TracedFunction] = []
    skipped: list[str] = []
    for sym in elf.symbols:
        if sym.kind != "func" or sym.size == 0:
            continue
        tf = _sled_of(elf, sym, records)
        if tf is None:
            skipped.append(f"{sym.name}: no __patchable_function_entries sled (compile with -fpatchable-function-entry)")
        else:
            found.append(tf)
    return found, skipped


def find_function(elf: LoadedElf, name: str) -> TracedFunction:
    """The named function and its sled, or ElfError in one line."""
    sym = elf.symbol(name)
    if sym is None or sym.kind != "func":
        raise ElfError(f"{elf.path}: no function symbol {name!r}")
    tf = _sled_of(elf, sym, list(elf.patchable_entries))
    if tf is None:
        raise ElfError(f"{elf.path}: {name} has no sled (no __patchable_function_entries record before it)")
    return tf
