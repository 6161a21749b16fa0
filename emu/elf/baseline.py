"""The meaning of a compiled body, from real execution: run the unpatched function alone.

For compiled functions nothing about the body is written by hand: what it returns, what it stores
and which callee-saved registers it must preserve come from running it untraced (sled left as the
compiler's nops) on the engine, with the argument slots in a0-a7 and the caller's stack words
(psABI: slot i >= 8 at entry sp + 8*(i-8)). ``tests`` cross-check this baseline against
``qemu-riscv64`` running the same object linked into a static program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sledfuzz.emu.elf.functions import TracedFunction
from sledfuzz.emu.elf.image import LoadedElf
from sledfuzz.emu.engine.base import Engine, MemWrite

A0, RA, SP, GP, TP, S0, S1 = 10, 1, 2, 3, 4, 8, 9
CALLEE_SAVED = (SP, GP, TP, S0, S1, *range(18, 28))  # sp, gp, tp, s0, s1, s2..s11
SENTINEL = 0xFFFF_FFFF_FFFF_F000  # a mapped page the function returns to
STACK_SIZE = 0x8000
#: callee-saved registers start with recognisable values so a clobber shows
PLANTED = {r: 0x5EED_0000_0000_0000 | r << 8 for r in (GP, TP, S0, S1, *range(18, 28))}

__all__ = ["Baseline", "run_untraced"]


@dataclass(frozen=True)
class Baseline:
    """One untraced run: how it ended, a0, the stores outside its own frame, registers it broke."""

    stop: str
    pc: int
    a0: int
    steps: int
    writes: tuple[MemWrite, ...]
    clobbered: tuple[int, ...]  # callee-saved registers not restored


def map_elf(engine: Engine, elf: LoadedElf) -> None:
    for sec in elf.sections:
        engine.map(sec.addr, len(sec.data))
        engine.write(sec.addr, sec.data)


def run_untraced(engine: Engine, elf: LoadedElf, fn: TracedFunction, slots: Sequence[int], *, stack_top: int,
                 budget: int = 100_000, externals_mapped: bool = True) -> Baseline:
    """Call ``fn`` at its symbol (through the compiler's nop sled) with ``slots`` and return what
    it did. ``stack_top`` names a region of STACK_SIZE bytes below it that the caller owns."""
    del externals_mapped
    map_elf(engine, elf)
    engine.map(stack_top - STACK_SIZE, STACK_SIZE)
    engine.write(stack_top - STACK_SIZE, bytes(STACK_SIZE))
    engine.map(SENTINEL, 0x1000)
    stack_words = list(slots[8:])
    sp = (stack_top - 8 * len(stack_words) - 64) & ~0xF
    for i, w in enumerate(stack_words):
        engine.write_u64(sp + 8 * i, w)
    regs = [(A0 + i, v) for i, v in enumerate(slots[:8])]
    regs += [(RA, SENTINEL), (SP, sp), *PLANTED.items()]
    engine.set_regs(regs)
    res = engine.run(fn.addr, SENTINEL, budget, log_writes_outside=((sp - 0x1000, sp),))
    after = engine.regs(CALLEE_SAVED)
    want = {SP: sp, **PLANTED}
    clobbered = tuple(r for r, v in zip(CALLEE_SAVED, after, strict=True) if v != want[r])
    return Baseline(res.stop, res.pc, engine.reg(A0), res.steps, res.writes, clobbered)
