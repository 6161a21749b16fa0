"""Case shapes and a draw-driven case builder shared by the atheris harness and ``exhaust``.

A *shape* fixes everything structural about a case (target, sled, argument sizes, the ordered
link kinds, the enter-result pattern, the flag variant); values are then drawn per shape from a
``Draw`` (libFuzzer bytes, or a seeded ``random.Random``). The builder keeps one invariant: for
any draw sequence the result is a valid ``Case`` for the given capabilities — a declared sled,
a supported target, a ftrace patch within reach — so no byte string is wasted or crashes.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from fuzz.edges import HIGH_GARBAGE, SIGN_EDGES, VALUE_SIZES, sign_edges, with_garbage
from model.caps import Capabilities, TargetKind
from model.case import DATA_SIZE, MASK64, Arg, Body, Case, Function, Layout, Link, LinkKind, Store
from model.contract import (
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SHARE_IPMODIFY,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
)

T = TypeVar("T")

#: auipc+jalr reach (SEMANTICS 2.3): [-2^31 - 2^11, 2^31 - 2^11).
REACH_END = (1 << 31) - (1 << 11)
REACH_MIN = -(1 << 31) - (1 << 11)

#: 64-bit values that break sign/zero extension, 32-bit truncation and li lengths.
INTERESTING_U64: tuple[int, ...] = tuple(dict.fromkeys((
    *SIGN_EDGES, 2, 3, 0x7FF, 0x800, 0xFFF, 0x1_0000_0000, 0x1_0000_0001, 0xFFFFFFFF_00000000,
    MASK64 - 21, 0xFFFFFFEA, 0xDEADBEEF, 0xFFFFFFFF_FFFF8000, 0xFFFFFFFF_FFFFFF80,
)))
#: fmod_ret R0 values: zero (no skip), small, -EINVAL, and ones whose low 32 bits are zero
#: (riscv tests the sign-extended 32-bit a0, so these do NOT short-circuit; SEMANTICS 3.7).
FMOD_RET_VALUES: tuple[int, ...] = (
    0, 1, 0xFFFFFFEA, MASK64 - 21, 0x1_0000_0000, 0xFFFFFFFF_00000000, 0x80000000_00000000, 0x80000000,
)
#: Offsets whose low 12 bits put bit 11 on either side of the auipc/jalr rounding edge.
LOW12_EDGES: tuple[int, ...] = (0x000, 0x004, 0x7F8, 0x7FC, 0x800, 0x804, 0xFFC)
#: image - func distances at and next to the exact reach limits (4-byte aligned).
REACH_EDGE_DELTAS: tuple[int, ...] = (REACH_END - 4, REACH_MIN, REACH_END - 0x1000, REACH_MIN + 0x1000)

#: MAX_BPF_FUNC_REG_ARGS: a BPF-program target has at most 5 argument slots (a0-a4; a6 is its
#: tail-call counter).
BPF_PROG_MAX_SLOTS = 5

#: struct_ops members stay in registers: the one-frame trampoline would read stack arguments at the
#: two-frame offsets (SEMANTICS 3.3, an [I] hazard with no known member to trigger it).
STRUCT_OPS_MAX_SLOTS = 8

EnterPattern = Literal["run", "stats", "skip", "stats-then-skip"]
ENTER_PATTERNS: tuple[EnterPattern, ...] = ("run", "stats", "skip", "stats-then-skip")

FlagVariant = Literal["derived", "ip_arg", "tail_call", "ip_arg+tail_call", "orig_stack", "share_ipmodify"]
FLAG_VARIANTS: tuple[FlagVariant, ...] = (
    "derived", "ip_arg", "tail_call", "ip_arg+tail_call", "orig_stack", "share_ipmodify",
)

#: Unspecified raw flag sets (SEMANTICS 3.2): the core never generates them, the JIT does not refuse.
UNSPECIFIED_FLAGS: tuple[int, ...] = (
    F_RESTORE_REGS | F_SKIP_FRAME,
    F_SKIP_FRAME,
    F_CALL_ORIG,
    F_CALL_ORIG | F_RESTORE_REGS,
    0,
)


class Draw(Protocol):
    """A source of choices. Implementations must never raise, whatever they are fed."""

    def int_in(self, lo: int, hi: int) -> int: ...

    def flag(self) -> bool: ...

    def u64(self) -> int: ...


def pick(draw: Draw, seq: Sequence[T]) -> T:
    return seq[draw.int_in(0, len(seq) - 1)]


def value64(draw: Draw) -> int:
    """A 64-bit value, biased: half the time one of INTERESTING_U64 or a sign edge of some size
    under garbage (``sized_value``), else uniform-ish."""
    if draw.flag():
        return pick(draw, INTERESTING_U64) if draw.flag() else sized_value(draw, pick(draw, VALUE_SIZES))
    return draw.u64() & MASK64


def sized_value(draw: Draw, size: int) -> int:
    """A sign edge of a ``size``-byte value with garbage above it (``fuzz.edges``)."""
    high = pick(draw, HIGH_GARBAGE) if draw.flag() else draw.u64()
    return with_garbage(pick(draw, sign_edges(size)), size, high)


class RandomDraw:
    """Draws from a seeded ``random.Random`` (exhaust mode: values per shape)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int_in(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi) if hi > lo else lo

    def flag(self) -> bool:
        return self.rng.random() < 0.5

    def u64(self) -> int:
        return self.rng.getrandbits(64)


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


