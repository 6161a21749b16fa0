"""How a unicorn run ends: unicorn's error codes and invalid accesses as the engine's StopKind.

Why a module of its own: the tables are the one place that says which unicorn outcome is which
stop (and which unicorn 2.1.4 oddity ends up where); the engine only looks them up.
"""

from __future__ import annotations

from unicorn import (
    UC_HOOK_MEM_FETCH_PROT,
    UC_HOOK_MEM_FETCH_UNMAPPED,
    UC_HOOK_MEM_READ_PROT,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE_PROT,
    UC_HOOK_MEM_WRITE_UNMAPPED,
)
from unicorn import unicorn_const as ucc

from sledfuzz.emu.engine.base import MASK64, StopKind

#: The invalid-access hook's kinds: every unmapped or protected access.
HOOK_INVALID = (
    UC_HOOK_MEM_READ_UNMAPPED
    | UC_HOOK_MEM_WRITE_UNMAPPED
    | UC_HOOK_MEM_FETCH_UNMAPPED
    | UC_HOOK_MEM_READ_PROT
    | UC_HOOK_MEM_WRITE_PROT
    | UC_HOOK_MEM_FETCH_PROT
)
ERR_STOP: dict[int, tuple[StopKind, str]] = {
    ucc.UC_ERR_READ_UNMAPPED: ("read_unmapped", ""),
    ucc.UC_ERR_WRITE_UNMAPPED: ("write_unmapped", ""),
    ucc.UC_ERR_FETCH_UNMAPPED: ("fetch_unmapped", ""),
    ucc.UC_ERR_FETCH_PROT: ("fetch_prot", ""),
    # Pages are mapped readable and writable, so these mean a protection change by someone else.
    ucc.UC_ERR_READ_PROT: ("read_unmapped", "read from a read-protected page"),
    ucc.UC_ERR_WRITE_PROT: ("write_unmapped", "write to a write-protected page"),
    ucc.UC_ERR_READ_UNALIGNED: ("misaligned", "unaligned read"),
    ucc.UC_ERR_WRITE_UNALIGNED: ("misaligned", "unaligned write"),
    ucc.UC_ERR_FETCH_UNALIGNED: ("misaligned", "unaligned fetch"),
    # ebreak / c.ebreak end up here in unicorn 2.1.4.
    ucc.UC_ERR_INSN_INVALID: ("illegal_insn", "invalid instruction (ebreak or undecodable)"),
}
INVALID_ACCESS_STOP: dict[int, StopKind] = {
    ucc.UC_MEM_READ_UNMAPPED: "read_unmapped",
    ucc.UC_MEM_WRITE_UNMAPPED: "write_unmapped",
    ucc.UC_MEM_FETCH_UNMAPPED: "fetch_unmapped",
    ucc.UC_MEM_FETCH_PROT: "fetch_prot",
    ucc.UC_MEM_READ_PROT: "read_unmapped",
    ucc.UC_MEM_WRITE_PROT: "write_unmapped",
}


def insn_len(lo: int) -> int:
    """RISC-V instruction length from its lowest byte (16 or 32 bit; RV64GC has nothing longer)."""
    return 2 if (lo & 3) != 3 else 4


def complement(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Inclusive [begin, end] ranges covering every 64-bit address outside the [lo, hi) ranges."""
    out: list[tuple[int, int]] = []
    cur = 0
    for lo, hi in sorted((max(lo, 0), min(hi, 1 << 64)) for lo, hi in ranges if hi > lo):
        if lo > cur:
            out.append((cur, lo - 1))
        cur = max(cur, hi)
    if cur <= MASK64:
        out.append((cur, MASK64))
    return out
