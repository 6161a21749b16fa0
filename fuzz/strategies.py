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

from fuzz.edges import HIGH_GARBAGE, SIGN_EDGES, VALUE_SIZES, sign_edges, with_garbage
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
EDGE_U64: tuple[int, ...] = tuple(dict.fromkeys((
    *SIGN_EDGES, 2, 0x7FF, 0x800, 0xFFF, 0x100000000, 0xFFFFFFFF80000000, 0xFFFFFFFFFFFF8000, 0xFFFFFFFFFFFFFF80,
)))

SCALAR_SIZES = (1, 2, 4, 8)


def sized_u64(sizes: Sequence[int] = VALUE_SIZES) -> st.SearchStrategy[int]:
    """A sign edge of one of ``sizes`` (bytes) with garbage above it (``fuzz.edges``): what a
    register holding a 1/2/4/8-byte value may look like to the code that must extend it."""
    garbage = st.one_of(st.sampled_from(HIGH_GARBAGE), st.integers(0, MASK64))
    return st.sampled_from(tuple(sizes)).flatmap(
        lambda size: st.builds(with_garbage, st.sampled_from(sign_edges(size)), st.just(size), garbage))


def u64() -> st.SearchStrategy[int]:
    """A 64-bit value, biased towards small numbers, extension edges and high bits set."""
    return st.one_of(
        st.integers(0, 64), st.sampled_from(EDGE_U64), st.integers(0, MASK64),
        st.integers(-64, -1).map(lambda v: v & MASK64), sized_u64(),
    )


def ret_values(sizes: Sequence[int] = VALUE_SIZES) -> st.SearchStrategy[int]:
    """A program's R0: mostly edges of the return sizes with garbage above (half of ``u64``'s
    draws would be small or zero, and zero hides every extension bug)."""
    return st.one_of(u64(), sized_u64(sizes), sized_u64(sizes))


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
    arg_strategy: st.SearchStrategy[tuple[Arg, ...]] | None = None,
) -> Function:
    """A traced function: arguments, one value per slot, a body, the BTF return type.

    ``arg_strategy`` replaces the argument draw (the fuzzing front uses it for wide struct
    lists and the 13-argument refusal)."""
    lay = layout or Layout()
    if arg_strategy is not None:
        fargs = draw(arg_strategy)
    else:
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
    """Attached programs in link order, each with R0, cookie, enter result (0 skip, 1, >= 2) and ip use;
    with ``fsession`` among the kinds, session programs that do or do not use their cookie."""
    link = st.builds(
        Link,
        kind=st.sampled_from(tuple(kinds)),
        r0=ret_values(),
        cookie=st.one_of(st.just(0), u64()),
        enter=st.one_of(st.just(1), st.just(0), st.integers(2, MASK64)),
        wants_ip=st.booleans(),
    )
    if "fsession" in kinds:
        link = st.tuples(link, st.booleans()).map(
            lambda lc: replace(lc[0], session_cookie=lc[1]) if lc[0].kind == "fsession" else lc[0])
    return st.lists(link, min_size=min_links, max_size=max_links).map(tuple)


def link_kinds(caps: Capabilities | None) -> tuple[LinkKind, ...]:
    """The link kinds to draw for ``caps``: fsession only where it can be attached (7.x)."""
    base: tuple[LinkKind, ...] = ("fentry", "fmod_ret", "fexit")
    return (*base, "fsession") if caps is not None and caps.fsession else base


@st.composite
def _struct_ops_link(draw: st.DrawFn, ret_size: int) -> Link:
    """The one fentry program of a struct_ops member; its R0 is drawn at the edges of the member's
    return size most of the time (the BTF extension of R0 is what a struct_ops return tests)."""
    one = draw(links(min_links=1, max_links=1, kinds=("fentry",)))[0]
    edge = sized_u64((ret_size or 8,))
    r0 = draw(st.one_of(edge, edge, st.just(one.r0)))
    return replace(one, wants_ip=False, r0=r0)


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


