"""Register numbers and names (emu/rv64/regs.py)."""

from __future__ import annotations

import pytest

from sledfuzz.emu.rv64 import regs


def test_abi_constants() -> None:
    assert (regs.ZERO, regs.RA, regs.SP, regs.GP, regs.TP) == (0, 1, 2, 3, 4)
    assert (regs.T0, regs.T1, regs.T2, regs.S0, regs.FP, regs.S1) == (5, 6, 7, 8, 8, 9)
    assert (regs.A0, regs.A5, regs.A7, regs.S2, regs.S11, regs.T3, regs.T6) == (10, 15, 17, 18, 27, 28, 31)


def test_names_table() -> None:
    assert len(regs.NAMES) == 32
    assert regs.NAMES[8] == "s0"
    assert regs.NAMES[:3] == ("zero", "ra", "sp")
    assert regs.NAMES[10:18] == tuple(f"a{i}" for i in range(8))
    assert regs.NAMES[18:28] == tuple(f"s{i}" for i in range(2, 12))
    assert regs.NAMES[28:] == ("t3", "t4", "t5", "t6")


@pytest.mark.parametrize(
    ("name", "num"),
    [("x0", 0), ("x5", 5), ("X31", 31), ("t0", 5), ("fp", 8), ("s0", 8), ("s1", 9), ("a5", 15), ("zero", 0)],
)
def test_reg_number(name: str, num: int) -> None:
    assert regs.reg_number(name) == num


@pytest.mark.parametrize("name", ["x32", "a8", "", "r1", "s12", "x-1"])
def test_reg_number_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="register"):
        regs.reg_number(name)


def test_every_name_round_trips() -> None:
    for num, name in enumerate(regs.NAMES):
        assert regs.reg_number(name) == num
        assert regs.reg_number(f"x{num}") == num
