"""What makes a case well-formed: ``validate`` raises ``CaseError`` naming the first field that is
out of its domain (arguments, values, body, links, sled key, layout alignment and overlaps).
Runs on every ``Case`` construction, so the common path builds no strings.
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Protocol

from sledfuzz.model.caps import TARGET_KINDS
from sledfuzz.model.case_parts import (
    DATA_SIZE,
    LAYOUT_POINTERS,
    LAYOUT_REGIONS,
    LINK_KINDS,
    MASK64,
    MAX_ARGS_REPRESENTABLE,
    MAX_LINKS_REPRESENTABLE,
    Body,
    CaseError,
    Function,
    Layout,
    Link,
)


class Case(Protocol):
    """What validation reads of a ``model.case.Case`` (which is built on this module, so it is
    named structurally here rather than imported)."""

    @property
    def target(self) -> str: ...
    @property
    def function(self) -> Function: ...
    @property
    def sled(self) -> str: ...
    @property
    def links(self) -> tuple[Link, ...]: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def flags(self) -> int | None: ...
    @property
    def seed(self) -> int: ...



def validate(case: Case) -> None:
    """Raise CaseError naming the first field that is out of its domain."""
    if case.target not in TARGET_KINDS:
        raise CaseError("target", f"expected one of {', '.join(TARGET_KINDS)}, got {case.target!r}")
    fn = case.function
    if len(fn.args) > MAX_ARGS_REPRESENTABLE:
        raise CaseError("function.args", f"at most {MAX_ARGS_REPRESENTABLE} arguments, got {len(fn.args)}")
    for i, arg in enumerate(fn.args):
        where = f"function.args[{i}]"
        if arg.is_struct:
            if not 1 <= arg.size <= 16:
                raise CaseError(f"{where}.size", f"a struct is 1..16 bytes, got {arg.size}")
        elif arg.size not in (1, 2, 4, 8):
            raise CaseError(f"{where}.size", f"a scalar is 1, 2, 4 or 8 bytes, got {arg.size}")
    if len(fn.values) != fn.nr_slots:
        raise CaseError("function.values", f"expected one value per slot ({fn.nr_slots}), got {len(fn.values)}")
    for i, v in enumerate(fn.values):
        _check_u64(f"function.values[{i}]", v)
    body = fn.body
    if len(body.coeffs) > fn.nr_slots:
        raise CaseError("function.body.coeffs", f"at most one coefficient per slot ({fn.nr_slots})")
    for i, c in enumerate(body.coeffs):
        if not -(1 << 11) <= c < (1 << 11):
            raise CaseError(f"function.body.coeffs[{i}]", f"expected -2048..2047, got {c}")
    _check_u64("function.body.k", body.k)
    _check_u64("function.body.a5", body.a5)
    if not 0 <= body.uses_saved <= 11:
        raise CaseError("function.body.uses_saved", f"expected 0..11, got {body.uses_saved}")
    if body.store is not None:
        st = body.store
        if not 0 <= st.slot < fn.nr_slots:
            raise CaseError("function.body.store.slot", f"expected a slot 0..{fn.nr_slots - 1}, got {st.slot}")
        _check_u64("function.body.store.value", st.value)
        ptr = fn.values[st.slot]
        if not (case.layout.data <= ptr and ptr + 8 <= case.layout.data + DATA_SIZE and ptr % 8 == 0):
            raise CaseError(
                f"function.values[{st.slot}]",
                f"the store's slot must hold an 8-byte aligned pointer into the data region "
                f"[{case.layout.data:#x}, {case.layout.data + DATA_SIZE:#x}), got {ptr:#x}",
            )
    if fn.compiled is not None:
        _validate_compiled(case)
    if fn.ret_size not in (0, 1, 2, 4, 8):
        raise CaseError("function.ret_size", f"expected 0, 1, 2, 4 or 8, got {fn.ret_size}")
    if not isinstance(case.sled, str) or not _sled_key_ok(case.sled):
        raise CaseError("sled", f"expected 'N,M/c' or 'N,M/w' (patchable-function-entry), got {case.sled!r}")
    if len(case.links) > MAX_LINKS_REPRESENTABLE:
        raise CaseError("links", f"at most {MAX_LINKS_REPRESENTABLE} links, got {len(case.links)}")
    for i, link in enumerate(case.links):
        if link.kind not in LINK_KINDS:
            raise CaseError(f"links[{i}].kind", f"expected one of {', '.join(LINK_KINDS)}, got {link.kind!r}")
        _check_u64(f"links[{i}].r0", link.r0)
        _check_u64(f"links[{i}].cookie", link.cookie)
        _check_u64(f"links[{i}].enter", link.enter)
        if link.session_cookie and link.kind != "fsession":
            raise CaseError(f"links[{i}].session_cookie", "only an fsession program can call bpf_session_cookie()")
    if case.target == "struct_ops" and (len(case.links) != 1 or case.links[0].kind != "fentry"):
        raise CaseError("links", "a struct_ops case has exactly one fentry link")
    _check_layout(case.layout)
    if case.flags is not None and not 0 <= case.flags < (1 << 10):
        raise CaseError("flags", f"expected a BPF_TRAMP_F_* mask below 0x400, got {case.flags:#x}")
    if not 0 <= case.seed < (1 << 64):
        raise CaseError("seed", f"expected 0..2^64-1, got {case.seed}")


def _validate_compiled(case: Case) -> None:
    comp = case.function.compiled
    assert comp is not None
    if case.target != "kernel_function":
        raise CaseError("function.compiled", f"a compiled function is traced as a kernel_function, not {case.target}")
    if case.function.body != Body():
        raise CaseError("function.body", "a compiled function has no mini-language body (leave it empty)")
    if not comp.path or not comp.symbol:
        raise CaseError("function.compiled", "path and symbol are required")
    if len(comp.sha256) != 64 or any(c not in "0123456789abcdef" for c in comp.sha256):
        raise CaseError("function.compiled.sha256", f"expected 64 lowercase hex digits, got {comp.sha256!r}")
    _check_u64("function.compiled.ret", comp.ret)
    for i, st in enumerate(comp.stores):
        if st.size not in (1, 2, 4, 8):
            raise CaseError(f"function.compiled.stores[{i}].size", f"expected 1, 2, 4 or 8, got {st.size}")
        _check_u64(f"function.compiled.stores[{i}].addr", st.addr)
        if not 0 <= st.value < (1 << (8 * st.size)):
            raise CaseError(f"function.compiled.stores[{i}].value", f"does not fit {st.size} bytes: {st.value:#x}")


_LAYOUT_FIELDS = tuple(f.name for f in fields(Layout))
_LAYOUT_REGIONS = tuple((name, *spec) for name, spec in LAYOUT_REGIONS.items())
_TOP = MASK64 + 1


def _check_layout(lay: Layout) -> None:
    """Every address aligned as a kernel's would be, every object inside the 64-bit address space,
    no two mapped objects sharing a byte (``LAYOUT_REGIONS``). Runs for every generated case:
    the common path builds no strings."""
    for name in _LAYOUT_FIELDS:
        v = getattr(lay, name)
        if type(v) is not int or not 0 <= v <= MASK64:
            _check_u64(f"layout.{name}", v)
    spans: list[tuple[int, int, str]] = []
    for name, align, before, after in _LAYOUT_REGIONS:
        addr = getattr(lay, name)
        if addr % align:
            raise CaseError(f"layout.{name}", f"expected a {align}-byte aligned address, got {addr:#x}")
        lo, hi = addr - before, addr + after
        if lo < 0 or hi > _TOP:
            raise CaseError(f"layout.{name}", f"[{lo & MASK64:#x}, {hi & MASK64:#x}) wraps around the address space "
                                              f"(address {addr:#x})")
        spans.append((lo, hi, name))
    for name, (align, extent) in LAYOUT_POINTERS.items():
        addr = getattr(lay, name)
        if addr % align:
            raise CaseError(f"layout.{name}", f"expected a {align}-byte aligned address, got {addr:#x}")
        if addr + extent > _TOP:
            raise CaseError(f"layout.{name}", f"{addr:#x} + {extent:#x} wraps around the address space")
    spans.sort()
    for (lo1, hi1, n1), (lo2, hi2, n2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise CaseError(f"layout.{n2}", f"[{lo2:#x}, {hi2:#x}) overlaps layout.{n1} [{lo1:#x}, {hi1:#x})")


def _sled_key_ok(key: str) -> bool:
    try:
        nm, width = key.split("/")
        n_s, m_s = nm.split(",")
        n, m = int(n_s), int(m_s)
    except ValueError:
        return False
    return width in ("c", "w") and 0 < n <= 16 and 0 <= m < n


def _check_u64(path: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MASK64:
        raise CaseError(path, f"expected an unsigned 64-bit integer, got {value!r}")