def _target_kinds(
    target: TargetKind | Sequence[TargetKind] | None,
    caps: Capabilities | None,
    sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None,
) -> tuple[TargetKind, ...]:
    """The target kinds asked for (all the caps declare when None) that have a sled layout."""
    if target is None:
        kinds: tuple[TargetKind, ...] = tuple(sorted(caps.targets)) if caps is not None else TARGET_KINDS
    elif isinstance(target, str):
        kinds = (target,)
    else:
        kinds = tuple(target)
    return tuple(k for k in kinds if _sled_keys(k, sleds, caps))


def _sled_keys(target: TargetKind, sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None,
               caps: Capabilities | None) -> tuple[str, ...]:
    if sleds is not None:
        keys = tuple(sleds.get(target, ())) if isinstance(sleds, Mapping) else tuple(sleds)
    elif caps is not None:
        keys = tuple(s.key for s in caps.sleds_for(target))
        if not keys and target == "struct_ops":
            keys = DEFAULT_SLEDS[target]  # called directly: the key is only carried along
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
    kinds = _target_kinds(target, caps, sleds)
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
        lks: tuple[Link, ...] = (draw(_struct_ops_link(fn.ret_size)),)
    else:
        lks = draw(links(min_links=min_links, max_links=max_links, kinds=link_kinds(caps)))
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


# =============================================================================================
# The fuzzing front's extension (issue 5): every dimension of DESIGN §1, including what the
# implementation must refuse, and the address edges plain integers miss.
# =============================================================================================

from model.caps import SledLayout  # noqa: E402
from model.contract import (  # noqa: E402
    F_CALL_ORIG,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_SHARE_IPMODIFY,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
    HOSTS_SPAN,
    derive_flags,
)
from model.semantics import REACH_HI, REACH_LO  # noqa: E402

#: Low 12 bits of a call offset on either side of the auipc/jalr rounding edge (bit 11).
ROUND_EDGES: tuple[int, ...] = (0x000, 0x008, 0x7F8, 0x800, 0x808, 0xFF8)
#: The same for 16-byte aligned host addresses.
HOST_EDGES: tuple[int, ...] = (0x000, 0x7F0, 0x800, 0x810, 0xFF0)
#: fmod_ret R0 values: non-zero ones whose low 32 bits are zero do NOT short-circuit on riscv
#: (the test is on the sign-extended 32-bit a0, SEMANTICS 3.7), next to ones that do.
FMOD_RET_VALUES: tuple[int, ...] = (
    0x1_0000_0000, 0xFFFFFFFF_00000000, 0x80000000_00000000, 1, 0xFFFFFFEA, MASK64 - 21, 0x80000000, 0,
)
#: Raw flag sets the core never generates and the JIT does not refuse (SEMANTICS 3.2).
UNSPECIFIED_FLAGS: tuple[int, ...] = (
    F_RESTORE_REGS | F_SKIP_FRAME, F_SKIP_FRAME, F_CALL_ORIG, F_CALL_ORIG | F_RESTORE_REGS, 0,
)
#: MAX_BPF_FUNC_REG_ARGS: argument slots a BPF-program target can have.
BPF_PROG_MAX_SLOTS = 5
#: Where edge layouts put their regions: far from the default layout's windows.
EDGE_DATA = 0xFFFFFFFFE0000000
EDGE_STACK = 0xFFFFFFFFE0100000
_EDGE_FUNC = 0xFFFFFFFF90000000
_PAGE = 0x1000


def _auipc_offset(sled: SledLayout | None) -> int:
    return 4 if sled is not None and sled.scheme == "ra_detour" else 0


