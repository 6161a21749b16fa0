"""Place a compiled function for a case: the object loaded so that the symbol is at
``layout.func``, its sled bytes replaced by what the patcher wrote.

Loads are cached by (path, content hash, base); a file whose content no longer matches the
case's hash is refused (``ElfError``), so a replay never judges a different function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from sledfuzz.emu.elf.functions import TracedFunction, find_function
from sledfuzz.emu.elf.image import ElfError, LoadedElf, load_elf, read_elf_bytes
from sledfuzz.model.case import CompiledBody

__all__ = ["Placed", "place", "symbol_offset"]


@dataclass(frozen=True)
class Placed:
    """The regions of a placed object: (address, bytes), and which of them the body may write."""

    elf: LoadedElf
    fn: TracedFunction
    regions: tuple[tuple[int, bytes], ...]
    writable: frozenset[int]


@lru_cache(maxsize=64)
def _offset(path: str, sha256: str, symbol: str) -> tuple[int, int]:
    """(offset of the symbol from the load base, alignment the base needs).

    Sections are placed in file order, each at its own alignment in absolute terms, so the base
    needs the alignment of the sections up to the symbol's own: then the symbol sits at
    ``base + offset`` for every such base."""
    from elftools.elf.elffile import ELFFile

    del sha256
    elf = load_elf(path, base=0, with_debug=False)
    fn = find_function(elf, symbol)
    sym = elf.symbol(symbol)
    assert sym is not None
    align = 1
    with open(path, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if sec["sh_flags"] & 2:  # SHF_ALLOC: placed (an empty one still aligns the cursor)
                align = max(align, sec["sh_addralign"])
                if sec.name == sym.section:
                    break
    return fn.addr, align


def check_hash(comp: CompiledBody) -> None:
    digest = hashlib.sha256(read_elf_bytes(comp.path)).hexdigest()
    if digest != comp.sha256:
        raise ElfError(f"{comp.path}: the file changed since the case was made (sha256 {digest[:12]}..., "
                       f"the case names {comp.sha256[:12]}...)")


def symbol_offset(comp: CompiledBody) -> tuple[int, int]:
    """Where the symbol sits relative to the load base, and the base's required alignment."""
    check_hash(comp)
    return _offset(comp.path, comp.sha256, comp.symbol)


@lru_cache(maxsize=256)
def _load_at(path: str, sha256: str, base: int) -> LoadedElf:
    elf = load_elf(path, base=base, with_debug=False)
    if elf.sha256 != sha256:
        raise ElfError(f"{path}: the file changed since the case was made")
    return elf


def place(comp: CompiledBody, func: int, sled_bytes: bytes, pre_bytes: int) -> Placed:
    """The object placed with ``comp.symbol`` at ``func``; ``sled_bytes`` (starting ``pre_bytes``
    before the symbol) replace the compiler's sled in the text."""
    off, align = symbol_offset(comp)
    base = func - off
    if base % align:
        raise ElfError(f"{comp.path}: {comp.symbol} cannot be at {func:#x}: its object needs {align}-byte alignment")
    elf = _load_at(comp.path, comp.sha256, base)
    fn = find_function(elf, comp.symbol)
    start = func - pre_bytes
    regions: list[tuple[int, bytes]] = []
    writable: set[int] = set()
    for sec in elf.sections:
        data = sec.data
        if sec.addr <= start and start + len(sled_bytes) <= sec.addr + len(data):
            at = start - sec.addr
            data = data[:at] + sled_bytes + data[at + len(sled_bytes) :]
        regions.append((sec.addr, data))
        if sec.writable:
            writable.add(sec.addr)
    return Placed(elf, fn, tuple(regions), frozenset(writable))