def enter_values(draw: Draw, pattern: EnterPattern, n: int) -> tuple[int, ...]:
    """``__bpf_prog_enter`` results per link: 0 skip, 1 no stats, >= 2 a start time."""
    def start() -> int:
        return draw.int_in(2, 0xFFFF) if draw.flag() else pick(draw, (2, 0x7FFFFFFF, 0x80000000_00000000, MASK64))

    if pattern == "run":
        return (1,) * n
    if pattern == "skip":
        return (0,) * n
    if pattern == "stats":
        return tuple(start() for _ in range(n))
    return tuple(start() if i % 2 == 0 else 0 for i in range(n))


def flags_for(shape: Shape) -> tuple[int | None, bool]:
    """(raw flags or None for derived, whether some link asks for the func ip)."""
    if isinstance(shape.flags, int):
        return shape.flags, False
    if shape.target == "struct_ops":
        return None, False
    variant = shape.flags
    wants_ip = "ip_arg" in variant and bool(shape.kinds)  # only a link can ask for the ip
    if variant in ("derived", "ip_arg"):
        return None, wants_ip
    calls_orig = any(k != "fentry" for k in shape.kinds)
    base = (F_CALL_ORIG | F_SKIP_FRAME) if calls_orig else F_RESTORE_REGS
    if wants_ip:
        base |= F_IP_ARG
    if "tail_call" in variant:
        return base | F_TAIL_CALL_CTX, wants_ip
    if variant == "orig_stack":
        # What trampoline.c hands the JIT with SHARE_IPMODIFY and CALL_ORIG (SEMANTICS 3.1).
        extra = (F_SHARE_IPMODIFY | F_ORIG_STACK | F_SKIP_FRAME) if calls_orig else F_ORIG_STACK
        return base | extra, False
    return base | F_SHARE_IPMODIFY, False


_MAPPED = ("parent", "func", "image", "hosts", "data", "stack")
_MIN_GAP = 0x100000  # keep mapped regions at least 1 MiB apart


def _separated(layout: Layout) -> bool:
    addrs = sorted(getattr(layout, name) for name in _MAPPED)
    return all(b - a >= _MIN_GAP for a, b in itertools.pairwise(addrs))


