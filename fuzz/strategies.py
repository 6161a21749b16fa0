"""Hypothesis strategies for cases: the case space (``fuzz.space``) run on hypothesis's draws.

Each choice of the space becomes one hypothesis draw, so these strategies cover exactly what the
fast generator (``fuzz.shape``) covers, with the same edge biases, and shrink towards each
choice's first option: no links, no arguments, derived flags, the default layout, zero values.
``cases`` is the base part of the space (valid in-range requests on nudged layouts), ``fuzz_cases``
all of it (also what must be refused, and the edge layouts), ``search_cases`` what campaigns search
with. ``edge_examples`` lists the exact reach-limit and rounding-edge layouts for ``@example``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from sledfuzz.fuzz.draw import Draw
from sledfuzz.fuzz.layouts import PAGE, auipc_offset, draw_edge_layout, edge_layout
from sledfuzz.fuzz.space import Bounds, bounds, draw_case, link_kinds
from sledfuzz.model.caps import Capabilities, SledLayout, TargetKind
from sledfuzz.model.case import MASK64, Arg, Body, Case, Function, Layout, Link, LinkKind
from sledfuzz.model.contract import HOSTS_SPAN
from sledfuzz.model.semantics import REACH_HI, REACH_LO

T = TypeVar("T")


class HypothesisDraw:
    """The space's choices as hypothesis draws (integers shrink to their lower bound, flags to False)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def int_in(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi)) if hi > lo else lo

    def flag(self) -> bool:
        return self._draw(st.booleans())

    def u64(self) -> int:
        return self._draw(st.integers(0, MASK64))

    def part(self, fn: Callable[[Draw], T]) -> T:
        return self._draw(_part(fn))


@st.composite
def _part(draw: st.DrawFn, fn: Callable[[Draw], T]) -> T:
    """One part of a case as a nested strategy: a span hypothesis's shrinker handles as a whole."""
    return fn(HypothesisDraw(draw))


@st.composite
def space_cases(draw: st.DrawFn, b: Bounds) -> Case:
    """Cases of the part of the space ``b`` describes."""
    return draw_case(HypothesisDraw(draw), b)


def cases(
    *,
    target: TargetKind | Sequence[TargetKind] | None = None,
    sleds: Mapping[TargetKind, Sequence[str]] | Sequence[str] | None = None,
    caps: Capabilities | None = None,
    min_links: int = 0,
    max_links: int = 8,
    max_args: int = 12,
    max_slots: int | None = None,
    perturb_layout: bool = True,
    teardown: bool | None = None,
) -> st.SearchStrategy[Case]:
    """Valid cases with derived flags. ``target`` fixes the kind (or a choice of kinds); ``sleds``
    the keys per kind (or one list for all); ``caps`` restricts targets, sleds, argument counts and
    slots to what an implementation declares. ``teardown`` None draws it."""
    return space_cases(bounds(caps, target=target, sleds=sleds, front=False, min_links=min_links,
                              max_links=max_links, max_args=max_args, max_slots=max_slots,
                              perturb=perturb_layout, teardown=teardown))


def fuzz_cases(
    *,
    caps: Capabilities | None = None,
    target: TargetKind | Sequence[TargetKind] | None = None,
    strict_flags: bool = False,
    max_links: int = 39,
) -> st.SearchStrategy[Case]:
    """Cases over every dimension of DESIGN §1 for ``caps`` (``fuzz.space``), including what the
    implementation must refuse and, with ``strict_flags``, the unspecified flag sets."""
    return space_cases(bounds(caps, target=target, strict_flags=strict_flags, max_links=max_links))


def search_cases(caps: Capabilities, *, strict_flags: bool = False) -> st.SearchStrategy[Case]:
    """What campaigns search with: the whole space for one implementation (the fast generator,
    ``fuzz.shape.case_from_draw``, draws from the same bounds)."""
    return fuzz_cases(caps=caps, strict_flags=strict_flags)


def case_dicts(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """The JSON form of ``cases(**kwargs)`` (for tests of the loader and of the corpus)."""
    return cases(**kwargs).map(lambda c: c.to_dict())


@st.composite
def edge_layouts(draw: st.DrawFn, *, target: TargetKind = "bpf_prog", sled: SledLayout | None = None) -> Layout:
    """Layouts whose sled call sits on the auipc/jalr rounding edge or exactly at a reach limit
    (kernel functions only in reach: ftrace does not check), or whose host calls sit at the
    image's reach limits (``fuzz.space.draw_edge_layout``)."""
    return draw_edge_layout(HypothesisDraw(draw), target, sled)


def edge_examples(caps: Capabilities) -> list[Case]:
    """Explicit cases at the reach limits and on the rounding edge, one per declared sled, target
    and link mix (for ``@example``: random integers essentially never hit these exact offsets)."""
    out: list[Case] = []
    fn = Function(args=(Arg(8), Arg(8)), values=(1, 2), body=Body(k=3, coeffs=(1, 1)))
    for sled in caps.sleds:
        if sled.target not in caps.targets or sled.target == "struct_ops":
            continue
        off = auipc_offset(sled)
        limits = [REACH_HI - 8, REACH_LO] + ([REACH_HI, REACH_LO - 8] if sled.target == "bpf_prog" else [])
        lays = [edge_layout("reach", d, off=off, hosts_low=0, im=Layout().im, progs=Layout().progs) for d in limits]
        lays += [edge_layout("round", d, off=off, hosts_low=0x800, im=Layout().im, progs=Layout().progs)
                 for d in (0x100 * PAGE + 0x800, 0x100 * PAGE + 0x7F8, -0x100 * PAGE + 0x800)]
        lays += [edge_layout("hosts", d, off=off, hosts_low=0, im=Layout().im, progs=Layout().progs)
                 for d in (REACH_HI - HOSTS_SPAN, REACH_HI, REACH_LO)]
        mixes: tuple[tuple[LinkKind, ...], ...] = (("fentry",), tuple(k for k in link_kinds(None, sled.target)))
        for lay in lays:
            for kinds in mixes:
                out.append(Case(target=sled.target, function=fn, sled=sled.key,
                                links=tuple(Link(kind=k, r0=5, cookie=7) for k in kinds), layout=lay))
    return out
