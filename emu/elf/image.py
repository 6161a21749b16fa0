"""Load an RV64 ELF (relocatable or linked) into plain data: placed sections, symbols, and the
bytes with every relocation applied. pyelftools parses; ``relocate`` does RISC-V's arithmetic.

A relocatable object is placed at a base address of the caller's choosing (sections in file
order, each at its own alignment), so a case's layout decides where the traced function lives.
A linked executable keeps its link addresses. Undefined symbols resolve through ``externals``
(e.g. host stubs); one that is not there is refused by name.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from emu.elf import relocate as R
from emu.elf.relocate import ElfError

MAX_ELF_BYTES = 64 << 20

__all__ = ["ElfError", "LoadedElf", "Section", "Symbol", "load_elf", "read_elf_bytes"]


@dataclass(frozen=True)
class Section:
    """One allocated section at its load address (NOBITS sections carry zeros)."""

    name: str
    addr: int
    data: bytes
    executable: bool
    writable: bool


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int
    size: int
    kind: str  # "func" | "object" | "other"
    section: str


@dataclass(frozen=True)
class LoadedElf:
    """An ELF after placement and relocation: what the engine maps, plus what the finder reads."""

    path: str
    sha256: str
    relocatable: bool
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    #: the relocated 8-byte entries of every ``__patchable_function_entries`` section
    patchable_entries: tuple[int, ...]
    #: the file's bytes with debug sections relocated (for DWARF readers)
    debug_image: bytes = field(repr=False, default=b"")

    def symbol(self, name: str) -> Symbol | None:
        return next((s for s in self.symbols if s.name == name), None)

    def section_at(self, addr: int) -> Section | None:
        return next((s for s in self.sections if s.addr <= addr < s.addr + len(s.data)), None)

    def read(self, addr: int, size: int) -> bytes:
        sec = self.section_at(addr)
        if sec is None or addr + size > sec.addr + len(sec.data):
            raise ElfError(f"{addr:#x}+{size} is not inside one loaded section")
        return sec.data[addr - sec.addr : addr - sec.addr + size]


def read_elf_bytes(path: str) -> bytes:
    """The file's bytes, refusing non-regular files and oversized ones before reading."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ElfError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ElfError(f"{path}: not a regular file")
    if st.st_size > MAX_ELF_BYTES:
        raise ElfError(f"{path}: {st.st_size} bytes is larger than the {MAX_ELF_BYTES >> 20} MiB limit")
    with open(path, "rb") as fh:
        return fh.read()


def _align(v: int, a: int) -> int:
    a = max(a, 1)
    return (v + a - 1) // a * a


def load_elf(path: str, *, base: int = 0x10000, externals: Mapping[str, int] | None = None) -> LoadedElf:
    """Parse, place and relocate ``path``. Raises ElfError with a one-line reason."""
    raw = read_elf_bytes(path)
    try:
        elf = ELFFile(io.BytesIO(raw))
        if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 64 or not elf.little_endian:
            raise ElfError(f"{path}: not a 64-bit little-endian RISC-V ELF ({elf['e_machine']}, ELF{elf.elfclass})")
        kind = elf["e_type"]
        if kind not in ("ET_REL", "ET_EXEC", "ET_DYN"):
            raise ElfError(f"{path}: ELF type {kind} cannot be loaded")
        return _load(path, raw, elf, base, dict(externals or {}), relocatable=kind == "ET_REL")
    except ELFError as exc:
        raise ElfError(f"{path}: not a readable ELF file ({exc})") from None