def layout_from(draw: Draw, target: TargetKind, auipc_offset: int = 0) -> Layout:
    """A layout, biased to the auipc/jalr rounding edge and the exact reach limits.

    The patched call goes from the sled (at ``func``) to ``image``; the JIT's calls go from the
    image to ``hosts`` and back to ``func + 8``; the body's helper call goes from ``func`` to
    ``hosts``. Invariants kept: ``image - func`` stays inside ftrace's reach (ftrace's own patch
    does not check, so outside it a case is invalid), ``hosts - func`` stays well inside it, and
    mapped regions never come within 1 MiB of each other (else the default layout is used).
    """
    base = Layout()
    mode = draw.int_in(0, 3)
    if mode == 0:
        return base
    func = base.func
    if mode == 1:  # rounding edge on the sled's call and on the JIT's calls
        img_delta = ((draw.int_in(0x100, 0x3FF) << 12) | pick(draw, LOW12_EDGES)) & ~3
        host_delta = ((draw.int_in(0x100, 0x3FF) << 12) | pick(draw, LOW12_EDGES)) & ~3
        if draw.flag():
            func = 0xFFFFFFFF90000000
            image = func + img_delta
            hosts = image + host_delta
        else:
            func = 0xFFFFFFFF90000000
            image = func - img_delta
            hosts = image - host_delta
    elif mode == 2:  # the exact reach limits of the sled's call (func -> image)
        delta = pick(draw, REACH_EDGE_DELTAS)
        func = 0xFFFFFFFF40000000 if delta > 0 else 0xFFFFFFFFC0000000
        image = func + auipc_offset + delta  # exact: measured from the sled's auipc
        hosts = func + delta // 2
    else:  # hosts at the far edge of the image's reach: the JIT's calls are in reach or -ERANGE
        delta = pick(draw, (REACH_END - 0x100, REACH_END + 0x1000, REACH_MIN + 0x800, REACH_MIN - 0x1000))
        if delta > 0:
            image = 0xFFFFFFFF00000000
            func = image + 0x400000
        else:
            image = 0xFFFFFFFFF0000000
            func = image - 0x400000
        hosts = image + delta
    out = Layout(
        parent=(func - 0x200000) & MASK64,
        func=func & MASK64,
        image=(image if mode == 2 else image & ~0xF) & MASK64,
        hosts=hosts & ~0xF & MASK64,
        ftrace_caller=(func + base.ftrace_caller - base.func) & MASK64,
        im=pick(draw, (base.im, 0xFFFFFFFF80000FF0, 0x7FFFF000, 0xFFFFFFFFFFFFF000, 0xFFFFFFD800000800)),
        progs=pick(draw, (base.progs, 0xFFFFFFFF81100800, 0xFFFFFFD800000000)),
        data=base.data,
        stack=base.stack,
    )
    return out if _separated(out) else base


