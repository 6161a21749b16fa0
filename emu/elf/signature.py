"""Function signatures from DWARF (pyelftools), in the terms a trampoline sees them (BTF).

The trampoline only knows argument sizes, whether an argument is a struct, signedness, and the
return size and sign: exactly what the kernel distils from BTF (``btf_distill_func_proto``). Types
the kernel refuses there are refused here in one line: floating point, structs over 16 bytes,
variadic functions.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from elftools.elf.elffile import ELFFile

from sledfuzz.emu.elf.image import ElfError, LoadedElf
from sledfuzz.model.case import Arg

DW_ATE_BOOLEAN = 0x02
DW_ATE_FLOAT = 0x04
DW_ATE_SIGNED = 0x05
DW_ATE_SIGNED_CHAR = 0x06
DW_ATE_UNSIGNED = 0x07
DW_ATE_UNSIGNED_CHAR = 0x08

__all__ = ["Signature", "parse_signature", "signatures"]


@dataclass(frozen=True)
class Signature:
    """Arguments as BTF would describe them; ``ret_size`` 0 for void."""

    args: tuple[Arg, ...]
    ret_size: int
    ret_signed: bool
    pointers: tuple[bool, ...] = ()

    def render(self) -> str:
        def one(a: Arg, ptr: bool) -> str:
            return "p" if ptr else f"{a.size}{'S' if a.is_struct else ('s' if a.signed else '')}"

        ptrs = self.pointers or (False,) * len(self.args)
        ret = f"{self.ret_size}{'s' if self.ret_signed else ''}" if self.ret_size else "void"
        return f"({','.join(one(a, p) for a, p in zip(self.args, ptrs, strict=True))})->{ret}"


_ARG = re.compile(r"^(p|(1|2|4|8)s?|([1-9]|1[0-6])S)$")


def parse_signature(text: str) -> Signature:
    """``NAME=(8,4s,16S,p)->4s``'s right-hand side: sizes, ``s`` signed, ``S`` struct, ``p``
    pointer, ``void`` return. For objects without debug info (given on the command line)."""
    m = re.fullmatch(r"\s*\(([^)]*)\)\s*->\s*(void|(1|2|4|8)s?)\s*", text)
    if not m:
        raise ValueError(f"signature {text!r}: expected like '(8,4s,16S,p)->4s' (s signed, S struct, p pointer)")
    parts = [p.strip() for p in m.group(1).split(",") if p.strip()]
    args: list[Arg] = []
    ptrs: list[bool] = []
    for p in parts:
        if not _ARG.match(p):
            raise ValueError(f"signature argument {p!r}: expected 1, 2, 4, 8 (s for signed), 1S..16S or p")
        if p == "p":
            args.append(Arg(size=8))
            ptrs.append(True)
        elif p.endswith("S"):
            args.append(Arg(size=int(p[:-1]), is_struct=True))
            ptrs.append(False)
        else:
            args.append(Arg(size=int(p.rstrip("s")), signed=p.endswith("s")))
            ptrs.append(False)
    ret = m.group(2)
    if ret == "void":
        return Signature(tuple(args), 0, False, tuple(ptrs))
    return Signature(tuple(args), int(ret.rstrip("s")), ret.endswith("s"), tuple(ptrs))


def _attr(die: Any, name: str) -> Any:
    a = die.attributes.get(name)
    return None if a is None else a.value


def _name(die: Any) -> str | None:
    v = _attr(die, "DW_AT_name")
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _origin(die: Any) -> Any:
    """Follow DW_AT_abstract_origin / DW_AT_specification to the DIE that carries names and types."""
    for key in ("DW_AT_abstract_origin", "DW_AT_specification"):
        if key in die.attributes:
            return die.get_DIE_from_attribute(key)
    return die


def _strip(die: Any) -> Any:
    while die is not None and die.tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
                                          "DW_TAG_restrict_type", "DW_TAG_atomic_type"):
        if "DW_AT_type" not in die.attributes:
            return None
        die = die.get_DIE_from_attribute("DW_AT_type")
    return die


def _type_of(die: Any) -> Any:
    return _strip(die.get_DIE_from_attribute("DW_AT_type")) if "DW_AT_type" in die.attributes else None


def _arg(fn: str, i: int, t: Any) -> tuple[Arg, bool]:
    where = f"{fn}: argument {i}"
    if t is None:
        raise ElfError(f"{where}: void argument")
    if t.tag == "DW_TAG_pointer_type":
        return Arg(size=8), True
    if t.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
        size = _attr(t, "DW_AT_byte_size")
        if size is None or not 1 <= size <= 16:
            raise ElfError(f"{where}: a struct of {size} bytes (the trampoline takes structs of 1..16 bytes)")
        return Arg(size=size, is_struct=True), False
    size, signed = _scalar(where, t)
    return Arg(size=size, signed=signed), False


def _scalar(where: str, t: Any) -> tuple[int, bool]:
    if t.tag == "DW_TAG_enumeration_type":
        under = _type_of(t)
        signed = under is not None and _attr(under, "DW_AT_encoding") in (DW_ATE_SIGNED, DW_ATE_SIGNED_CHAR)
        return int(_attr(t, "DW_AT_byte_size")), signed
    if t.tag != "DW_TAG_base_type":
        raise ElfError(f"{where}: type {t.tag} is not one a trampoline can take")
    enc = _attr(t, "DW_AT_encoding")
    if enc == DW_ATE_FLOAT:
        raise ElfError(f"{where}: floating point (the trampoline does not take float arguments)")
    size = int(_attr(t, "DW_AT_byte_size"))
    if size not in (1, 2, 4, 8):
        raise ElfError(f"{where}: a {size}-byte scalar")
    return size, enc in (DW_ATE_SIGNED, DW_ATE_SIGNED_CHAR)


def _signature(fn: str, die: Any) -> Signature:
    params = [c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"]
    if any(c.tag == "DW_TAG_unspecified_parameters" for c in die.iter_children()):
        raise ElfError(f"{fn}: variadic (the trampoline cannot describe it)")
    args: list[Arg] = []
    ptrs: list[bool] = []
    for i, p in enumerate(params):
        a, ptr = _arg(fn, i, _type_of(_origin(p)))
        args.append(a)
        ptrs.append(ptr)
    rt = _type_of(die)
    if rt is None:
        return Signature(tuple(args), 0, False, tuple(ptrs))
    if rt.tag == "DW_TAG_pointer_type":
        return Signature(tuple(args), 8, False, tuple(ptrs))
    if rt.tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
        raise ElfError(f"{fn}: returns a struct (not modelled)")
    size, signed = _scalar(f"{fn}: return", rt)
    return Signature(tuple(args), size, signed, tuple(ptrs))


def signatures(elf: LoadedElf) -> dict[str, Signature | ElfError]:
    """Signature (or the one-line reason it cannot be one) of every named subprogram with a type.

    Raises ElfError when the file has no DWARF at all."""
    if not elf.debug_image:
        raise ValueError("signatures() needs an ELF loaded with with_debug=True")
    f = ELFFile(io.BytesIO(elf.debug_image))
    if not f.has_dwarf_info() or f.get_section_by_name(".debug_info") is None:
        raise ElfError(f"{elf.path}: no debug info (compile with -g, or give signatures with --signature)")
    dwarf = f.get_dwarf_info(relocate_dwarf_sections=False)  # debug sections were relocated by the loader
    out: dict[str, Signature | ElfError] = {}
    for cu in dwarf.iter_CUs():
        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_subprogram" or _attr(die, "DW_AT_declaration"):
                continue
            src = _origin(die)
            name = _name(src)
            if not name or name in out:
                continue
            try:
                out[name] = _signature(name, src)
            except ElfError as exc:
                out[name] = exc
    return out
