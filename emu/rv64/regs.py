"""RV64 integer register numbers and their ABI names."""

from __future__ import annotations

ZERO = 0
RA = 1
SP = 2
GP = 3
TP = 4
T0 = 5
T1 = 6
T2 = 7
S0 = 8
FP = 8
S1 = 9
A0 = 10
A1 = 11
A2 = 12
A3 = 13
A4 = 14
A5 = 15
A6 = 16
A7 = 17
S2 = 18
S3 = 19
S4 = 20
S5 = 21
S6 = 22
S7 = 23
S8 = 24
S9 = 25
S10 = 26
S11 = 27
T3 = 28
T4 = 29
T5 = 30
T6 = 31

#: ABI name of each register, indexed by number (GNU as / objdump spelling; x8 is "s0").
NAMES: tuple[str, ...] = (
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2",
    "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7",
    "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
)  # fmt: skip

_BY_NAME: dict[str, int] = {name: num for num, name in enumerate(NAMES)}
_BY_NAME["fp"] = FP
_BY_NAME.update({f"x{num}": num for num in range(32)})


def reg_number(name: str) -> int:
    """Number of a register given as ``x5``, ``t0`` or ``fp`` (case-insensitive)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown RV64 register name {name!r}") from None


def is_creg(reg: int) -> bool:
    """True for x8..x15, the registers the 3-bit fields of the compressed forms can name."""
    return 8 <= reg <= 15
