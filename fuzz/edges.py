"""64-bit edge values both case generators draw from (``strategies`` for hypothesis, ``shape`` for
the fast builder): sign boundaries of every size a value is returned or passed at, with garbage
above the size.

A return value travels in a 64-bit register whatever its BTF size, and the trampoline must extend
it per that size (struct_ops: sign-extend 1/2-byte signed values, pass unsigned ones unchanged,
``sext.w`` 4-byte ones). A dropped or wrong extension only shows on a value whose bit at the
size's sign position is set, or whose bits above the size are not its own sign extension: plain
random integers (mostly small under hypothesis) rarely are. Hence: the sign edges of each size
(``0x7f/0x80/0xff``, ``0x7fff/0x8000/0xffff``, ``0x7fffffff/0x80000000/0xffffffff``, ``2^63-1,
2^63, 2^64-1``), and the same low bits under a register's worth of garbage.
"""

from __future__ import annotations

from model.case import MASK64

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
