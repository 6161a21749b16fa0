"""Hypothesis strategies for cases (the base version; the fuzzing front extends it).

``cases(...)`` draws valid ``Case`` objects: traced functions with 0..12 arguments (scalars and
by-value structs), one value per 8-byte slot (a store's slot always holds a pointer into the data
region), bodies in the DESIGN §1 mini-language, 0..8 links of every kind with their R0, cookie and
enter result, derived flags, layouts with small perturbations of every address, and a seed.
Everything is composable: each part is its own strategy with ``min_``/``max_`` style parameters,
and ``cases`` only wires them together. Shrinking goes towards no links, no arguments, the default
layout and zero values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from model.caps import TARGET_KINDS, Capabilities, TargetKind
from model.case import DATA_SIZE, MASK64, STACK_SIZE, Arg, Body, Case, Function, Layout, Link, LinkKind, Store

#: Sled keys drawn when neither ``sleds`` nor ``caps`` is given: every layout the eras know
#: (4 c.nop / 2 nop t0 sleds, the CALL_OPS ``8,4``/``4,2`` layouts, the 16-byte detour; the BPF
#: JIT's 2 or 4 nops). struct_ops has no sled; its key is only carried along.
DEFAULT_SLEDS: dict[TargetKind, tuple[str, ...]] = {
    "kernel_function": ("4,0/c", "2,0/w", "8,4/c", "4,2/w", "8,0/c", "4,0/w"),
    "bpf_prog": ("2,0/w", "4,0/w"),
    "struct_ops": ("2,0/w",),
}

#: 64-bit values that break sign/zero extension, 32-bit truncation and ``li`` lengths.
EDGE_U64: tuple[int, ...] = (
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FF, 0x800, 0xFFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
    0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFF80000000, MASK64,
)

SCALAR_SIZES = (1, 2, 4, 8)


def u64() -> st.SearchStrategy[int]:
    """A 64-bit value, biased towards small numbers and extension edges."""
    return st.one_of(
        st.integers(0, 64), st.sampled_from(EDGE_U64), st.integers(0, MASK64), st.integers(-64, -1).map(lambda v: v & MASK64)
    )


def args(*, min_args: int = 0, max_args: int = 12, max_slots: int | None = None) -> st.SearchStrategy[tuple[Arg, ...]]:
    """BTF arguments: scalars of 1/2/4/8 bytes or structs of 1..16 bytes (a 16-byte one takes two slots)."""
    arg = st.one_of(
        st.builds(Arg, size=st.sampled_from(SCALAR_SIZES), is_struct=st.just(False), signed=st.booleans()),
        st.builds(Arg, size=st.sampled_from((16, 8, 12, 4)), is_struct=st.just(True), signed=st.just(False)),
    )
    out = st.lists(arg, min_size=min_args, max_size=max_args).map(tuple)
    if max_slots is None:
        return out
    limit = max_slots

    def fit(drawn: tuple[Arg, ...]) -> tuple[Arg, ...]:
        kept: list[Arg] = []
        for a in drawn:
            if sum(x.slots for x in kept) + a.slots > limit:
                break
            kept.append(a)
        return tuple(kept)

    return out.map(fit).filter(lambda a: len(a) >= min_args)


@st.composite
def functions(
    draw: st.DrawFn,
    *,
    layout: Layout | None = None,
    min_args: int = 0,
    max_args: int = 12,
    max_slots: int | None = None,
    ret_sizes: Sequence[int] = (8, 4, 2, 1, 0),
) -> Function:
    """A traced function: arguments, one value per slot, a body, the BTF return type."""
    lay = layout or Layout()
    fargs = draw(args(min_args=min_args, max_args=max_args, max_slots=max_slots))
    nslots = sum(a.slots for a in fargs)
    values = list(draw(st.lists(u64(), min_size=nslots, max_size=nslots)))
    store = None
    if nslots and draw(st.booleans()):
        slot = draw(st.integers(0, nslots - 1))
        values[slot] = lay.data + 8 * draw(st.integers(0, DATA_SIZE // 8 - 1))
        store = Store(slot=slot, value=draw(u64()))
    coeffs = tuple(draw(st.lists(st.one_of(st.integers(-2, 2), st.integers(-2048, 2047)), max_size=nslots)))
    body = Body(
        k=draw(u64()),
        coeffs=coeffs,
        ret32=draw(st.booleans()),
        store=store,
        calls_helper=draw(st.booleans()),
        uses_saved=draw(st.integers(0, 11)),
        frame_pointer=draw(st.booleans()),
        compressed=draw(st.booleans()),
        a5=draw(u64()),
    )
    return Function(
        args=fargs,
        values=tuple(values),
        body=body,
        ret_size=draw(st.sampled_from(tuple(ret_sizes))),
        ret_signed=draw(st.booleans()),
    )


def links(
    *, min_links: int = 0, max_links: int = 8, kinds: Sequence[LinkKind] = ("fentry", "fmod_ret", "fexit")
) -> st.SearchStrategy[tuple[Link, ...]]:
    """Attached programs in link order, each with R0, cookie, enter result (0 skip, 1, >= 2) and ip use."""
    link = st.builds(
        Link,
        kind=st.sampled_from(tuple(kinds)),
        r0=st.one_of(st.just(0), u64()),
        cookie=st.one_of(st.just(0), u64()),
        enter=st.one_of(st.just(1), st.just(0), st.integers(2, MASK64)),
        wants_ip=st.booleans(),
    )
    return st.lists(link, min_size=min_links, max_size=max_links).map(tuple)


@st.composite
def layouts(draw: st.DrawFn, *, perturb: bool = True) -> Layout:
    """The default layout with every address moved by a small aligned amount.

    Each region keeps its own 1 MiB window, so regions never overlap and every call stays in
    reach; ``im`` and the prog objects move freely (their ``li`` length is what matters).
    """
    base = Layout()
    if not perturb:
        return base

    def nudge(value: int, align: int, span: int = 0x80000) -> int:
        return (value + align * draw(st.integers(0, span // align - 1))) & MASK64

    return Layout(
        parent=nudge(base.parent, 16),
        func=nudge(base.func, 8, 0x200),
        image=nudge(base.image, 4096),
        hosts=nudge(base.hosts, 16),
        ftrace_caller=nudge(base.ftrace_caller, 8, 0x400),
        im=draw(st.one_of(st.just(base.im), st.integers(0, MASK64).map(lambda v: v & ~7))),
        progs=draw(st.one_of(st.just(base.progs), st.integers(0, MASK64 - 0x10000).map(lambda v: v & ~0xFF))),
        data=nudge(base.data, 4096),
        stack=nudge(base.stack, 0x10000, STACK_SIZE * 16),
    )


def _sled_keys(target: TargetKind, sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None,
               caps: Capabilities | None) -> tuple[str, ...]:
    if sleds is not None:
        keys = tuple(sleds.get(target, ())) if isinstance(sleds, Mapping) else tuple(sleds)
    elif caps is not None:
        keys = tuple(s.key for s in caps.sleds_for(target)) or DEFAULT_SLEDS[target]
    else:
        keys = DEFAULT_SLEDS[target]
    return keys


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    target: TargetKind | Sequence[TargetKind] | None = None,
    sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None = None,
    caps: Capabilities | None = None,
    min_links: int = 0,
    max_links: int = 8,
    max_args: int = 12,
    max_slots: int | None = None,
    struct_ops_max_slots: int = 8,
    perturb_layout: bool = True,
    teardown: bool | None = None,
) -> Case:
    """A valid case (derived flags). ``target`` fixes the kind (or a choice of kinds); ``sleds`` the
    keys per kind (or one list for all); ``caps`` restricts targets, sleds and argument counts to
    what an implementation declares. struct_ops functions stay within ``struct_ops_max_slots``
    (no known struct_ops member has stack arguments: SEMANTICS 3.3). ``teardown`` None draws it.
    """
    if target is None:
        kinds: tuple[TargetKind, ...] = tuple(sorted(caps.targets)) if caps is not None else TARGET_KINDS
    elif isinstance(target, str):
        kinds = (target,)
    else:
        kinds = tuple(target)
    kinds = tuple(k for k in kinds if _sled_keys(k, sleds, caps))
    if not kinds:
        raise ValueError("no target kind has a sled to draw from")
    kind = draw(st.sampled_from(kinds))
    sled = draw(st.sampled_from(_sled_keys(kind, sleds, caps)))
    layout = draw(layouts(perturb=perturb_layout))
    n_args = max_args if caps is None else min(max_args, caps.max_args)
    slots_cap = max_slots
    if caps is not None:
        slots_cap = caps.max_arg_slots if slots_cap is None else min(slots_cap, caps.max_arg_slots)
    if kind == "struct_ops":
        slots_cap = struct_ops_max_slots if slots_cap is None else min(slots_cap, struct_ops_max_slots)
    fn = draw(functions(layout=layout, max_args=n_args, max_slots=slots_cap,
                        ret_sizes=(8, 4, 2, 1, 0) if kind == "struct_ops" else (8, 4)))
    if kind == "struct_ops":
        one = draw(links(min_links=1, max_links=1, kinds=("fentry",)))
        lks: tuple[Link, ...] = (replace(one[0], wants_ip=False),)
    else:
        lks = draw(links(min_links=min_links, max_links=max_links))
    td = draw(st.booleans()) if teardown is None else teardown
    return Case(
        target=kind,
        function=fn,
        sled=sled,
        links=lks,
        layout=layout,
        flags=None,
        teardown=td,
        seed=draw(st.integers(0, MASK64)),
    )


def case_dicts(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """The JSON form of ``cases(**kwargs)`` (for tests of the loader and of the corpus)."""
    return cases(**kwargs).map(lambda c: c.to_dict())
