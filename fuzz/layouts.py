"""Where a case's regions sit: the default layout, nudged layouts, and the edge layouts.

The edges are the auipc/jalr rounding edge (bit 11 of a call offset, x.800), the exact reach
limits of the sled's call (``[-2^31 - 2^11, 2^31 - 2^11)``), the JIT's host calls at the image's
reach limits, and the ``li`` lengths of ``im`` and the program objects. Kernel-function targets
only get in-reach sled offsets (ftrace does not check, so an unreachable one is an invalid case);
BPF-program targets also get the first unreachable ones, which ``bpf_arch_text_poke`` must refuse
with -ERANGE. Part of the case space (``fuzz.space``).
"""

from __future__ import annotations

from sledfuzz.fuzz.draw import Draw, pick
from sledfuzz.model.caps import SledLayout, TargetKind
from sledfuzz.model.case import MASK64, STACK_SIZE, Layout
from sledfuzz.model.contract import HOSTS_SPAN
from sledfuzz.model.semantics import REACH_HI, REACH_LO

#: Low 12 bits of a call offset on either side of the auipc/jalr rounding edge (bit 11).
ROUND_EDGES: tuple[int, ...] = (0x000, 0x008, 0x7F8, 0x800, 0x808, 0xFF8)
#: The same for 16-byte aligned host addresses (the JIT's calls from a page-aligned image).
HOST_EDGES: tuple[int, ...] = (0x000, 0x7F0, 0x800, 0x810, 0xFF0)
#: ``im`` and the program objects: their ``li`` lengths (bit 11 and bit 31 edges).
IM_EDGES: tuple[int, ...] = (Layout().im, 0xFFFFFFFF80000FF8, 0x7FFFF800, 0xFFFFFFFFFFFFF800, 0xFFFFFFD800000800)
PROGS_EDGES: tuple[int, ...] = (Layout().progs, 0xFFFFFFFF81100800, 0xFFFFFFD800000000)
#: Where edge layouts put their regions: far from the default layout's windows.
EDGE_DATA = 0xFFFFFFFFE0000000
EDGE_STACK = 0xFFFFFFFFE0100000
EDGE_FUNC = 0xFFFFFFFF90000000
PAGE = 0x1000


def auipc_offset(sled: SledLayout | None) -> int:
    """Where the sled's call is measured from: func + 4 for the 16-byte ra detour."""
    return 4 if sled is not None and sled.scheme == "ra_detour" else 0


def edge_layout(mode: str, d: int, *, off: int, hosts_low: int, im: int, progs: int) -> Layout:
    """One edge layout; ``d`` is the offset that matters for ``mode``: ``round`` and ``reach``, the
    sled's call ``image - (func + off)`` (image page aligned for ``round``); ``hosts``, the JIT's
    host calls ``hosts - image``. Regions stay at least 1 MiB apart, and never wrap around 2^64."""
    if mode == "round":
        func = EDGE_FUNC + ((-(d + off)) & 0xFFF)
        image = func + off + d
        hosts = image + 0x100000 + hosts_low if d > 0 else image - 0x100000 + hosts_low
        parent = func - 0x200000 if d > 0 else func + 0x200000
    elif mode == "reach":
        image = 0xFFFFFFFF10000000 if d < 0 else 0xFFFFFFFFC0000000
        func = image - off - d
        hosts = image + 0x100000 + hosts_low
        parent = func + 0x200000 if d < 0 else func - 0x200000
    else:
        image = 0xFFFFFFFF00400000 if d > 0 else 0xFFFFFFFFF0000000
        func = image - 0x400000
        hosts = image + d
        parent = func - 0x200000
    return Layout(
        parent=parent & MASK64, func=func & MASK64, image=image & MASK64, hosts=hosts & MASK64,
        ftrace_caller=(func + Layout().ftrace_caller - Layout().func) & MASK64,
        im=im, progs=progs, data=EDGE_DATA, stack=EDGE_STACK,
    )


def reach_limits(target: TargetKind) -> tuple[int, ...]:
    """Sled call offsets at the reach limits: in reach (last and first reachable, one page in),
    and for targets whose poke checks reach (not ftrace's) the first unreachable ones (-ERANGE)."""
    inside = (REACH_HI - 8, REACH_LO, REACH_LO + 8, REACH_HI - PAGE)
    return inside if target == "kernel_function" else (*inside, REACH_HI, REACH_LO - 8)


def draw_edge_layout(draw: Draw, target: TargetKind, sled: SledLayout | None) -> Layout:
    """A layout on the rounding edge, at the sled call's reach limits, or with host calls at the
    image's reach limits; ``im`` and the program objects at their ``li`` edges."""
    mode = pick(draw, ("round", "reach", "hosts"))
    if mode == "round":
        pages = draw.int_in(0x100, 0x3FF) * (-1 if draw.flag() else 1)
        d = pages * PAGE + pick(draw, ROUND_EDGES)
    elif mode == "reach":
        d = pick(draw, reach_limits(target))
    else:
        d = pick(draw, (REACH_HI - HOSTS_SPAN, REACH_HI - 0x800, REACH_HI, REACH_LO + PAGE, REACH_LO,
                        REACH_LO - 0x10)) & ~0xF
    return edge_layout(mode, d, off=auipc_offset(sled), hosts_low=pick(draw, HOST_EDGES),
                       im=pick(draw, IM_EDGES), progs=pick(draw, PROGS_EDGES))


def nudged_layout(draw: Draw) -> Layout:
    """The default layout with every address moved by a small aligned amount: each region keeps
    its own 1 MiB window (no overlap, every call in reach); ``im`` and the program objects move
    freely (their ``li`` length is what matters)."""
    base = Layout()

    def nudge(value: int, align: int, span: int = 0x80000) -> int:
        return (value + align * draw.int_in(0, span // align - 1)) & MASK64

    return Layout(
        parent=nudge(base.parent, 16), func=nudge(base.func, 8, 0x200), image=nudge(base.image, 4096),
        hosts=nudge(base.hosts, 16), ftrace_caller=nudge(base.ftrace_caller, 8, 0x400),
        im=draw.u64() & ~7 & MASK64 if draw.flag() else base.im,
        progs=(draw.int_in(0, MASK64 - 0x10000) & ~0xFF) if draw.flag() else base.progs,
        data=nudge(base.data, 4096), stack=nudge(base.stack, 0x10000, STACK_SIZE * 16),
    )


def draw_layout(draw: Draw, target: TargetKind, sled: SledLayout | None, *, front: bool, perturb: bool) -> Layout:
    """The default layout, a nudged one, or (``front``) an edge layout; ``perturb`` False: the default."""
    if not perturb:
        return Layout()
    how = pick(draw, ("default", "nudged", "nudged", "edge", "edge", "edge") if front else ("default", "nudged"))
    if how == "default":
        return Layout()
    return nudged_layout(draw) if how == "nudged" else draw_edge_layout(draw, target, sled)
