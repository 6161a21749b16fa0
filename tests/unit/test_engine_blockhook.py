"""The native block hook (emu/engine/blockhook.c) against the Python one it replaces.

The engine's unit tests run with whichever hook loads (the native one where a C compiler exists);
here the same module also runs under the Python fallback, and random loop programs with random
budgets and faults must give identical RunResults under both hooks.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sledfuzz.emu.engine import blockhook
from sledfuzz.emu.engine.unicorn_engine import UnicornEngine
from tests.support.tools import missing, skip_if_missing
from tests.unit.test_engine import A0, A1, A2, DATA, HOST, STACK, TEXT, ZERO, addi, c_addi, code, jal, jalr, ld, sd

ROOT = Path(__file__).resolve().parents[2]
HAVE_CC = shutil.which("gcc") is not None or shutil.which("cc") is not None


def _engine(native: bool, monkeypatch: pytest.MonkeyPatch) -> UnicornEngine:
    with monkeypatch.context() as m:
        if not native:
            m.setattr(blockhook, "load", lambda: None)
        e = UnicornEngine()
    assert e.native_block_hook is native
    for base in (TEXT, DATA, STACK):
        e.map(base, 0x10000)
    return e


@skip_if_missing(not HAVE_CC, reason="no C compiler")
def test_native_hook_loads_where_a_compiler_exists() -> None:
    assert UnicornEngine().native_block_hook, blockhook.why_not


@pytest.mark.slow
def test_engine_tests_pass_under_the_python_fallback() -> None:
    env = {**os.environ, "SLEDFUZZ_PY_BLOCK_HOOK": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "tests/unit/test_engine.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout[-3000:]


def _program(rng: random.Random) -> bytes:
    """A loop of a few blocks (straight code, compressed code, loads/stores, a host call, a
    backwards jump), sometimes a fault."""
    items: list[int | tuple[int]] = []
    for _ in range(rng.randint(1, 6)):
        for _ in range(rng.randint(1, 5)):
            k = rng.random()
            if k < 0.3:
                items.append((c_addi(A0, 1),))
            elif k < 0.5:
                items.append(sd(A0, A1, 8 * rng.randint(0, 8)))
            elif k < 0.6:
                items.append(ld(A0, A1, 8 * rng.randint(0, 8)))
            else:
                items.append(addi(A0, A0, rng.randint(-5, 5)))
        r = rng.random()
        if r < 0.2:
            items.append(jalr(1, A2, 0))  # host call
        elif r < 0.25:
            items.append(ld(A0, ZERO, 8))  # read fault
        items.append(jal(ZERO, 4))  # end the block
    size = len(code(*items))
    items.append(jal(ZERO, -size))
    return code(*items)


def _run_all(e: UnicornEngine, progs: list[tuple[bytes, int, int]]) -> list[object]:
    out: list[object] = []
    e.add_host_call(HOST, lambda eng: eng.reg(A0) + 1)
    for prog, at, budget in progs:
        e.write(at, prog)
        e.set_regs([(A0, 0), (A1, DATA), (A2, HOST)])
        r = e.run(at, at + 0x4000, budget)
        out.append((r, e.reg(A0)))
    return out


def test_native_and_python_hooks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAVE_CC:
        missing("no C compiler (gcc)")
    rng = random.Random(7)
    # Rewrites of the same addresses (count cache invalidation) and new addresses alike.
    progs = [(_program(rng), TEXT + 0x100 * rng.randint(0, 40), rng.randint(1, 300)) for _ in range(300)]
    assert _run_all(_engine(True, monkeypatch), progs) == _run_all(_engine(False, monkeypatch), progs)


@pytest.mark.parametrize("native", [True, False])
def test_code_between_host_calls_runs_normally(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The native engine hooks the whole span of host-call addresses at once: an instruction in a
    gap of that span must run as usual (no host call), the next host address must still call."""
    if native and not HAVE_CC:
        missing("no C compiler (gcc)")
    e = _engine(native, monkeypatch)
    e.map(HOST, 0x1000)
    calls: list[int] = []
    e.add_host_call(HOST, lambda eng: calls.append(0) or 5)
    e.add_host_call(HOST + 8, lambda eng: calls.append(8) or (eng.reg(A0) + 100))
    e.run(TEXT, TEXT, 1)  # places the c.ret stubs
    e.write(HOST + 4, code(addi(A0, A0, 3)))
    e.set_regs([(A0, 1), (1, TEXT + 0x40)])
    r = e.run(HOST + 4, TEXT + 0x40, 100)
    assert (r.stop, r.steps, calls, e.reg(A0)) == ("sentinel", 2, [8], 104)


@pytest.mark.parametrize("native", [True, False])
def test_host_call_register_writes(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers a host call writes (the native hook keeps them in its snapshot until the call
    returns) are seen by the call's own reads, reach the CPU when it returns, and also when it
    ends the run with HostStop; a0 gets the return value over an a0 the call wrote."""
    if native and not HAVE_CC:
        pytest.skip("no C compiler")
    from sledfuzz.emu.engine import HostStop

    e = _engine(native, monkeypatch)
    seen: list[list[int]] = []

    def first(eng: UnicornEngine) -> int:
        eng.set_reg(A1, eng.reg(A1) + 5)
        eng.set_regs([(A2, 77), (A0, 1)])
        seen.append(eng.regs([A0, A1, A2, ZERO]))
        return 40

    def second(eng: UnicornEngine) -> int:
        eng.set_reg(A1, 9)
        raise HostStop("stop here")

    e.add_host_call(HOST, first)
    e.add_host_call(HOST + 8, second)
    e.set_regs([(A0, 0), (A1, 2), (A2, 0), (1, TEXT + 0x40)])
    r = e.run(HOST, TEXT + 0x40, 10)
    assert (r.stop, seen, e.regs([A0, A1, A2])) == ("sentinel", [[1, 7, 77, 0]], [40, 7, 77])
    e.set_regs([(1, TEXT + 0x40)])
    r = e.run(HOST + 8, TEXT + 0x40, 10)
    assert (r.stop, r.detail, e.reg(A1)) == ("host_error", "stop here", 9)
