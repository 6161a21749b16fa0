"""Cases whose traced function is real compiled code (``sledfuzz fuzz --elf``).

An ELF target is one function of an object with a sled the implementation supports and a
signature the trampoline can take. A case for it is drawn like any other (links, flags, layout,
argument values: ``fuzz.shape``), with argument values shaped as a real caller passes them (psABI
extension of narrow scalars, pointer slots into the data region), and then *measured*: the
function runs untraced in the same scenario (same memory, same registers, the compiler's own sled
bytes), and its a0 and its stores outside its frame become the case's ``CompiledBody``. The model
reasons from those numbers; nothing about the body is written by hand.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st

from sledfuzz.emu.elf.functions import TracedFunction, traced_functions
from sledfuzz.emu.elf.image import ElfError, LoadedElf, load_elf
from sledfuzz.emu.elf.placement import symbol_offset
from sledfuzz.emu.elf.signature import Signature, parse_signature, signatures
from sledfuzz.emu.impls.api import Implementation, Patcher
from sledfuzz.emu.scenario import LayoutError, run_case
from sledfuzz.fuzz.shape import Draw, Shape, build_case, pick, value64
from sledfuzz.fuzz.strategies import HypothesisDraw
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import DATA_SIZE, LAYOUT_REGIONS, MASK64, Body, BodyStore, Case, CompiledBody, Function, Layout

__all__ = [
    "ElfSource",
    "ElfTarget",
    "MeasureError",
    "case_for",
    "compiled_candidate",
    "draw_elf_case",
    "elf_case_strategy",
    "elf_targets",
    "measure",
    "shape_for",
]


class MeasureError(Exception):
    """The untraced run of a compiled function did not return normally for these inputs."""


@dataclass(frozen=True)
class ElfTarget:
    """One traceable function of an object, as the implementation will see it."""

    path: str
    sha256: str
    fn: TracedFunction
    sig: Signature
    offset: int  # symbol offset from the object's load base
    align: int  # the load base's alignment

    @property
    def name(self) -> str:
        return self.fn.name


def elf_targets(path: str, impl: Implementation, *, symbols: Sequence[str] = (),
                given: Mapping[str, Signature] | None = None) -> tuple[list[ElfTarget], list[str]]:
    """The functions of ``path`` that ``impl`` can trace, and one line per function skipped.

    Raises ElfError when the file cannot be loaded, a named symbol does not exist, or the object
    has no debug info and no signature was given for a function."""
    elf = load_elf(path, base=0)
    found, skipped = traced_functions(elf)
    by_name = {f.name: f for f in found}
    for name in symbols:
        if name not in by_name and elf.symbol(name) is None:
            raise ElfError(f"{path}: no function symbol {name!r}")
    wanted = [by_name[n] for n in symbols if n in by_name] if symbols else found
    skipped = [s for s in skipped if not symbols or s.split(":")[0] in symbols]
    sigs = _signatures(elf, given or {}, [f.name for f in wanted])
    out: list[ElfTarget] = []
    for fn in wanted:
        sig = sigs[fn.name]
        if isinstance(sig, ElfError):
            skipped.append(f"{fn.name}: {sig}")
            continue
        if impl.caps.sled_for("kernel_function", fn.sled_key) is None:
            skipped.append(f"{fn.name}: sled layout {fn.sled_key} is not one {impl.name} supports")
            continue
        if len(sig.args) > 12:
            skipped.append(f"{fn.name}: {len(sig.args)} arguments (the trampoline takes at most 12)")
            continue
        comp = CompiledBody(path=elf.path, symbol=fn.name, sha256=elf.sha256)
        off, align = symbol_offset(comp)
        target = ElfTarget(elf.path, elf.sha256, fn, sig, off, align)
        if _placement_delta(0, target) is None:
            skipped.append(f"{fn.name}: at offset {off:#x} in a {align}-byte aligned object it cannot sit at a "
                           f"{FUNC_ALIGN}-byte aligned address")
            continue
        out.append(target)
    return out, skipped


def _signatures(elf: LoadedElf, given: Mapping[str, Signature], names: list[str]) -> dict[str, Signature | ElfError]:
    if all(n in given for n in names):
        return dict(given)
    try:
        found = signatures(elf)
    except ElfError:
        missing = [n for n in names if n not in given]
        raise ElfError(f"{elf.path}: no debug info; give signatures for {', '.join(missing)} with --signature") from None
    return {**found, **given}


def _abi_value(draw: Draw, size: int, signed: bool, pointer: bool, data: int) -> int:
    """A slot value as a real caller leaves it (RV64 psABI: 32-bit scalars sign-extended, narrower
    ones extended per their signedness); pointers point into the data region."""
    if pointer:
        return data + 8 * draw.int_in(0, DATA_SIZE // 8 - 2)
    v = value64(draw)
    if size == 8:
        return v
    v &= (1 << (8 * size)) - 1
    if (signed or size == 4) and v >> (8 * size - 1):
        v |= MASK64 ^ ((1 << (8 * size)) - 1)
    return v


#: the traced function's alignment as model.case.LAYOUT_REGIONS requires it (2: RVC kernels before v6.16)
FUNC_ALIGN = LAYOUT_REGIONS["func"][0]


def _placement_delta(func: int, target: ElfTarget) -> int | None:
    """The smallest shift of ``func`` keeping it 4-byte aligned and the object's base at its own
    alignment; None when the symbol's offset makes both impossible."""
    for delta in range(0, FUNC_ALIGN * target.align, FUNC_ALIGN):
        if (func + delta - target.offset) % target.align == 0 and (func + delta) % FUNC_ALIGN == 0:
            return delta
    return None


