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


def _reloc_name(t: int) -> str:
    from elftools.elf.enums import ENUM_RELOC_TYPE_RISCV  # type: ignore[attr-defined]

    names = {v: k for k, v in ENUM_RELOC_TYPE_RISCV.items()}
    return str(names.get(t, f"type {t}"))


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
    addr: dict[int, int] = {}
    cursor = base
    for i, s in enumerate(secs):
        if not s["sh_flags"] & SH_FLAGS.SHF_ALLOC:
            addr[i] = 0  # non-allocated (debug) sections are relocated as if at 0
            continue
        if relocatable:
            cursor = _align(cursor, s["sh_addralign"])
            addr[i] = cursor
            cursor += s["sh_size"]
        else:
            addr[i] = s["sh_addr"]
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise ElfError(f"{path}: no symbol table (a stripped file cannot name its functions)")
    sym_addr: list[int | None] = []
    for sym in symtab.iter_symbols():
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            sym_addr.append(externals.get(sym.name) if sym.name else 0)
        elif shndx == "SHN_ABS":
            sym_addr.append(sym["st_value"])
        elif isinstance(shndx, int):
            sym_addr.append(addr.get(shndx, 0) + (sym["st_value"] if relocatable else sym["st_value"] - secs[shndx]["sh_addr"]))
        else:  # SHN_COMMON etc.
            sym_addr.append(None)

    data: dict[int, bytearray] = {}
    for i, s in enumerate(secs):
        if s["sh_type"] == "SHT_NOBITS":
            data[i] = bytearray(s["sh_size"])
        elif s["sh_type"] not in ("SHT_NULL",):
            data[i] = bytearray(s.data())
    patched_file = bytearray(raw)
    if relocatable:
        for rs in secs:
            if not isinstance(rs, RelocationSection) or rs["sh_type"] != "SHT_RELA":
                if isinstance(rs, RelocationSection):
                    raise ElfError(f"{path}: REL relocations in {rs.name} (RISC-V objects use RELA)")
                continue
            target = rs["sh_info"]
            _relocate_section(path, secs[target].name, data[target], addr[target], rs, symtab, sym_addr)
            tsec = secs[target]
            if not tsec["sh_flags"] & SH_FLAGS.SHF_ALLOC and tsec["sh_type"] != "SHT_NOBITS":
                off = tsec["sh_offset"]
                patched_file[off : off + tsec["sh_size"]] = data[target]

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
                size=sym["st_size"],
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
                      sym_addr: list[int | None]) -> None:
    relocs: list[R.Reloc] = []
    for rel in rs.iter_relocations():
        t = rel["r_info_type"]
        if t not in R.SUPPORTED:
            raise ElfError(f"{path}: unsupported relocation {_reloc_name(t)} in {name} at offset {rel['r_offset']:#x}")
        if t in R.HINTS:
            continue
        si = rel["r_info_sym"]
        s = sym_addr[si]
        if s is None:
            sym = symtab.get_symbol(si)
            raise ElfError(f"{path}: undefined symbol {sym.name!r} referenced from {name} (give it an address)")
        relocs.append(R.Reloc(type=t, offset=rel["r_offset"], s=s, a=rel["r_addend"], p=base + rel["r_offset"]))
    pcrel_hi = {r.p: r.s + r.a - r.p for r in relocs if r.type in R.PCREL_HI}
    for r in relocs:
        R.apply(buf, r, pcrel_hi)
