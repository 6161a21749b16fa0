"""PC-relative offset helpers: range checks and the auipc/jalr hi20/lo12 split (SEMANTICS 2.3)."""

from __future__ import annotations

from sledfuzz.emu.rv64 import encode

#: Reach of an auipc + jalr pair: [-2^31 - 2^11, 2^31 - 2^11).
AUIPC_JALR_MIN = -(1 << 31) - (1 << 11)
AUIPC_JALR_END = (1 << 31) - (1 << 11)


class ReachError(ValueError):
    """A PC-relative offset is outside what the instruction (pair) can reach."""


def fits_signed(value: int, bits: int) -> bool:
    """True when ``value`` is representable as a ``bits``-wide two's-complement integer."""
    if bits <= 0:
        raise ValueError(f"bits must be positive, got {bits}")
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


def sign_extend(value: int, bits: int) -> int:
    """Interpret the low ``bits`` bits of ``value`` as a signed number (e.g. a jalr lo12 field)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def in_auipc_jalr_range(off: int) -> bool:
    """True when auipc + jalr (or auipc + addi) can reach ``off`` bytes from the auipc."""
    return AUIPC_JALR_MIN <= off < AUIPC_JALR_END


def check_reach(off: int) -> None:
    """Raise ReachError when ``off`` is outside the auipc + jalr range; never truncate."""
    if not in_auipc_jalr_range(off):
        raise ReachError(f"offset {off:#x} outside auipc+jalr reach [{AUIPC_JALR_MIN:#x}, {AUIPC_JALR_END:#x})")


def split_auipc_jalr(off: int) -> tuple[int, int]:
    """Split ``off`` into (auipc hi20 field 0..0xfffff, jalr lo12 field 0..0xfff).

    Invariant: ``(sign_extend(hi20, 20) << 12) + sign_extend(lo12, 12) == off``. The +0x800
    before the shift compensates for jalr sign-extending its 12-bit immediate: when bit 11 of
    ``off`` is set, the low part is negative and the high part is one larger.
    """
    check_reach(off)
    return ((off + 0x800) >> 12) & 0xFFFFF, off & 0xFFF


def auipc_jalr(rd_auipc: int, rd_jalr: int, off: int) -> tuple[int, int]:
    """``auipc rd_auipc, hi20; jalr rd_jalr, lo12(rd_auipc)`` reaching ``off`` from the auipc."""
    hi20, lo12 = split_auipc_jalr(off)
    return encode.auipc(rd_auipc, hi20), encode.jalr(rd_jalr, rd_auipc, sign_extend(lo12, 12))