def case_for(draw: Draw, impl: Implementation, target: ElfTarget, shape: Shape) -> Case:
    """A not-yet-measured case for ``target`` (``measure`` completes it)."""
    base_case = build_case(draw, impl.caps, shape)
    lay = base_case.layout
    delta = _placement_delta(lay.func, target)
    if delta is None:  # elf_targets() keeps only functions that can be placed
        raise MeasureError(f"{target.name} cannot be placed at a {FUNC_ALIGN}-byte aligned address")
    layout = dataclasses.replace(lay, func=(lay.func + delta) & MASK64)
    values: list[int] = []
    ptrs = target.sig.pointers or (False,) * len(target.sig.args)
    for arg, ptr in zip(target.sig.args, ptrs, strict=True):
        if arg.is_struct:
            values.extend(value64(draw) for _ in range(arg.slots))
        else:
            values.append(_abi_value(draw, arg.size, arg.signed, ptr, layout.data))
    function = Function(
        args=target.sig.args,
        values=tuple(values),
        body=Body(),
        ret_size=target.sig.ret_size if target.sig.ret_size else 8,
        ret_signed=target.sig.ret_signed,
        compiled=CompiledBody(path=target.path, symbol=target.name, sha256=target.sha256),
    )
    return dataclasses.replace(base_case, function=function, layout=layout, sled=target.fn.sled_key)


def shape_for(draw: Draw, target: ElfTarget, kinds_from: Shape) -> Shape:
    """The structural part for ``target``: its sled and arguments, links and flags as drawn."""
    args = tuple((a.size, a.is_struct) for a in target.sig.args)
    return Shape("kernel_function", target.fn.sled_key, args, kinds_from.kinds, kinds_from.enter, kinds_from.flags, 8)


class _CompilerSled:
    """The implementation's patcher, except that "initialised" means the compiler's own bytes:
    the baseline runs the function exactly as built, independent of the patcher under test."""

    def __init__(self, inner: Patcher, sled_bytes: bytes) -> None:
        self.inner = inner
        self.sled_bytes = sled_bytes

    def compiler_sled(self, sled: SledLayout) -> bytes:
        return self.sled_bytes

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self.sled_bytes

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int) -> bytes:
        return self.inner.patch(sled, func, target, ftrace_caller)

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self.sled_bytes


#: baseline implementations kept alive per (implementation, object, symbol): scenario caches key
#: on object identity, so a fresh wrapper per case could alias a collected one's cache entries
_BASELINE_IMPLS: dict[tuple[str, str, str], Implementation] = {}


def _baseline_impl(impl: Implementation, comp: CompiledBody, layout: Layout, sled: SledLayout) -> Implementation:
    key = (impl.name, comp.sha256, comp.symbol)
    hit = _BASELINE_IMPLS.get(key)
    if hit is None:
        offset, _ = symbol_offset(comp)
        elf = load_elf(comp.path, base=layout.func - offset, with_debug=False)
        own = elf.read(layout.func - sled.pre_bytes, sled.pre_bytes + sled.entry_bytes)
        hit = dataclasses.replace(impl, patcher=_CompilerSled(impl.patcher, own))
        if len(_BASELINE_IMPLS) > 256:
            _BASELINE_IMPLS.clear()
        _BASELINE_IMPLS[key] = hit
    return hit


