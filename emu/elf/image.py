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

from sledfuzz.emu.elf import relocate as R
from sledfuzz.emu.elf.relocate import ElfError

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


@dataclass(frozen=True)
class _Sym:
    name: str
    shndx: int | str
    value: int  # section offset after alignment trimming (relocatable) or link address
    size: int
    kind: str
    is_section: bool


@dataclass(frozen=True)
class _Rel:
    type: int
    offset: int  # after alignment trimming
    sym: int
    addend: int  # after alignment trimming when the symbol is a section symbol


@dataclass(frozen=True)
class _Sec:
    name: str
    data: bytes
    align: int
    alloc: bool
    executable: bool
    writable: bool
    link_addr: int
    file_offset: int
    nobits: bool


@dataclass(frozen=True)
class _Parsed:
    """Everything base-independent about a file: parsed once, placed many times."""

    path: str
    sha256: str
    relocatable: bool
    sections: tuple[_Sec, ...]
    symbols: tuple[_Sym, ...]
    relocs: tuple[tuple[int, tuple[_Rel, ...]], ...]  # (target section index, its relocations)
    raw: bytes = field(repr=False)


def load_elf(path: str, *, base: int = 0x10000, externals: Mapping[str, int] | None = None,
             with_debug: bool = True) -> LoadedElf:
    """Parse (cached by content), place and relocate ``path``. Raises ElfError in one line.

    ``with_debug`` False skips relocating the debug sections (``debug_image`` is then empty):
    placing a function for a run needs only the allocated sections."""
    raw = read_elf_bytes(path)
    parsed = _parse_cached(os.path.abspath(path), hashlib.sha256(raw).hexdigest(), raw)
    return _place(parsed, base, dict(externals or {}), with_debug)


_PARSED: dict[tuple[str, str], _Parsed] = {}


def _parse_cached(path: str, sha: str, raw: bytes) -> _Parsed:
    hit = _PARSED.get((path, sha))
    if hit is None:
        hit = _parse(path, sha, raw)
        if len(_PARSED) > 32:
            _PARSED.clear()
        _PARSED[(path, sha)] = hit
    return hit


def _parse(path: str, sha: str, raw: bytes) -> _Parsed:
    try:
        elf = ELFFile(io.BytesIO(raw))
        if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 64 or not elf.little_endian:
            raise ElfError(f"{path}: not a 64-bit little-endian RISC-V ELF ({elf['e_machine']}, ELF{elf.elfclass})")
        kind = elf["e_type"]
        if kind not in ("ET_REL", "ET_EXEC", "ET_DYN"):
            raise ElfError(f"{path}: ELF type {kind} cannot be loaded")
        return _parse_elf(path, sha, raw, elf, relocatable=kind == "ET_REL")
    except ELFError as exc:
        raise ElfError(f"{path}: not a readable ELF file ({exc})") from None