def _load(path: str, raw: bytes, elf: Any, base: int, externals: dict[str, int], *, relocatable: bool) -> LoadedElf:
    secs = list(elf.iter_sections())
    data: dict[int, bytearray] = {}
    for i, s in enumerate(secs):
        if s["sh_type"] == "SHT_NOBITS":
            data[i] = bytearray(s["sh_size"])
        elif s["sh_type"] not in ("SHT_NULL",):
            data[i] = bytearray(s.data())
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise ElfError(f"{path}: no symbol table (a stripped file cannot name its functions)")
    moves = _align_sections(secs, data) if relocatable else {}
    addr: dict[int, int] = {}
    cursor = base
    for i, s in enumerate(secs):
        if not s["sh_flags"] & SH_FLAGS.SHF_ALLOC:
            addr[i] = 0  # non-allocated (debug) sections are relocated as if at 0
            continue
        if relocatable:
            cursor = _align(cursor, s["sh_addralign"])
            addr[i] = cursor
            cursor += len(data[i])
        else:
            addr[i] = s["sh_addr"]
    sym_addr: list[int | None] = []
    sym_size: list[int] = []
    for sym in symtab.iter_symbols():
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            sym_addr.append(externals.get(sym.name) if sym.name else 0)
        elif shndx == "SHN_ABS":
            sym_addr.append(sym["st_value"])
        elif isinstance(shndx, int):
            value = sym["st_value"] if relocatable else sym["st_value"] - secs[shndx]["sh_addr"]
            sym_addr.append(addr.get(shndx, 0) + _moved(moves.get(shndx), value))
        else:  # SHN_COMMON etc.
            sym_addr.append(None)
        shndx_m = moves.get(shndx) if isinstance(shndx, int) else None
        end = sym["st_value"] + sym["st_size"]
        sym_size.append(_moved(shndx_m, end) - _moved(shndx_m, sym["st_value"]) if shndx_m else sym["st_size"])

    patched_file = bytearray(raw)
    if relocatable:
        for rs in secs:
            if not isinstance(rs, RelocationSection) or rs["sh_type"] != "SHT_RELA":
                if isinstance(rs, RelocationSection):
                    raise ElfError(f"{path}: REL relocations in {rs.name} (RISC-V objects use RELA)")
                continue
            target = rs["sh_info"]
            _relocate_section(path, secs[target].name, data[target], addr[target], rs, symtab, sym_addr,
                              moves.get(target), moves)
            tsec = secs[target]
            if not tsec["sh_flags"] & SH_FLAGS.SHF_ALLOC and tsec["sh_type"] != "SHT_NOBITS":
                off = tsec["sh_offset"]
                patched_file[off : off + tsec["sh_size"]] = data[target]  # debug sections never shrink

    sections = tuple(
        Section(
            name=s.name,
            addr=addr[i],
            data=bytes(data[i]),
            executable=bool(s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR),
            writable=bool(s["sh_flags"] & SH_FLAGS.SHF_WRITE),
        )
        for i, s in enumerate(secs)
        if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"] > 0
    )
    symbols = []
    for n, sym in enumerate(symtab.iter_symbols()):
        a = sym_addr[n]
        shndx = sym["st_shndx"]
        if not sym.name or a is None or not isinstance(shndx, int):
            continue
        st_type = sym["st_info"]["type"]
        symbols.append(
            Symbol(
                name=sym.name,
                addr=a,
                size=sym_size[n],
                kind={"STT_FUNC": "func", "STT_OBJECT": "object"}.get(st_type, "other"),
                section=secs[shndx].name,
            )
        )
    entries: list[int] = []
    for i, s in enumerate(secs):
        if s.name == "__patchable_function_entries":
            buf = data[i]
            entries.extend(int.from_bytes(buf[k : k + 8], "little") for k in range(0, len(buf) - 7, 8))
    return LoadedElf(
        path=os.path.abspath(path),
        sha256=hashlib.sha256(raw).hexdigest(),
        relocatable=relocatable,
        sections=sections,
        symbols=tuple(symbols),
        patchable_entries=tuple(entries),
        debug_image=bytes(patched_file),
    )


def _relocate_section(path: str, name: str, buf: bytearray, base: int, rs: RelocationSection, symtab: Any,
                      sym_addr: list[int | None], here: Moves | None, moves: dict[int, Moves]) -> None:
    relocs: list[R.Reloc] = []
    for rel in rs.iter_relocations():
        t = rel["r_info_type"]
        if t not in R.SUPPORTED:
            raise ElfError(f"{path}: unsupported relocation {R.reloc_name(t)} in {name} at offset {rel['r_offset']:#x}")
        if t in R.HINTS:
            continue
        si = rel["r_info_sym"]
        s = sym_addr[si]
        sym = symtab.get_symbol(si)
        if s is None:
            raise ElfError(f"{path}: undefined symbol {sym.name!r} referenced from {name} (give it an address)")
        addend = rel["r_addend"]
        if sym["st_info"]["type"] == "STT_SECTION" and isinstance(sym["st_shndx"], int):
            m = moves.get(sym["st_shndx"])  # section + addend names a place inside a shrunk section
            addend = _moved(m, addend) if m else addend
        off = _moved(here, rel["r_offset"])
        relocs.append(R.Reloc(type=t, offset=off, s=s, a=addend, p=base + off))
    pcrel_hi = {r.p: r.s + r.a - r.p for r in relocs if r.type in R.PCREL_HI}
    for r in relocs:
        R.apply(buf, r, pcrel_hi)


#: deletions in one section: sorted (offset, bytes removed there)
Moves = list[tuple[int, int]]


def _moved(moves: Moves | None, off: int) -> int:
    """``off`` after the deletions before it (a place inside a deleted run maps to its start)."""
    if not moves:
        return off
    out = off
    for at, n in moves:
        if at >= off:
            break
        out -= min(n, off - at)
    return out


def _align_sections(secs: list[Any], data: dict[int, bytearray]) -> dict[int, Moves]:
    """Do what the linker does for ``R_RISCV_ALIGN``: the assembler padded each alignment point
    with the worst-case nops (the addend); keep just the padding the placement needs.

    Without this, code after a ``.align`` (e.g. ``-falign-functions=8``) would sit off its
    alignment by the excess padding. Sections are placed at their own alignment, which is at
    least every alignment point's inside them, so offsets decide."""
    moves: dict[int, Moves] = {}
    for rs in secs:
        if not isinstance(rs, RelocationSection) or rs["sh_type"] != "SHT_RELA":
            continue
        target = rs["sh_info"]
        points = sorted((r["r_offset"], r["r_addend"]) for r in rs.iter_relocations() if r["r_info_type"] == R.R_RISCV_ALIGN)
        if not points:
            continue
        buf = data[target]
        removed: Moves = []
        shift = 0
        out = bytearray()
        prev = 0
        for off, pad in points:
            align = 1
            while align <= pad:
                align <<= 1
            new_off = off - shift
            need = -new_off % align
            out += buf[prev:off]
            out += _nops(need)
            removed.append((off + need, pad - need))
            shift += pad - need
            prev = off + pad
        out += buf[prev:]
        data[target][:] = out
        moves[target] = removed
    return moves


def _nops(n: int) -> bytes:
    """``n`` bytes of nops: 4-byte nops, then one c.nop for an odd half-word."""
    return (R.NOP4.to_bytes(4, "little") * (n // 4)) + (R.C_NOP.to_bytes(2, "little") if n % 4 else b"")
