"""The fast case generator: the case space (``fuzz.space``) run on plain choices.

The random search and the mixed engine feed it a seeded ``random.Random`` (``RandomDraw``), the
atheris harness libFuzzer's bytes; ``exhaust`` enumerates shapes and fills them with
``build_case``. For any draw sequence the result is a valid ``Case`` for the capabilities (a
declared sled, a supported target, a ftrace patch within reach), so no byte string is wasted or
crashes. It covers the dimensions and edges of the hypothesis strategies because it is the same
description (tests/properties/test_case_space.py checks both reach every edge).
"""

from __future__ import annotations

from sledfuzz.fuzz.draw import Draw, PlainDraw, RandomDraw, pick
from sledfuzz.fuzz.edges import value64
from sledfuzz.fuzz.space import (
    ENTER_PATTERNS,
    FLAG_VARIANTS,
    UNSPECIFIED_FLAGS,
    EnterPattern,
    FlagVariant,
    Shape,
    bounds,
    build_case,
    draw_case,
    draw_shape,
    flag_variants,
    link_kinds,
)
from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import Case
from sledfuzz.model.contract import BPF_PROG_MAX_SLOTS, STRUCT_OPS_MAX_SLOTS

__all__ = [
    "BPF_PROG_MAX_SLOTS", "ENTER_PATTERNS", "FLAG_VARIANTS", "STRUCT_OPS_MAX_SLOTS", "UNSPECIFIED_FLAGS", "Draw",
    "EnterPattern", "FlagVariant", "PlainDraw", "RandomDraw", "Shape", "build_case", "case_from_draw", "draw_shape",
    "flag_variants", "link_kinds", "pick", "value64",
]


def case_from_draw(draw: Draw, caps: Capabilities, *, strict_flags: bool = False) -> Case:
    """A case over the whole space ``caps`` allows: what ``strategies.search_cases`` draws."""
    return draw_case(draw, bounds(caps, strict_flags=strict_flags))