def _edge_layout(mode: str, d: int, *, off: int, hosts_low: int, im: int, progs: int) -> Layout:
    """One edge layout. ``d`` is the offset that matters for ``mode`` (see ``edge_layouts``)."""
    if mode == "round":  # image - (func + off) == d, image page aligned
        func = _EDGE_FUNC + ((-(d + off)) & 0xFFF)
        image = func + off + d
        hosts = image + 0x100000 + hosts_low if d > 0 else image - 0x100000 + hosts_low
        parent = func - 0x200000 if d > 0 else func + 0x200000
    elif mode == "reach":  # the sled's call exactly at a reach limit: image - (func + off) == d
        image = 0xFFFFFFFF10000000 if d < 0 else 0xFFFFFFFFC0000000
        func = image - off - d
        hosts = image + 0x100000 + hosts_low
        parent = func + 0x200000 if d < 0 else func - 0x200000
    else:  # "hosts": host calls at the image's reach limits: hosts - image == d
        # (kernel addresses never wrap around 2^64: the image sits low for a positive d)
        image = 0xFFFFFFFF00400000 if d > 0 else 0xFFFFFFFFF0000000
        func = image - 0x400000
        hosts = image + d
        parent = func - 0x200000
    return Layout(
        parent=parent & MASK64, func=func & MASK64, image=image & MASK64, hosts=hosts & MASK64,
        ftrace_caller=(func + Layout().ftrace_caller - Layout().func) & MASK64,
        im=im, progs=progs, data=EDGE_DATA, stack=EDGE_STACK,
    )


@st.composite
def edge_layouts(draw: st.DrawFn, *, target: TargetKind = "bpf_prog", sled: SledLayout | None = None) -> Layout:
    """Layouts whose call offsets sit on the auipc/jalr rounding edge (bit 11 of the offset set or
    just clear) or exactly at the reach limits ``2^31 - 2^11`` (exclusive) and ``-2^31 - 2^11``
    (inclusive). Kernel-function targets only get in-reach sled offsets (ftrace does not check,
    so an unreachable one is an invalid case); BPF-program targets also get the first
    unreachable ones, which ``bpf_arch_text_poke`` must refuse with -ERANGE."""
    off = _auipc_offset(sled)
    mode = draw(st.sampled_from(("round", "reach", "hosts")))
    if mode == "round":
        pages = draw(st.integers(0x100, 0x3FF)) * (1 if draw(st.booleans()) else -1)
        d = pages * _PAGE + draw(st.sampled_from(ROUND_EDGES))
    elif mode == "reach":
        limits = [REACH_HI - 8, REACH_LO, REACH_LO + 8, REACH_HI - _PAGE]
        if target != "kernel_function":
            limits += [REACH_HI, REACH_LO - 8]
        d = draw(st.sampled_from(limits))
    else:
        d = draw(st.sampled_from((REACH_HI - HOSTS_SPAN, REACH_HI - 0x800, REACH_HI, REACH_LO + _PAGE,
                                  REACH_LO, REACH_LO - 0x10)))
        d &= ~0xF
    return _edge_layout(
        mode, d, off=off, hosts_low=draw(st.sampled_from(HOST_EDGES)),
        im=draw(st.sampled_from((Layout().im, 0xFFFFFFFF80000FF8, 0x7FFFF800, 0xFFFFFFFFFFFFF800, 0xFFFFFFD800000800))),
        progs=draw(st.sampled_from((Layout().progs, 0xFFFFFFFF81100800, 0xFFFFFFD800000000))),
    )


