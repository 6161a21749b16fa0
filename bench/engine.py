"""Engine throughput: short runs per second on one core (target >= 5,000/s).

The run shape mimics one trampoline case: ~100 instructions, 15 stores (8 logged, 7 into the
excluded stack frame), 4 host calls, the write log and the instruction budget on; registers and the
memory a run changes are reset before every run. Also prints unicorn's raw instruction rate.

Usage: python bench/engine.py [--runs N]. The last line is `short_runs_per_s: N`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sledfuzz.emu.engine import Engine, get_engine
from sledfuzz.emu.rv64.encode import addi, jal, jalr, ld, sd

TEXT = 0xFFFFFFFF80000000
HOST = 0xFFFFFFFF80010000
DATA = 0xFFFFFFFF80020000
STACK = 0xFFFFFFFF80030000
SENTINEL = 0xFFFFFFFF80000F00
SP0 = STACK + 0x1000
FRAME = 64


def program() -> tuple[bytes, int, int]:
    """(code, instruction count without host calls, logged stores)."""
    ra, sp, s0, a0, a1, a2, t0 = 1, 2, 8, 10, 11, 12, 5
    w: list[int] = [addi(sp, sp, -FRAME), sd(ra, sp, 56)]
    w += [sd(r, sp, 48 - 8 * k) for k, r in enumerate((s0, 9, 18, 19, 20))]  # s0, s1, s2..s4
    logged = 0
    for call in range(4):
        w += [addi(t0, t0, call + 1), addi(a1, a1, 3)] * 8  # 16 ALU ops
        w += [sd(a0, a2, 16 * call), sd(t0, a2, 16 * call + 8)]
        logged += 2
        here = TEXT + 4 * len(w)
        w.append(jal(ra, HOST + 0x10 * call - here))
    w += [ld(r, sp, 48 - 8 * k) for k, r in enumerate((s0, 9, 18, 19, 20))]
    w += [ld(ra, sp, 56), addi(sp, sp, FRAME), jalr(0, ra, 0)]
    return b"".join(x.to_bytes(4, "little") for x in w), len(w), logged


def _prog_stub(e: Engine) -> int:
    return (e.reg(10) + 1) & 0xFFFF_FFFF


def setup() -> tuple[Engine, int, int]:
    e = get_engine("unicorn")
    for base in (TEXT, HOST, DATA, STACK):
        e.map(base, 0x2000)
    code, n, logged = program()
    e.write(TEXT, code)
    for k in range(4):
        e.add_host_call(HOST + 0x10 * k, _prog_stub)
    return e, n, logged


def one_run(e: Engine, regs: list[tuple[int, int]], zero_frame: bytes, zero_data: bytes) -> int:
    e.set_regs(regs)
    e.write(SP0 - FRAME, zero_frame)
    e.write(DATA, zero_data)
    r = e.run(TEXT, SENTINEL, 10_000, log_writes_outside=((SP0 - FRAME, SP0),))
    if r.stop != "sentinel":
        raise SystemExit(f"bench program did not finish: {r}")
    return len(r.writes) + r.steps


def bench_runs(runs: int) -> tuple[float, int, int]:
    e, n, logged = setup()
    regs = [(r, 0x1111 * r) for r in range(3, 32)] + [(1, SENTINEL), (2, SP0), (12, DATA)]
    zf, zd = bytes(FRAME), bytes(64)
    check = one_run(e, regs, zf, zd)
    if check != logged + n + 4:
        raise SystemExit(f"unexpected writes+steps {check}, want {logged + n + 4}")
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(runs):
            one_run(e, regs, zf, zd)
        best = max(best, runs / (time.perf_counter() - t))
    return best, n, logged


def raw_unicorn_ips(n: int = 20_000_000) -> float:
    """Plain unicorn, no hooks: a 2-instruction loop stopped by `count`."""
    from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc

    u = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    u.mem_map(TEXT, 0x1000)
    u.mem_write(TEXT, (addi(10, 10, 1).to_bytes(4, "little") + jal(0, -4).to_bytes(4, "little")))
    t = time.perf_counter()
    u.emu_start(TEXT, TEXT + 0x800, 0, n)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5000)
    args = ap.parse_args()
    rate, n, logged = bench_runs(args.runs)
    print(f"program: {n} instructions + 4 host calls, {logged} logged stores, 7 unlogged (stack frame)")
    print(f"unicorn raw: {raw_unicorn_ips():,.0f} instructions/s (no hooks, count budget)")
    print(f"engine: {rate * (n + 4):,.0f} guest instructions/s in short runs")
    print(f"short_runs_per_s: {rate:.0f}")


if __name__ == "__main__":
    main()