def measure(case: Case, impl: Implementation) -> Case:
    """``case`` (whose function is compiled) with its CompiledBody's ``ret`` and ``stores`` filled
    from an untraced run. Raises MeasureError when the function does not return normally for
    these inputs, ElfError when the object changed or cannot be placed."""
    comp = case.function.compiled
    if comp is None:
        raise ValueError("measure() needs a case whose function is compiled")
    sled = impl.caps.sled_for("kernel_function", case.sled)
    if sled is None:
        raise MeasureError(f"sled {case.sled} is not supported by {impl.name}")
    bimpl = _baseline_impl(impl, comp, case.layout, sled)
    untraced = dataclasses.replace(case, links=(), flags=None, teardown=False)
    try:
        obs = run_case(untraced, bimpl)
    except LayoutError as exc:
        raise MeasureError(str(exc)) from None
    if obs.trap is not None or obs.final is None:
        raise MeasureError(f"{comp.symbol} does not return untraced with these inputs ({obs.trap})")
    lo, hi = case.layout.stack, obs.entry_sp
    stores = tuple(BodyStore(w.addr, w.size, w.value) for w in obs.writes if not (lo <= w.addr and w.addr + w.size <= hi))
    a0 = obs.final_reg("a0")
    assert a0 is not None
    measured = dataclasses.replace(comp, ret=a0, stores=stores)
    return dataclasses.replace(case, function=dataclasses.replace(case.function, compiled=measured))


def compiled_candidate(case: Case, *, original: Case, impl: Implementation) -> Case | None:
    """For the minimiser: a smaller candidate of a compiled case, measured again; None when it
    changed what the compiled function is (its signature, its object) or cannot be measured.
    The function's BTF arguments must stay its real ones: with fewer, the trampoline would save
    fewer registers than the code reads, a mismatch no kernel has."""
    comp, orig = case.function.compiled, original.function.compiled
    if comp is None or orig is None or case.function.args != original.function.args:
        return None
    if (comp.path, comp.symbol, comp.sha256) != (orig.path, orig.symbol, orig.sha256):
        return None
    if (case.function.ret_size, case.function.ret_signed) != (original.function.ret_size, original.function.ret_signed):
        return None
    try:
        return measure(case, impl)
    except (MeasureError, ElfError):
        return None


def draw_elf_case(draw: Draw, impl: Implementation, targets: Sequence[ElfTarget], *,
                  strict_flags: bool = False, tries: int = 8) -> Case | None:
    """A measured case for one of ``targets`` (None when ``tries`` draws all failed to measure:
    the function faults untraced for the inputs drawn, or the draw cannot be placed)."""
    from sledfuzz.fuzz.shape import draw_shape

    for _ in range(tries):
        target = pick(draw, targets)
        shape = shape_for(draw, target, draw_shape(draw, impl.caps, strict_flags=strict_flags))
        try:
            return measure(case_for(draw, impl, target, shape), impl)
        except MeasureError:
            continue
    return None


@dataclass(frozen=True)
class ElfSource:
    """What ``fuzz --elf`` names: an object, optionally some of its symbols, and signatures given
    on the command line (``NAME=(8,4s,p)->4s``) for objects without debug info. Plain data, so a
    worker process can rebuild the targets."""

    path: str
    symbols: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "symbols": list(self.symbols), "signatures": list(self.signatures)})

    @staticmethod
    def from_json(text: str) -> ElfSource:
        data = json.loads(text)
        return ElfSource(str(data["path"]), tuple(map(str, data.get("symbols", []))),
                         tuple(map(str, data.get("signatures", []))))

    def given(self) -> dict[str, Signature]:
        out: dict[str, Signature] = {}
        for text in self.signatures:
            name, sep, sig = text.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"--signature {text!r}: expected NAME=(args)->ret, e.g. f=(8,4s,p)->4s")
            out[name.strip()] = parse_signature(sig)
        return out

    def targets(self, impl: Implementation) -> tuple[list[ElfTarget], list[str]]:
        return elf_targets(self.path, impl, symbols=self.symbols, given=self.given())


def elf_case_strategy(impl: Implementation, targets: Sequence[ElfTarget], *,
                      strict_flags: bool = False) -> st.SearchStrategy[Case]:
    """Measured cases for ``targets`` drawn by hypothesis (its shrinking re-measures each one)."""

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        case = draw_elf_case(HypothesisDraw(draw), impl, targets, strict_flags=strict_flags)
        assume(case is not None)
        assert case is not None
        return case

    return cases()