@st.composite
def wide_args(draw: st.DrawFn, *, max_args: int = 12, max_slots: int = 24) -> tuple[Arg, ...]:
    """Argument lists dense in 16-byte structs, up to ``max_slots`` slots (24 = twelve structs),
    the structs placed anywhere among the scalars."""
    most = min(max_args, max_slots // 2)
    n_struct = draw(st.one_of(st.integers(0, most), st.just(most)))
    room = min(max_args - n_struct, max_slots - 2 * n_struct)
    n_scalar = draw(st.integers(0, max(0, room)))
    scalars = [draw(st.sampled_from((Arg(8), Arg(4, signed=True), Arg(2), Arg(1)))) for _ in range(n_scalar)]
    items = [Arg(16, True)] * n_struct + scalars
    return tuple(draw(st.permutations(items))) if items else ()


def over_args() -> st.SearchStrategy[tuple[Arg, ...]]:
    """Thirteen arguments: one more than MAX_BPF_FUNC_ARGS, so the JIT must refuse (-ENOTSUPP)."""
    return st.lists(st.sampled_from((Arg(8), Arg(16, True), Arg(4))), min_size=13, max_size=13).map(tuple)


def raw_flags(case_flags: int, *, strict_flags: bool) -> st.SearchStrategy[int | None]:
    """None (derived) first, then the generated variants, the refused bits, the unspecified sets."""
    variants = [
        case_flags | F_TAIL_CALL_CTX,
        case_flags | F_SHARE_IPMODIFY,
        case_flags | F_ORIG_STACK,
        case_flags | F_SHARE_IPMODIFY | F_ORIG_STACK | (F_SKIP_FRAME if case_flags & F_CALL_ORIG else 0),
    ]
    if strict_flags:
        variants += [*list(UNSPECIFIED_FLAGS), case_flags ^ F_SKIP_FRAME, case_flags | F_IP_ARG]
    return st.one_of(st.none(), st.none(), st.sampled_from(variants))


@st.composite
def fuzz_cases(
    draw: st.DrawFn,
    *,
    caps: Capabilities | None = None,
    target: TargetKind | Sequence[TargetKind] | None = None,
    strict_flags: bool = False,
    max_links: int = 39,
    edges: bool = True,
) -> Case:
    """Cases over every dimension of DESIGN §1 for ``caps``: 0..13 arguments, up to 24 slots via
    16-byte structs, 0..39 links in any order and mix (small counts most often), every flag set
    the core generates plus ORIG_STACK / SHARE_IPMODIFY (refused) and, only with
    ``strict_flags``, the unspecified ones; every declared sled; enter 0 / 1 / >= 2; cookies;
    fmod_ret values with zero low halves; layouts on the rounding edge and at the reach limits.
    Shrinks towards: derived flags, few links, few arguments, the default layout, zero values."""
    kinds = _target_kinds(target, caps, None)
    kind = draw(st.sampled_from(kinds))
    key = draw(st.sampled_from(_sled_keys(kind, None, caps)))
    sled = caps.sled_for(kind, key) if caps is not None else None
    layout = draw(st.one_of(layouts(), edge_layouts(target=kind, sled=sled))) if edges else draw(layouts())
    max_a = caps.max_args if caps is not None else 12
    max_s = caps.max_arg_slots if caps is not None else 24
    if kind == "struct_ops":
        max_s = min(max_s, 8)
    if kind == "bpf_prog":
        # a BPF program or subprog takes at most MAX_BPF_FUNC_REG_ARGS (5) arguments, R1-R5 =
        # a0-a4; a6 is the tail-call counter its prologue sets, so more slots are not a real state
        max_a, max_s = min(max_a, BPF_PROG_MAX_SLOTS), BPF_PROG_MAX_SLOTS
    arg_shape = draw(st.sampled_from(("plain", "plain", "wide", "plain", "over", "wide")))
    if kind == "bpf_prog" and arg_shape == "over":
        arg_shape = "plain"
    if arg_shape == "plain":
        arg_strategy = args(max_args=max_a, max_slots=max_s)
    elif arg_shape == "wide":
        # past the implementation's slot limit on purpose (-ENOTSUPP before 6801b0aef79d), except
        # where the limit is a property of the target rather than of the JIT
        arg_strategy = wide_args(max_args=max_a, max_slots=max_s if kind in ("struct_ops", "bpf_prog") else max(max_s, 24))
    else:
        arg_strategy = over_args()
    fn = draw(functions(layout=layout, arg_strategy=arg_strategy,
                        ret_sizes=(8, 4, 2, 1, 0) if kind == "struct_ops" else (8, 4)))
    if kind == "struct_ops":
        lks: tuple[Link, ...] = (draw(_struct_ops_link(fn.ret_size)),)
    else:
        # small counts most often; the exact limit (38 accepted, 39 -E2BIG) explicitly
        n = draw(st.one_of(st.integers(0, 3), st.integers(0, max_links), st.sampled_from((max_links - 1, max_links))))
        lks = draw(links(min_links=n, max_links=n, kinds=link_kinds(caps)))
        lks = tuple(
            replace(lk, r0=draw(st.sampled_from(FMOD_RET_VALUES))) if lk.kind == "fmod_ret" and draw(st.booleans())
            else lk
            for lk in lks
        )
    case = Case(target=kind, function=fn, sled=key, links=lks, layout=layout, flags=None,
                teardown=draw(st.booleans()), seed=draw(st.integers(0, MASK64)))
    if kind != "struct_ops":
        flags = draw(raw_flags(derive_flags(case), strict_flags=strict_flags))
        if flags is not None:
            case = replace(case, flags=flags)
    return case


def search_cases(caps: Capabilities, *, strict_flags: bool = False) -> st.SearchStrategy[Case]:
    """What campaigns search with: the base cases and the front's, for one implementation
    (BPF-program targets limited to BPF_PROG_MAX_SLOTS argument slots, see ``fuzz_cases``)."""
    kinds = tuple(sorted(caps.targets))
    others = tuple(k for k in kinds if k != "bpf_prog" and _sled_keys(k, None, caps))
    parts: list[st.SearchStrategy[Case]] = []
    if others:
        parts.append(cases(caps=caps, target=others))
    if "bpf_prog" in kinds and _sled_keys("bpf_prog", None, caps):
        parts.append(cases(caps=caps, target="bpf_prog", max_args=BPF_PROG_MAX_SLOTS, max_slots=BPF_PROG_MAX_SLOTS))
    parts.append(fuzz_cases(caps=caps, strict_flags=strict_flags))
    return st.one_of(*parts)


def edge_examples(caps: Capabilities) -> list[Case]:
    """Explicit cases at the reach limits and on the rounding edge, one per declared sled and
    target (for ``@example``: random integers essentially never hit these exact offsets)."""
    out: list[Case] = []
    fn = Function(args=(Arg(8), Arg(8)), values=(1, 2), body=Body(k=3, coeffs=(1, 1)))
    for sled in caps.sleds:
        if sled.target not in caps.targets or sled.target == "struct_ops":
            continue
        off = _auipc_offset(sled)
        limits = [REACH_HI - 8, REACH_LO] + ([REACH_HI, REACH_LO - 8] if sled.target == "bpf_prog" else [])
        layouts_: list[Layout] = [_edge_layout("reach", d, off=off, hosts_low=0, im=Layout().im, progs=Layout().progs)
                                  for d in limits]
        layouts_ += [_edge_layout("round", d, off=off, hosts_low=0x800, im=Layout().im, progs=Layout().progs)
                     for d in (0x100 * _PAGE + 0x800, 0x100 * _PAGE + 0x7F8, -0x100 * _PAGE + 0x800)]
        layouts_ += [_edge_layout("hosts", d, off=off, hosts_low=0, im=Layout().im, progs=Layout().progs)
                     for d in (REACH_HI - HOSTS_SPAN, REACH_HI, REACH_LO)]
        for lay in layouts_:
            kind_lists: tuple[tuple[LinkKind, ...], ...] = (("fentry",), ("fentry", "fmod_ret", "fexit"))
            for kinds in kind_lists:
                out.append(Case(target=sled.target, function=fn, sled=sled.key,
                                links=tuple(Link(kind=k, r0=5, cookie=7) for k in kinds), layout=lay))
    return out
