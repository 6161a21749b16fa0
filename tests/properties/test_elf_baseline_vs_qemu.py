"""The untraced baseline of compiled functions, cross-checked against a second executor.

Each traced function of tests/elf_src/traced.c (gcc and clang) is linked into a static program
whose ``_start`` (GNU as, written here) calls it with the same register and stack values the
engine gets, then prints a0 of every call and the final data buffer; ``qemu-riscv64`` runs it.
The engine must agree on the linked executable (same addresses), and on the relocatable object
placed at a kernel address (our relocation), for every value that does not depend on addresses.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from sledfuzz.emu.elf import relocate
from sledfuzz.emu.elf.baseline import run_untraced
from sledfuzz.emu.elf.functions import find_function
from sledfuzz.emu.elf.image import load_elf
from sledfuzz.emu.elf.signature import signatures
from sledfuzz.emu.engine.unicorn_engine import UnicornEngine
from tests.support.cross import QEMU, Build, assemble, compile_object, link_static, tools_present
from tests.support.tools import skip_if_missing

pytestmark = skip_if_missing(bool(tools_present()), reason=f"missing tools: {tools_present()} (scripts/setup.sh)")

NVEC = 12
BUF_WORDS = 8
KBASE = 0xFFFFFFFF80200000
KSTACK = 0xFFFFFFFF80A00000
EDGES = (0, 1, (1 << 64) - 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 63, (1 << 63) - 1, 0x7F, 0x80, 0xFFFF)


def _vectors(nslots: int, pointers: set[int], seed: int) -> list[list[int | None]]:
    """Slot values per call; None marks a pointer slot (buffer + 8*k, filled per executable)."""
    rng = random.Random(seed)
    out: list[list[int | None]] = []
    for _ in range(NVEC):
        row: list[int | None] = []
        for i in range(nslots):
            if i in pointers:
                row.append(None)
            else:
                row.append(rng.choice(EDGES) if rng.random() < 0.4 else rng.getrandbits(64))
        out.append(row)
    return out


def _driver(symbol: str, vectors: list[list[int | None]]) -> str:
    rows = []
    for k, row in enumerate(vectors):
        words = [f"buffer+{8 * (k % BUF_WORDS)}" if v is None else f"{v:#x}" for v in row]
        words += ["0"] * (12 - len(words))
        rows.append("    .dword " + ", ".join(words))
    return f"""
    .text
    .globl _start
_start:
    la sp, stack_top
    la s1, vectors
    la s2, results
    li s3, {len(vectors)}
1:
    addi sp, sp, -32
    ld t0, 64(s1)
    sd t0, 0(sp)
    ld t0, 72(s1)
    sd t0, 8(sp)
    ld t0, 80(s1)
    sd t0, 16(sp)
    ld t0, 88(s1)
    sd t0, 24(sp)
    ld a0, 0(s1)
    ld a1, 8(s1)
    ld a2, 16(s1)
    ld a3, 24(s1)
    ld a4, 32(s1)
    ld a5, 40(s1)
    ld a6, 48(s1)
    ld a7, 56(s1)
    call {symbol}
    addi sp, sp, 32
    sd a0, 0(s2)
    addi s1, s1, 96
    addi s2, s2, 8
    addi s3, s3, -1
    bnez s3, 1b
    li a0, 1
    la a1, results
    li a2, {8 * len(vectors) + 8 * BUF_WORDS}
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
    .data
    .balign 8
vectors:
{chr(10).join(rows)}
    .bss
    .balign 16
results:
    .zero {8 * len(vectors)}
buffer:
    .zero {8 * BUF_WORDS}
    .balign 16
    .zero 65536