def build_case(draw: Draw, caps: Capabilities, shape: Shape) -> Case:
    """Fill ``shape`` with drawn values; always a valid case for ``caps``."""
    sled = caps.sled_for(shape.target, shape.sled)
    layout = layout_from(draw, shape.target, 4 if sled is not None and sled.scheme == "ra_detour" else 0)
    args = tuple(Arg(size=size, is_struct=is_struct, signed=draw.flag()) for size, is_struct in shape.args)
    nslots = sum(a.slots for a in args)
    values = [value64(draw) for _ in range(nslots)]
    store = None
    if nslots and draw.int_in(0, 3) == 0:
        slot = draw.int_in(0, nslots - 1)
        values[slot] = layout.data + 8 * draw.int_in(0, DATA_SIZE // 8 - 1)
        store = Store(slot=slot, value=value64(draw))
    ncoeffs = draw.int_in(0, nslots)
    body = Body(
        k=value64(draw),
        coeffs=tuple(draw.int_in(-2048, 2047) if draw.flag() else draw.int_in(-2, 2) for _ in range(ncoeffs)),
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
    links = []
    for i, kind in enumerate(shape.kinds):
        if kind == "fmod_ret" and draw.flag():
            r0 = pick(draw, FMOD_RET_VALUES)
        elif shape.target == "struct_ops" and draw.int_in(0, 2):
            r0 = sized_value(draw, shape.ret_size or 8)  # R0 at the edges of the member's return size
        else:
            r0 = value64(draw)
        links.append(
            Link(
                kind=kind,
                r0=r0,
                cookie=0 if draw.flag() else value64(draw),
                enter=enters[i],
                wants_ip=wants_ip and (i == 0 or draw.flag()),
                session_cookie=kind == "fsession" and draw.flag(),  # drawn for session programs only
            )
        )
    function = Function(
        args=args,
        values=tuple(values),
        body=body,
        ret_size=shape.ret_size,
        ret_signed=draw.flag(),
    )
    return Case(
        target=shape.target,
        function=function,
        sled=shape.sled,
        links=tuple(links),
        layout=layout,
        flags=raw_flags,
        teardown=any(k in ("fexit", "fsession") for k in shape.kinds) and draw.int_in(0, 7) == 0,
        seed=draw.u64() & MASK64,
    )


def draw_shape(draw: Draw, caps: Capabilities, *, strict_flags: bool = False, max_links: int = 39) -> Shape:
    """A shape over every dimension the caps allow (the atheris harness's first choices)."""
    targets = sorted(t for t in caps.targets if caps.sleds_for(t))
    target: TargetKind = pick(draw, targets) if targets else "bpf_prog"
    sleds = caps.sleds_for(target)
    sled = pick(draw, sleds).key if sleds else "4,0/c"
    nargs = draw.int_in(0, 13) if target != "bpf_prog" else draw.int_in(0, BPF_PROG_MAX_SLOTS)
    args = tuple(
        (16, True) if draw.int_in(0, 3) == 0 else ((pick(draw, (1, 2, 4, 8, 12)), True) if draw.int_in(0, 7) == 0
                                                   else (pick(draw, (8, 8, 4, 2, 1)), False))
        for _ in range(nargs)
    )
    if target == "bpf_prog":  # R1-R5 only: no structs that would push past a4
        args = tuple((8, False) for _ in args)
    if target == "struct_ops":  # no struct_ops member has stack arguments (SEMANTICS 3.3, latent hazard)
        while sum((size + 7) // 8 for size, _ in args) > STRUCT_OPS_MAX_SLOTS:
            args = args[:-1]
    if target == "struct_ops":
        kinds: tuple[LinkKind, ...] = ("fentry",)
        ret_size = pick(draw, (8, 4, 2, 1, 0))
        flags: FlagVariant | int = "derived"
    else:
        nlinks = draw.int_in(0, 3) if draw.int_in(0, 7) else draw.int_in(0, max_links)
        choices: tuple[LinkKind, ...] = ("fentry", "fmod_ret", "fexit", "fsession") if caps.fsession else (
            "fentry", "fmod_ret", "fexit")
        kinds = tuple(pick(draw, choices) for _ in range(nlinks))
        ret_size = 8
        flags = pick(draw, FLAG_VARIANTS) if draw.int_in(0, 2) == 0 else pick(draw, ("derived", "ip_arg"))
        if strict_flags and draw.int_in(0, 3) == 0:
            flags = pick(draw, UNSPECIFIED_FLAGS)
    return Shape(target, sled, args, kinds, pick(draw, ENTER_PATTERNS), flags, ret_size)


def case_from_draw(draw: Draw, caps: Capabilities, *, strict_flags: bool = False) -> Case:
    return build_case(draw, caps, draw_shape(draw, caps, strict_flags=strict_flags))


def struct_ops_flags(ret_size: int) -> int:
    """What the core derives for a struct_ops member (INDIRECT [| RET_FENTRY_RET])."""
    return F_INDIRECT | (F_RET_FENTRY_RET if ret_size > 0 else 0)
