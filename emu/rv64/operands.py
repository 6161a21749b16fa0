"""Operand checks shared by the RV64 encoders (``encode`` and ``encode_rvc``): a register number,
a signed or unsigned immediate that must fit its field, a bit slice. An operand that does not fit
raises ``EncodingError`` -- nothing is masked or wrapped silently."""

from __future__ import annotations


class EncodingError(ValueError):
    """An operand does not fit the instruction's field or is not allowed there."""


def register(reg: int, what: str = "register") -> int:
    if not 0 <= reg < 32:
        raise EncodingError(f"{what} x{reg} is not a register number 0..31")
    return reg


def nonzero_register(reg: int, what: str, *forbidden: int) -> int:
    register(reg, what)
    if reg == 0 or reg in forbidden:
        bad = ", ".join(f"x{r}" for r in (0, *forbidden))
        raise EncodingError(f"{what} may not be {bad} in this form (got x{reg})")
    return reg


def compressed_register(reg: int, what: str) -> int:
    """3-bit register field of the compressed forms: only x8..x15 can be named."""
    if not 8 <= reg <= 15:
        raise EncodingError(f"{what} x{reg} is not one of x8..x15 (compressed 3-bit register)")
    return reg - 8


def signed(value: int, bits: int, what: str, *, align: int = 1, nonzero: bool = False) -> int:
    """Check a signed immediate and return it masked to ``bits`` bits."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - align
    if not lo <= value <= hi:
        raise EncodingError(f"{what} {value} outside [{lo}, {hi}]")
    if value % align:
        raise EncodingError(f"{what} {value} is not a multiple of {align}")
    if nonzero and value == 0:
        raise EncodingError(f"{what} must be nonzero")
    return value & ((1 << bits) - 1)


def unsigned(value: int, hi: int, what: str, *, align: int = 1, lo: int = 0) -> int:
    """Check an unsigned immediate in [lo, hi] that is a multiple of ``align``."""
    if not lo <= value <= hi:
        raise EncodingError(f"{what} {value} outside [{lo}, {hi}]")
    if value % align:
        raise EncodingError(f"{what} {value} is not a multiple of {align}")
    return value


def upper20(value: int, what: str) -> int:
    """The U-type 20-bit field, accepted as signed (-0x80000..0x7ffff) or unsigned (..0xfffff)."""
    if not -0x80000 <= value <= 0xFFFFF:
        raise EncodingError(f"{what} {value:#x} outside [-0x80000, 0xfffff]")
    return value & 0xFFFFF


def bit_slice(value: int, hi: int, lo: int | None = None) -> int:
    """Bits hi..lo of value (lo defaults to hi), shifted down to bit 0."""
    lo = hi if lo is None else lo
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