stack_top:
"""


def _qemu(exe: Path) -> tuple[list[int], bytes]:
    out = subprocess.run([QEMU, str(exe)], capture_output=True, check=True, timeout=60).stdout
    n = len(out) - 8 * BUF_WORDS
    return [int.from_bytes(out[i : i + 8], "little") for i in range(0, n, 8)], out[n:]


def _slots(row: list[int | None], buffer: int, k: int) -> list[int]:
    return [buffer + 8 * (k % BUF_WORDS) if v is None else v for v in row]


def _engine_side(elf_path: Path, symbol: str, vectors: list[list[int | None]], *, base: int,
                 buffer_of: str | int) -> tuple[list[int], bytes]:
    elf = load_elf(str(elf_path), base=base)
    fn = find_function(elf, symbol)
    buf_sym = elf.symbol(buffer_of) if isinstance(buffer_of, str) else None
    buffer = buf_sym.addr if buf_sym is not None else int(buffer_of)
    engine = UnicornEngine()
    engine.map(buffer, 8 * BUF_WORDS)
    results: list[int] = []
    final = bytearray(8 * BUF_WORDS)
    for k, row in enumerate(vectors):
        b = run_untraced(engine, elf, fn, _slots(row, buffer, k), stack_top=KSTACK if base == KBASE else 0x7000000)
        assert b.stop == "sentinel", (symbol, b)
        assert b.clobbered == (), f"{symbol} broke callee-saved registers {b.clobbered}"
        results.append(b.a0)
        for w in b.writes:
            if buffer <= w.addr < buffer + 8 * BUF_WORDS:
                off = w.addr - buffer
                final[off : off + w.size] = w.value.to_bytes(w.size, "little")
    return results, bytes(final)


@pytest.mark.slow
@pytest.mark.parametrize("build", [Build("gcc", "4,2"), Build("clang", "4,2"), Build("gcc", "8", march="rv64g",
                                                                                      frame_pointer=True),
                                   Build("clang", "8,4", march="rv64g", align8=True)],
                         ids=lambda b: f"{b.compiler}-{b.pfe}-{b.march}")
def test_baseline_agrees_with_qemu(build: Build, tmp_path: Path) -> None:
    obj = compile_object(build)
    elf = load_elf(str(obj))
    sigs = signatures(elf)
    checked = 0
    for name, sig in sorted(sigs.items()):
        assert not isinstance(sig, Exception)
        nslots = sum(a.slots for a in sig.args)
        ptr_slots = {sum(a.slots for a in sig.args[:i]) for i, p in enumerate(sig.pointers) if p}
        vectors = _vectors(nslots, ptr_slots, seed=hash(name) & 0xFFFF)
        drv = assemble(_driver(name, vectors), tmp_path / f"{name}-drv.o")
        exe = link_static([drv, obj], tmp_path / f"{name}.elf")
        want, want_buf = _qemu(exe)
        got, got_buf = _engine_side(exe, name, vectors, base=0, buffer_of="buffer")
        assert got == want, f"{name}: engine a0 {[hex(x) for x in got]} != qemu {[hex(x) for x in want]}"
        assert got_buf == want_buf, name
        if not ptr_slots:  # addresses differ at the kernel placement; values must not
            kgot, _ = _engine_side(obj, name, vectors, base=KBASE, buffer_of=0xFFFFFFFF80800000)
            assert kgot == want, f"{name} relocated at {KBASE:#x}: {[hex(x) for x in kgot]} != {[hex(x) for x in want]}"
        checked += 1
    assert checked == 19


def test_a_wrong_relocation_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross-check can fail: a call relocation that misses its target diverges from qemu."""
    build = Build("gcc", "4,2")
    obj = compile_object(build)
    vectors = _vectors(2, set(), seed=1)
    drv = assemble(_driver("st_calls", vectors), tmp_path / "drv.o")
    want, _ = _qemu(link_static([drv, obj], tmp_path / "calls.elf"))
    good, _ = _engine_side(obj, "st_calls", vectors, base=KBASE, buffer_of=0xFFFFFFFF80800000)
    assert good == want
    real = relocate.lo12
    monkeypatch.setattr(relocate, "lo12", lambda v: real(v) + 12)  # lands past the callee's first instructions
    with pytest.raises(AssertionError):
        bad, _ = _engine_side(obj, "st_calls", vectors, base=KBASE, buffer_of=0xFFFFFFFF80800000)
        assert bad == want
