"""auipc/jalr offset split and reach (SEMANTICS 2.3) in emu/rv64/offsets.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sledfuzz.emu.rv64 import offsets
from sledfuzz.emu.rv64.offsets import ReachError
from sledfuzz.emu.rv64.regs import T0


def test_bjorn_example() -> None:
    """Björn Töpel's bpf_fentry_test1 sled (SEMANTICS 1.1): auipc t0 / jalr t0 for -0x8f40150."""
    assert offsets.split_auipc_jalr(-0x8F40150) == (0xF70C0, 0xEB0)
    assert offsets.auipc_jalr(T0, T0, -0x8F40150) == (0xF70C0297, 0xEB0282E7)


@pytest.mark.parametrize(
    ("off", "hi20", "lo12"),
    [
        (0x7FF, 0x00000, 0x7FF),
        (0x800, 0x00001, 0x800),
        (-0x801, 0xFFFFF, 0x7FF),
        (-0x8F40150, 0xF70C0, 0xEB0),
        (0x7FFFF7FF, 0x7FFFF, 0x7FF),
        (-0x80000800, 0x80000, 0x800),
        (0, 0, 0),
        (-1, 0, 0xFFF),
    ],
)
def test_split_table(off: int, hi20: int, lo12: int) -> None:
    assert offsets.split_auipc_jalr(off) == (hi20, lo12)


@pytest.mark.parametrize("off", [0x7FFFF800, 0x80000000, -0x80000801, 1 << 40, -(1 << 63)])
def test_out_of_range_raises(off: int) -> None:
    assert not offsets.in_auipc_jalr_range(off)
    with pytest.raises(ReachError):
        offsets.check_reach(off)
    with pytest.raises(ReachError):
        offsets.split_auipc_jalr(off)
    with pytest.raises(ReachError):
        offsets.auipc_jalr(T0, T0, off)


def test_range_bounds() -> None:
    assert offsets.in_auipc_jalr_range(-(2**31) - 2**11)
    assert offsets.in_auipc_jalr_range(2**31 - 2**11 - 1)
    assert not offsets.in_auipc_jalr_range(2**31 - 2**11)
    assert not offsets.in_auipc_jalr_range(-(2**31) - 2**11 - 1)
    assert issubclass(ReachError, ValueError)


def _sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


@given(st.integers(-(2**31) - 2**11, 2**31 - 2**11 - 1))
def test_split_reassembles(off: int) -> None:
    hi20, lo12 = offsets.split_auipc_jalr(off)
    assert 0 <= hi20 <= 0xFFFFF and 0 <= lo12 <= 0xFFF
    assert (_sext(hi20, 20) << 12) + _sext(lo12, 12) == off


@pytest.mark.parametrize(
    ("value", "bits", "fits"),
    [(0, 1, True), (-1, 1, True), (1, 1, False), (2047, 12, True), (2048, 12, False), (-2048, 12, True),
     (-2049, 12, False), (2**63 - 1, 64, True), (2**63, 64, False)],
)  # fmt: skip
def test_fits_signed(value: int, bits: int, fits: bool) -> None:
    assert offsets.fits_signed(value, bits) is fits


def test_sign_extend() -> None:
    assert offsets.sign_extend(0xEB0, 12) == -336
    assert offsets.sign_extend(0x7FF, 12) == 0x7FF
    assert offsets.sign_extend(0x80000, 20) == -0x80000