def _parse_elf(path: str, sha: str, raw: bytes, elf: Any, *, relocatable: bool) -> _Parsed:
    secs = list(elf.iter_sections())
    data: dict[int, bytearray] = {}
    for i, s in enumerate(secs):
        if s["sh_type"] == "SHT_NOBITS":
            data[i] = bytearray(s["sh_size"])
        elif s["sh_type"] != "SHT_NULL":
            data[i] = bytearray(s.data())
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise ElfError(f"{path}: no symbol table (a stripped file cannot name its functions)")
    moves = _align_sections(secs, data) if relocatable else {}
    syms: list[_Sym] = []
    for sym in symtab.iter_symbols():
        shndx = sym["st_shndx"]
        m = moves.get(shndx) if isinstance(shndx, int) else None
        value, size = sym["st_value"], sym["st_size"]
        if m:
            value, size = _moved(m, value), _moved(m, value + size) - _moved(m, value)
        st_type = sym["st_info"]["type"]
        syms.append(_Sym(sym.name, shndx, value, size, {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(st_type, "other"),
                         st_type == "STT_SECTION"))
    relocs: list[tuple[int, tuple[_Rel, ...]]] = []
    if relocatable:
        for rs in secs:
            if not isinstance(rs, RelocationSection):
                continue
            if rs["sh_type"] != "SHT_RELA":
                raise ElfError(f"{path}: REL relocations in {rs.name} (RISC-V objects use RELA)")
            target = rs["sh_info"]
            out: list[_Rel] = []
            for rel in rs.iter_relocations():
                t = rel["r_info_type"]
                if t not in R.SUPPORTED:
                    raise ElfError(f"{path}: unsupported relocation {R.reloc_name(t)} in {secs[target].name} "
                                   f"at offset {rel['r_offset']:#x}")
                if t in R.HINTS:
                    continue
                si = rel["r_info_sym"]
                addend = rel["r_addend"]
                sym_ = syms[si]
                if sym_.is_section and isinstance(sym_.shndx, int) and moves.get(sym_.shndx):
                    addend = _moved(moves[sym_.shndx], addend)  # a place inside a shrunk section
                out.append(_Rel(t, _moved(moves.get(target), rel["r_offset"]), si, addend))
            relocs.append((target, tuple(out)))
    sections = tuple(
        _Sec(
            name=s.name,
            data=bytes(data.get(i, b"")),
            align=max(1, s["sh_addralign"]),
            alloc=bool(s["sh_flags"] & SH_FLAGS.SHF_ALLOC),
            executable=bool(s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR),
            writable=bool(s["sh_flags"] & SH_FLAGS.SHF_WRITE),
            link_addr=s["sh_addr"],
            file_offset=s["sh_offset"],
            nobits=s["sh_type"] == "SHT_NOBITS",
        )
        for i, s in enumerate(secs)
    )
    return _Parsed(path, sha, relocatable, sections, tuple(syms), tuple(relocs), raw)


def _place(p: _Parsed, base: int, externals: dict[str, int], with_debug: bool) -> LoadedElf:
    addr: dict[int, int] = {}
    cursor = base
    for i, s in enumerate(p.sections):
        if not s.alloc:
            addr[i] = 0  # non-allocated (debug) sections are relocated as if at 0
        elif p.relocatable:
            cursor = _align(cursor, s.align)
            addr[i] = cursor
            cursor += len(s.data)
        else:
            addr[i] = s.link_addr
    sym_addr: list[int | None] = []
    for sym in p.symbols:
        if sym.shndx == "SHN_UNDEF":
            sym_addr.append(externals.get(sym.name) if sym.name else 0)
        elif sym.shndx == "SHN_ABS":
            sym_addr.append(sym.value)
        elif isinstance(sym.shndx, int):
            local = sym.value if p.relocatable else sym.value - p.sections[sym.shndx].link_addr
            sym_addr.append(addr.get(sym.shndx, 0) + local)
        else:  # SHN_COMMON etc.
            sym_addr.append(None)
    data = {i: bytearray(s.data) for i, s in enumerate(p.sections)}
    patched_file = bytearray(p.raw)
    for target, rels in p.relocs:
        sec = p.sections[target]
        if not sec.alloc and not with_debug:
            continue
        _relocate(p.path, sec.name, data[target], addr[target], rels, p.symbols, sym_addr)
        if not sec.alloc and not sec.nobits:
            patched_file[sec.file_offset : sec.file_offset + len(sec.data)] = data[target]  # debug sections never shrink
    sections = tuple(
        Section(name=s.name, addr=addr[i], data=bytes(data[i]), executable=s.executable, writable=s.writable)
        for i, s in enumerate(p.sections)
        if s.alloc and len(s.data) > 0
    )
    symbols = tuple(
        Symbol(name=sym.name, addr=a, size=sym.size, kind=sym.kind, section=p.sections[sym.shndx].name)
        for sym, a in zip(p.symbols, sym_addr, strict=True)
        if sym.name and a is not None and isinstance(sym.shndx, int)
    )
    entries: list[int] = []
    for i, s in enumerate(p.sections):
        if s.name == "__patchable_function_entries":
            buf = data[i]
            entries.extend(int.from_bytes(buf[k : k + 8], "little") for k in range(0, len(buf) - 7, 8))
    return LoadedElf(
        path=p.path,
        sha256=p.sha256,
        relocatable=p.relocatable,
        sections=sections,
        symbols=symbols,
        patchable_entries=tuple(entries),
        debug_image=bytes(patched_file) if with_debug else b"",
    )


def _relocate(path: str, name: str, buf: bytearray, base: int, rels: tuple[_Rel, ...], syms: tuple[_Sym, ...],
              sym_addr: list[int | None]) -> None:
    relocs: list[R.Reloc] = []
    for rel in rels:
        s = sym_addr[rel.sym]
        if s is None:
            raise ElfError(f"{path}: undefined symbol {syms[rel.sym].name!r} referenced from {name} (give it an address)")
        relocs.append(R.Reloc(type=rel.type, offset=rel.offset, s=s, a=rel.addend, p=base + rel.offset))
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
