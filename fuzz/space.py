"""The case space: every dimension of a case and its edge biases, described once.

Both generators run this one description on a different source of choices (a ``Draw``):
``fuzz.shape`` on a seeded ``random.Random`` or on libFuzzer's bytes (the fast generator of the
random search and atheris), ``fuzz.strategies`` on hypothesis's draws. So both reach the same
dimensions with the same edge biases, and what one generator can produce the other can too.

Every choice lists its simplest option first (an integer range starts at its simplest value, a
flag's False is the simpler branch): hypothesis shrinks towards those, so a shrunk case has no
links, no arguments, derived flags, the default layout and zero values.

Dimensions (DESIGN §1) and their edges: target and sled; 0..12 arguments of 1/2/4/8-byte scalars
and 1..16-byte structs, dense 16-byte structs up to 24 slots, 13 arguments (one past
MAX_BPF_FUNC_ARGS); one value per slot (small, sign edges under garbage, high bits); the body;
0..39 links of every kind in any order, small counts most often, 37/38/39 (BPF_MAX_TRAMP_LINKS)
explicitly; R0, cookie, enter result (0 skip, 1, >= 2 a start time), fmod_ret values whose low
32 bits are zero; derived flags, IP_ARG, TAIL_CALL_CTX (BPF-program targets only), the refused
ORIG_STACK / SHARE_IPMODIFY, and with ``strict_flags`` the unspecified sets; layouts nudged, on the
auipc/jalr rounding edge (x.800), exactly at the reach limits, host calls at the image's reach
limits. Requests no kernel makes are left out (``model.semantics`` judges them Invalid): fmod_ret
on a BPF program, TAIL_CALL_CTX elsewhere, more than 5 slots for a BPF program, more than 8 for a
struct_ops member.

Rooms: ``fuzz.draw`` (sources of choices), ``fuzz.edges`` (values and their edges),
``fuzz.layouts`` (where the regions sit); this module the structure (shapes, bounds, flags) and
the filling of a shape into a ``Case``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sledfuzz.fuzz.draw import Draw, pick
from sledfuzz.fuzz.edges import FMOD_RET_VALUES, ret_value, sized_value, start_time, value64
from sledfuzz.fuzz.layouts import draw_layout
from sledfuzz.model.caps import TARGET_KINDS, Capabilities, TargetKind
from sledfuzz.model.case import DATA_SIZE, MASK64, Arg, Body, Case, Function, Link, LinkKind, Store
from sledfuzz.model.contract import (
    BPF_PROG_MAX_SLOTS,
    F_CALL_ORIG,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_SHARE_IPMODIFY,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
    MAX_TRAMP_LINKS,
    STRUCT_OPS_MAX_SLOTS,
)

# -- the dimensions ----------------------------------------------------------------------------

#: Link counts: BPF_MAX_TRAMP_LINKS accepted, one more -E2BIG, one less.
LINK_COUNT_EDGES: tuple[int, ...] = (MAX_TRAMP_LINKS - 1, MAX_TRAMP_LINKS, MAX_TRAMP_LINKS + 1)
#: MAX_BPF_FUNC_ARGS, and the most 8-byte slots the wide shape fills (12 16-byte structs).
MAX_ARGS = 12
MAX_SLOTS = 24
SCALAR_SIZES: tuple[int, ...] = (8, 4, 2, 1)
STRUCT_SIZES: tuple[int, ...] = (16, 8, 12, 4)
RET_SIZES: dict[TargetKind, tuple[int, ...]] = {
    "kernel_function": (8, 4), "bpf_prog": (8, 4), "struct_ops": (8, 4, 2, 1, 0)}

#: Sled keys when neither sleds nor caps are given: every layout the eras know (4 c.nop / 2 nop t0
#: sleds, the CALL_OPS ``8,4``/``4,2`` layouts, the 16-byte detour; the BPF JIT's 2 or 4 nops).
#: struct_ops has no sled; its key is only carried along.
DEFAULT_SLEDS: dict[TargetKind, tuple[str, ...]] = {
    "kernel_function": ("4,0/c", "2,0/w", "8,4/c", "4,2/w", "8,0/c", "4,0/w"),
    "bpf_prog": ("2,0/w", "4,0/w"),
    "struct_ops": ("2,0/w",),
}

EnterPattern = Literal["run", "stats", "skip", "stats-then-skip"]
ENTER_PATTERNS: tuple[EnterPattern, ...] = ("run", "stats", "skip", "stats-then-skip")
FlagVariant = Literal["derived", "ip_arg", "tail_call", "ip_arg+tail_call", "orig_stack", "share_ipmodify",
                      "skip_frame_flipped", "ip_arg_forced"]
#: What the core generates or riscv refuses; TAIL_CALL_CTX only reaches BPF-program targets.
FLAG_VARIANTS: tuple[FlagVariant, ...] = (
    "derived", "ip_arg", "tail_call", "ip_arg+tail_call", "orig_stack", "share_ipmodify")
#: Unspecified raw flag sets (SEMANTICS 3.2): the core never generates them, the JIT does not refuse.
UNSPECIFIED_FLAGS: tuple[int, ...] = (
    F_RESTORE_REGS | F_SKIP_FRAME, F_SKIP_FRAME, F_CALL_ORIG, F_CALL_ORIG | F_RESTORE_REGS, 0)
#: Unspecified variants of the derived set (strict mode only).
STRICT_VARIANTS: tuple[FlagVariant, ...] = ("skip_frame_flipped", "ip_arg_forced")


def flag_variants(target: TargetKind) -> tuple[FlagVariant, ...]:
    """The flag variants a request for ``target`` can carry (check_attach_btf_id sets
    TAIL_CALL_CTX only for a tail-call-reachable BPF program)."""
    if target == "struct_ops":
        return ("derived",)
    return FLAG_VARIANTS if target == "bpf_prog" else tuple(v for v in FLAG_VARIANTS if "tail_call" not in v)


def link_kinds(caps: Capabilities | None, target: TargetKind = "kernel_function") -> tuple[LinkKind, ...]:
    """Link kinds attachable to ``target``: fsession only where the caps have it (7.x), no fmod_ret
    on a BPF program (bpf_check_attach_target refuses it), struct_ops one fentry program."""
    if target == "struct_ops":
        return ("fentry",)
    base: tuple[LinkKind, ...] = ("fentry", "fexit") if target == "bpf_prog" else ("fentry", "fmod_ret", "fexit")
    return (*base, "fsession") if caps is not None and caps.fsession else base


# -- shapes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The structural part of a case. ``args`` are (size, is_struct) pairs."""

    target: TargetKind
    sled: str
    args: tuple[tuple[int, bool], ...]
    kinds: tuple[LinkKind, ...]
    enter: EnterPattern
    flags: FlagVariant | int  # an int is a raw unspecified set (strict mode only)
    ret_size: int = 8

    @property
    def slots(self) -> int:
        return sum((size + 7) // 8 for size, _ in self.args)

    def describe(self) -> str:
        structs = sum(1 for _, s in self.args if s)
        links = ",".join(k.replace("fmod_ret", "fmod") for k in self.kinds) or "-"
        flags = self.flags if isinstance(self.flags, str) else f"raw={self.flags:#x}"
        return (
            f"{self.target} sled={self.sled} args={len(self.args)} (slots={self.slots}, structs={structs}) "
            f"links=[{links}] enter={self.enter} flags={flags}"
            + (f" ret_size={self.ret_size}" if self.target == "struct_ops" else "")
        )


@dataclass(frozen=True)
class Bounds:
    """Which part of the space to draw. ``front``: also what must be refused (13 arguments, slots
    past the implementation's limit, 37..39 links, ORIG_STACK/SHARE_IPMODIFY) and the edge layouts;
    without it, valid in-range cases on nudged layouts (the base strategies)."""

    caps: Capabilities | None = None
    targets: tuple[TargetKind, ...] = TARGET_KINDS
    sleds: Mapping[TargetKind, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_SLEDS)
    front: bool = True
    strict_flags: bool = False
    min_links: int = 0
    max_links: int = MAX_TRAMP_LINKS + 1
    max_args: int = MAX_ARGS
    max_slots: int | None = None
    perturb: bool = True
    teardown: bool | None = None

    def slot_cap(self, target: TargetKind) -> int:
        """Slots a plain argument list may take for ``target``."""
        cap = self.max_slots if self.max_slots is not None else MAX_SLOTS
        if self.caps is not None:
            cap = min(cap, self.caps.max_arg_slots)
        if target == "bpf_prog":
            cap = min(cap, BPF_PROG_MAX_SLOTS)
        return min(cap, STRUCT_OPS_MAX_SLOTS) if target == "struct_ops" else cap

    def arg_cap(self, target: TargetKind) -> int:
        cap = self.max_args if self.caps is None else min(self.max_args, self.caps.max_args)
        return min(cap, BPF_PROG_MAX_SLOTS) if target == "bpf_prog" else cap


def bounds(
    caps: Capabilities | None = None,
    *,
    target: TargetKind | Sequence[TargetKind] | None = None,
    sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None = None,
    front: bool = True,
    strict_flags: bool = False,
    min_links: int = 0,
    max_links: int = MAX_TRAMP_LINKS + 1,
    max_args: int = MAX_ARGS,
    max_slots: int | None = None,
    perturb: bool = True,
    teardown: bool | None = None,
) -> Bounds:
    """``Bounds`` for ``caps`` (None: every target and sled the eras know), over the target kinds
    asked for (all the caps declare when None) that have a sled key."""
    if target is None:
        kinds: tuple[TargetKind, ...] = tuple(sorted(caps.targets)) if caps is not None else TARGET_KINDS
    else:
        kinds = (target,) if isinstance(target, str) else tuple(target)
    keys = {k: sled_keys(k, sleds, caps) for k in kinds}
    kinds = tuple(k for k in kinds if keys[k])
    if not kinds:
        raise ValueError("no target kind has a sled to draw from")
    return Bounds(caps, kinds, {k: keys[k] for k in kinds}, front, strict_flags, min_links, max_links, max_args,
                  max_slots, perturb, teardown)


def sled_keys(target: TargetKind, sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None,
              caps: Capabilities | None) -> tuple[str, ...]:
    """The sled keys to draw for ``target``: given, declared by the caps, or every known one."""
    if sleds is not None:
        return tuple(sleds.get(target, ())) if isinstance(sleds, Mapping) else tuple(sleds)
    if caps is not None:
        keys = tuple(s.key for s in caps.sleds_for(target))
        if keys or target != "struct_ops":
            return keys
    return DEFAULT_SLEDS[target]  # struct_ops is called directly: the key is only carried along


def draw_args(draw: Draw, target: TargetKind, b: Bounds) -> tuple[tuple[int, bool], ...]:
    """Argument (size, is_struct) pairs: a plain list within the target's limits; with ``front``
    also lists dense in 16-byte structs (up to 24 slots, past the JIT's limit where the limit is
    the JIT's) and 13 arguments (-ENOTSUPP)."""
    most, cap = b.arg_cap(target), b.slot_cap(target)
    how = pick(draw, ("plain", "plain", "plain", "wide", "wide", "over")) if b.front else "plain"
    if how == "over" and target == "kernel_function":
        return tuple(pick(draw, ((8, False), (16, True), (4, False))) for _ in range(MAX_ARGS + 1))
    if how == "wide" and target != "bpf_prog":
        room = cap if target == "struct_ops" else max(cap, MAX_SLOTS)
        n_struct = min(most, room // 2) if draw.flag() else draw.int_in(0, min(most, room // 2))
        n_scalar = draw.int_in(0, max(0, min(most - n_struct, room - 2 * n_struct)))
        out: list[tuple[int, bool]] = [(pick(draw, SCALAR_SIZES), False) for _ in range(n_scalar)]
        for _ in range(n_struct):
            out.insert(draw.int_in(0, len(out)), (16, True))
        return tuple(out)
    kept: list[tuple[int, bool]] = []
    for _ in range(draw.int_in(0, most)):
        kind = pick(draw, ("scalar", "scalar", "scalar", "struct", "struct16"))
        arg = ((pick(draw, STRUCT_SIZES), True) if kind == "struct" else (16, True) if kind == "struct16"
               else (pick(draw, SCALAR_SIZES), False))
        if target == "bpf_prog":  # a BPF program's arguments are its registers: scalars only
            arg = (arg[0] if not arg[1] else 8, False)
        if sum((s + 7) // 8 for s, _ in kept) + (arg[0] + 7) // 8 > cap:
            break
        kept.append(arg)
    return tuple(kept)


def draw_link_count(draw: Draw, b: Bounds) -> int:
    """Small counts most often, any count up to the bound, and (front) the exact limit."""
    how = pick(draw, ("small", "small", "small", "small", "any", "edge") if b.front else ("small", "any"))
    lo, hi = b.min_links, max(b.min_links, b.max_links)
    if how == "edge":
        return pick(draw, tuple(n for n in LINK_COUNT_EDGES if lo <= n <= hi) or (hi,))
    return draw.int_in(lo, min(hi, max(lo, 3)) if how == "small" else hi)


def draw_shape(draw: Draw, caps: Capabilities | None = None, *, strict_flags: bool = False,
               max_links: int = MAX_TRAMP_LINKS + 1, b: Bounds | None = None) -> Shape:
    """A shape over every dimension ``b`` (default: all that ``caps`` allows) covers."""
    if b is None:
        b = bounds(caps, strict_flags=strict_flags, max_links=max_links)
    target = pick(draw, b.targets)
    sled = pick(draw, b.sleds[target])
    ret_size = pick(draw, RET_SIZES[target])
    args = draw.part(lambda d: draw_args(d, target, b))
    if target == "struct_ops":
        return Shape(target, sled, args, ("fentry",), pick(draw, ENTER_PATTERNS[:3]), "derived", ret_size)
    choices = link_kinds(b.caps, target)
    kinds = tuple(draw.part(lambda d: pick(d, choices)) for _ in range(draw_link_count(draw, b)))
    flags: FlagVariant | int = "ip_arg" if draw.flag() else "derived"
    if b.front and draw.int_in(0, 2) == 2:
        flags = pick(draw, flag_variants(target))
    if b.strict_flags and draw.int_in(0, 3) == 3:
        flags = pick(draw, UNSPECIFIED_FLAGS) if draw.flag() else pick(draw, STRICT_VARIANTS)
    return Shape(target, sled, args, kinds, pick(draw, ENTER_PATTERNS), flags, ret_size)


# -- filling a shape ---------------------------------------------------------------------------


def enter_values(draw: Draw, pattern: EnterPattern, n: int) -> tuple[int, ...]:
    """``__bpf_prog_enter`` results per link: 0 skip, 1 no stats, >= 2 a start time."""
    if pattern == "run":
        return (1,) * n
    if pattern == "skip":
        return (0,) * n
    if pattern == "stats":
        return tuple(start_time(draw) for _ in range(n))
    return tuple(start_time(draw) if i % 2 == 0 else 0 for i in range(n))


def flags_for(shape: Shape) -> tuple[int | None, bool]:
    """(raw flags or None for derived, whether some link asks for the func ip)."""
    if isinstance(shape.flags, int):
        return shape.flags, False
    if shape.target == "struct_ops":
        return None, False
    variant = shape.flags
    wants_ip = variant in ("ip_arg", "ip_arg+tail_call") and bool(shape.kinds)  # only a link can ask
    if variant in ("derived", "ip_arg"):
        return None, wants_ip
    calls_orig = any(k != "fentry" for k in shape.kinds)
    base = (F_CALL_ORIG | F_SKIP_FRAME) if calls_orig else F_RESTORE_REGS
    if wants_ip:
        base |= F_IP_ARG
    if variant == "skip_frame_flipped":
        return base ^ F_SKIP_FRAME, False
    if variant == "ip_arg_forced":
        return base | F_IP_ARG, False
    if "tail_call" in variant:
        return base | F_TAIL_CALL_CTX, wants_ip
    if variant == "orig_stack":  # what trampoline.c hands the JIT with SHARE_IPMODIFY and CALL_ORIG
        extra = (F_SHARE_IPMODIFY | F_ORIG_STACK | F_SKIP_FRAME) if calls_orig else F_ORIG_STACK
        return base | extra, False
    return base | F_SHARE_IPMODIFY, False


def link_r0(draw: Draw, kind: LinkKind, shape: Shape) -> int:
    """R0 of one program: fmod_ret values half the time for fmod_ret, the member's return-size
    edges two times in three for struct_ops, else ``ret_value``."""
    if shape.target == "struct_ops":
        return value64(draw) if draw.int_in(0, 2) == 2 else sized_value(draw, shape.ret_size or 8)
    if kind == "fmod_ret" and draw.flag():
        return pick(draw, FMOD_RET_VALUES)
    return ret_value(draw)


def _link(draw: Draw, shape: Shape, i: int, enter: int, wants_ip: bool) -> Link:
    """The ``i``-th program of ``shape``: R0, cookie, ip use (the first one asks when any does)."""
    kind = shape.kinds[i]
    return Link(kind=kind, r0=link_r0(draw, kind, shape), cookie=value64(draw) if draw.flag() else 0, enter=enter,
                wants_ip=wants_ip and (i == 0 or draw.flag()), session_cookie=kind == "fsession" and draw.flag())


def build_case(draw: Draw, caps: Capabilities | None, shape: Shape, b: Bounds | None = None) -> Case:
    """Fill ``shape`` with drawn values and a layout; a valid case for ``caps`` when the shape is."""
    b = b if b is not None else Bounds(caps)
    sled = caps.sled_for(shape.target, shape.sled) if caps is not None else None
    ret_signed = draw.flag()  # drawn early, beside the shape's return size (hypothesis keeps them close)
    layout = draw.part(lambda d: draw_layout(d, shape.target, sled, front=b.front, perturb=b.perturb))
    args = tuple(Arg(size=size, is_struct=is_struct, signed=not is_struct and draw.flag())
                 for size, is_struct in shape.args)
    nslots = sum(a.slots for a in args)
    values = [value64(draw) for _ in range(nslots)]
    store = None
    if nslots and draw.flag():
        slot = draw.int_in(0, nslots - 1)
        values[slot] = layout.data + 8 * draw.int_in(0, DATA_SIZE // 8 - 1)
        store = Store(slot=slot, value=value64(draw))
    body = Body(
        k=value64(draw),
        coeffs=tuple(draw.int_in(-2048, 2047) if draw.flag() else draw.int_in(-2, 2)
                     for _ in range(draw.int_in(0, nslots))),
        ret32=draw.flag(),
        store=store,
        calls_helper=draw.flag(),
        uses_saved=draw.int_in(0, 11) if draw.flag() else 0,
        frame_pointer=draw.flag(),
        compressed=draw.flag(),
        a5=value64(draw),
    )
    raw_flags, wants_ip = flags_for(shape)
    enters = enter_values(draw, shape.enter, len(shape.kinds))
    links = tuple(_link(draw, shape, i, enters[i], wants_ip) for i in range(len(shape.kinds)))
    function = Function(args=args, values=tuple(values), body=body, ret_size=shape.ret_size, ret_signed=ret_signed)
    teardown = b.teardown if b.teardown is not None else draw.int_in(0, 3) == 3
    return Case(target=shape.target, function=function, sled=shape.sled, links=links, layout=layout,
                flags=raw_flags, teardown=teardown, seed=draw.u64() & MASK64)


def draw_case(draw: Draw, b: Bounds) -> Case:
    """A case of the part of the space ``b`` describes."""
    return build_case(draw, b.caps, draw_shape(draw, b=b), b)
