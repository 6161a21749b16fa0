"""64-bit values of the case space (``fuzz.space``) and their edges: sign boundaries of every size a
value is returned or passed at, with garbage above the size; extension and ``li`` edges; fmod_ret
and ``__bpf_prog_enter`` values.

A return value travels in a 64-bit register whatever its BTF size, and the trampoline must extend
it per that size (struct_ops: sign-extend 1/2-byte signed values, pass unsigned ones unchanged,
``sext.w`` 4-byte ones). A dropped or wrong extension only shows on a value whose bit at the
size's sign position is set, or whose bits above the size are not its own sign extension: plain
random integers (mostly small under hypothesis) rarely are. Hence: the sign edges of each size
(``0x7f/0x80/0xff``, ``0x7fff/0x8000/0xffff``, ``0x7fffffff/0x80000000/0xffffffff``, ``2^63-1,
2^63, 2^64-1``), and the same low bits under a register's worth of garbage.
"""

from __future__ import annotations

from collections.abc import Sequence

from sledfuzz.fuzz.draw import Draw, pick
from sledfuzz.model.case import MASK64

#: The sizes a value is returned or passed at, in bytes.
VALUE_SIZES: tuple[int, ...] = (1, 2, 4, 8)

#: What a register may hold above a value's size: a pattern with both halves distinct, all ones (a
#: sign-extended negative), the top bit alone, alternating bits, nothing. (The revealing ones
#: first: generators favour the first choices.)
HIGH_GARBAGE: tuple[int, ...] = (0xDEADBEEF_CAFEF00D, MASK64, 1 << 63, 0x5555_5555_5555_5555, 0)


def size_mask(size: int) -> int:
    """The bits of a ``size``-byte value (size 0, a void return, counts as 8)."""
    return MASK64 if size in (0, 8) else (1 << (8 * size)) - 1


def sign_edges(size: int) -> tuple[int, ...]:
    """Smallest negative, all-ones and largest positive ``size``-byte values, then 0 and 1."""
    bits = 8 * size if size in VALUE_SIZES else 64
    return 1 << (bits - 1), (1 << bits) - 1, (1 << (bits - 1)) - 1, 0, 1


#: Every sign edge of every size, low bits only.
SIGN_EDGES: tuple[int, ...] = tuple(dict.fromkeys(v for s in VALUE_SIZES for v in sign_edges(s)))


def with_garbage(low: int, size: int, high: int) -> int:
    """``low``'s ``size``-byte value with ``high``'s bits above it."""
    mask = size_mask(size)
    return ((low & mask) | (high & ~mask)) & MASK64


def above_size(value: int, size: int) -> bool:
    """Some bit above the value's size is set."""
    return bool(value & ~size_mask(size) & MASK64)


def sign_bit_set(value: int, size: int) -> bool:
    """The sign bit of the ``size``-byte value is set."""
    bits = 64 if size in (0, 8) else 8 * size
    return bool(value >> (bits - 1) & 1)


#: 64-bit values that break sign/zero extension, 32-bit truncation and ``li`` lengths.
EDGE_U64: tuple[int, ...] = tuple(dict.fromkeys((
    *SIGN_EDGES, 2, 3, 0x7FF, 0x800, 0xFFF, 0x1_0000_0000, 0x1_0000_0001, 0xFFFFFFFF_00000000, MASK64 - 21,
    0xFFFFFFEA, 0xDEADBEEF, 0xFFFFFFFF80000000, 0xFFFFFFFF_FFFF8000, 0xFFFFFFFF_FFFFFF80,
)))
#: fmod_ret R0 values: zero (no skip), small, -EINVAL, and ones whose low 32 bits are zero (riscv
#: tests the sign-extended 32-bit a0, so these do NOT short-circuit; SEMANTICS 3.7).
FMOD_RET_VALUES: tuple[int, ...] = (
    0, 1, 0xFFFFFFEA, MASK64 - 21, 0x1_0000_0000, 0xFFFFFFFF_00000000, 0x80000000_00000000, 0x80000000,
)
#: ``__bpf_prog_enter`` start times (>= 2): the sign and 32-bit edges.
START_EDGES: tuple[int, ...] = (2, 0x7FFFFFFF, 0x80000000, 0x80000000_00000000, MASK64)


def sized_value(draw: Draw, size: int) -> int:
    """A sign edge of a ``size``-byte value with garbage above it."""
    # the revealing garbage first: hypothesis often draws a choice's first option (and u64 small)
    high = draw.u64() if draw.int_in(0, 2) == 2 else pick(draw, HIGH_GARBAGE)
    return with_garbage(pick(draw, sign_edges(size)), size, high)


def value64(draw: Draw) -> int:
    """A 64-bit value: small, an extension edge, uniform, small negative, or a sized sign edge under
    garbage (the last three have high bits set)."""
    how = draw.int_in(0, 4)
    if how == 0:
        return draw.int_in(0, 64)
    if how == 1:
        return pick(draw, EDGE_U64)
    if how == 2:
        return draw.u64() & MASK64
    if how == 3:
        return draw.int_in(-64, -1) & MASK64
    return sized_value(draw, pick(draw, VALUE_SIZES))


def ret_value(draw: Draw, sizes: Sequence[int] = VALUE_SIZES) -> int:
    """A program's R0: mostly edges of the return sizes under garbage (zero hides extension bugs)."""
    return sized_value(draw, pick(draw, sizes)) if draw.int_in(0, 2) else value64(draw)


def start_time(draw: Draw) -> int:
    """A ``__bpf_prog_enter`` result that means "run, with stats" (>= 2)."""
    how = draw.int_in(0, 2)
    return draw.int_in(2, 0xFFFF) if how == 0 else pick(draw, START_EDGES) if how == 1 else draw.int_in(2, MASK64)
