"""End-to-end throughput as a user sees it: generated and judged cases per second, per engine.

Each engine runs in a fresh process exactly as the tool runs it — ``hypothesis`` (the strategies,
the default engine of ``sledfuzz fuzz``), ``random`` (the shape builder on a seeded stream),
``mixed`` (the two alternating, ``sledfuzz run``), all through ``fuzz.campaign.search_cell`` with
no output files and no minimising, and ``atheris`` (the libFuzzer target's own case builder,
instrumented imports, libFuzzer's mutations) — on one implementation for ``--seconds``. The clock
starts at the first generated case; the process start-up before it is printed beside the figure.
Per engine: cases per CPU-second and per wall-second, the split between generation (everything
outside the judge: the strategies or the builder, the search loop) and each judge stage, the judge
alone (cases per judge CPU-second), and the distinct structures generated per second (target,
sled, argument sizes, link kinds, flags, return size, teardown: ``bench.measure.structure_of``).
The last line is ``cases_per_s_per_core: N`` for the default engine of ``sledfuzz fuzz``.

    python bench/throughput.py [--impl v6.19] [--seconds 10] [--engine NAME ...] [--seed 1]
    python bench/throughput.py --judge-only [--cases 3000] [--base] [--repeat 2]   # the judge alone
    python bench/throughput.py --generation-only [--seconds 5]   # each case generator alone
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import STAGES, child_command, error_tail, fuzz_default_engine, search_engines


def measure_engine(engine: str, impl: str, seconds: float, seed: int) -> dict[str, Any]:
    """One engine in a fresh process; its JSON result (see ``bench.measure.run_search``)."""
    fd, out = tempfile.mkstemp(prefix="sledfuzz-bench-", suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.run(child_command(engine, impl, seconds, seed, out), cwd=tempfile.gettempdir(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=seconds + 180,
                              check=False)
        text = Path(out).read_text(encoding="utf-8")
        if not text:
            raise RuntimeError(f"engine {engine}: no result (exit {proc.returncode}) {error_tail(proc.stderr)}")
        result: dict[str, Any] = json.loads(text)
        return result
    finally:
        os.unlink(out)


def report(r: dict[str, Any], default: bool) -> list[str]:
    """Lines describing one engine's measurement."""
    n, cpu, wall = r["cases"], r["cpu"], r["wall"]
    rate_cpu = n / cpu if cpu > 0 else 0.0
    rate_wall = n / wall if wall > 0 else 0.0
    stages = r["stages"]
    judge = r["judge_seconds"]
    probe = r.get("probe_seconds") or 0.0
    generation = max(0.0, wall - judge - probe)
    startup = f"{r['startup']:.2f}s" if r.get("startup") is not None else "?"
    label = " (default of sledfuzz fuzz)" if default else ""
    lines = [
        f"{r['engine']}{label}: {n} cases in {wall:.2f}s wall, {cpu:.2f}s CPU (start-up before the first case "
        f"{startup}): {rate_cpu:.0f} cases per CPU-second, {rate_wall:.0f}/s wall; "
        f"{r['structures']} distinct structures ({r['structures'] / wall if wall else 0:.0f}/s wall, "
        f"{r['structures'] / cpu if cpu else 0:.0f} per CPU-second)",
    ]
    if n:
        parts = [f"generation+search {1e6 * generation / n:.0f}us ({100 * generation / wall:.0f}%)"]
        if r.get("generation_seconds") is not None:
            parts[0] += f" [of which case building {1e6 * r['generation_seconds'] / n:.0f}us]"
        inner = ", ".join(f"{k} {1e6 * stages.get(k, 0.0) / n:.0f}us ({100 * stages.get(k, 0.0) / wall:.0f}%)"
                          for k in STAGES)
        parts.append(f"judge {1e6 * judge / n:.0f}us ({100 * judge / wall:.0f}%) = {inner}")
        parts.append(f"bench probe {1e6 * probe / n:.0f}us ({100 * probe / wall:.0f}%)")
        lines.append("  per case (wall): " + " | ".join(parts))
        jc = judge * cpu / wall if wall else 0.0  # the judge's share of the CPU time (load is uniform)
        lines.append(f"  judge alone: ~{n / jc if jc else 0:.0f} cases per CPU-second of judging; "
                     "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())))
    if r.get("error"):
        lines.append(f"  search error: {r['error']}")
    return lines


def judge_only(impl_name: str, n: int, seed: int, *, base: bool = False, repeat: int = 1) -> int:
    """The judge alone on a fixed set of cases drawn up front (drawing not counted): the campaign
    strategies (``--base``: the base ones). ``repeat`` 2 judges the set again with the JIT cached
    (what shrinking and replay see); the last line is the first, cold pass."""
    from sledfuzz.emu.impls.registry import resolve
    from sledfuzz.emu.scenario import scenario_for
    from sledfuzz.fuzz.oracle import judge

    impl = resolve(impl_name)
    t = time.perf_counter()
    from bench.drawn_cases import draw_cases

    batch = draw_cases(impl_name, n, seed, base=base)
    digest = hashlib.sha256("".join(c.to_json(indent=None) for c in batch).encode()).hexdigest()[:12]
    print(f"drew {len(batch)} {'base' if base else 'campaign'} cases for {impl.name} in "
          f"{time.perf_counter() - t:.1f}s (seed {seed}, mix {digest})")
    sc = scenario_for(None)
    first = 0.0
    for rep in range(repeat):
        before = dict(sc.timing)
        spent: dict[str, float] = {}
        counts: collections.Counter[str] = collections.Counter()
        t0, c0 = time.perf_counter(), time.process_time()
        for case in batch:
            counts[judge(case, impl, timing=spent).status] += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate = len(batch) / cpu if cpu else 0.0
        first = first or rate
        split = {**spent, **{k: v - before.get(k, 0.0) for k, v in sc.timing.items()}}
        label = "cold (JIT not cached)" if rep == 0 else "warm (JIT cached)"
        print(f"pass {rep + 1}, {label}: {len(batch)} cases in {cpu:.2f}s CPU ({wall:.2f}s wall): {rate:.0f} cases "
              f"per CPU-second; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print("  per case (wall): " + " | ".join(f"{k} {1e6 * split.get(k, 0.0) / len(batch):.0f}us" for k in STAGES))
    print(f"judge_cases_per_s: {first:.0f}")
    return 0


def generation_only(impl_name: str, seconds: float, seed: int) -> int:
    """Each case generator alone, cases per CPU-second for ``seconds`` of CPU each: the
    hypothesis strategies (``search_cases``, generate phase as the campaign runs them) and the fast
    generator (``case_from_draw`` on a seeded stream, what ``random``/``mixed``/atheris build with),
    both over the same case space (``fuzz.space``). The last line is the default engine's generator."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hyp_seed

    from sledfuzz.emu.impls.registry import resolve
    from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
    from sledfuzz.fuzz.strategies import search_cases
    from sledfuzz.model.case import Case

    caps = resolve(impl_name).caps
    rates: dict[str, float] = {}

    class _Done(Exception):
        pass

    drawn = [0]
    c0 = time.process_time()

    @hyp_seed(seed)
    @settings(max_examples=10**9, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(search_cases(caps))
    def collect(case: Case) -> None:
        drawn[0] += 1
        if time.process_time() - c0 > seconds:
            raise _Done

    with contextlib.suppress(_Done):
        collect()
    rates["hypothesis"] = drawn[0] / (time.process_time() - c0)
    n, c0 = 0, time.process_time()
    while time.process_time() - c0 < seconds:
        case_from_draw(RandomDraw((seed << 40) ^ n), caps)
        n += 1
    rates["fast"] = n / (time.process_time() - c0)
    for name, rate in rates.items():
        print(f"{name}: {rate:.0f} cases per CPU-second ({1e6 / rate:.0f}us per case), generation alone, {impl_name}")
    default = fuzz_default_engine()
    print(f"generation_cases_per_s: {rates['hypothesis' if default == 'hypothesis' else 'fast']:.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="v6.19")
    ap.add_argument("--seconds", type=float, default=10.0, help="search time per engine (default 10)")
    ap.add_argument("--engine", action="append", help="measure only these engines (repeatable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--judge-only", action="store_true", help="the judge alone on cases drawn up front")
    ap.add_argument("--cases", type=int, default=3000, help="with --judge-only: how many cases")
    ap.add_argument("--base", action="store_true", help="with --judge-only: the base strategies")
    ap.add_argument("--repeat", type=int, default=1, help="with --judge-only: passes over the set (2: warm)")
    ap.add_argument("--generation-only", action="store_true", help="each case generator alone (--seconds of CPU each)")
    args = ap.parse_args(argv)
    if args.generation_only:
        return generation_only(args.impl, args.seconds, args.seed)
    if args.judge_only:
        return judge_only(args.impl, args.cases, args.seed, base=args.base, repeat=args.repeat)

    default = fuzz_default_engine()
    known = [*search_engines(), "atheris"]
    engines = args.engine or [default, *(e for e in known if e != default)]
    for e in engines:
        if e not in known:
            ap.error(f"unknown engine {e!r} (known: {', '.join(known)})")
    print(f"{args.impl}, {args.seconds:g}s per engine, seed {args.seed}, one process per engine")
    rates: dict[str, float] = {}
    for e in engines:
        r = measure_engine(e, args.impl, args.seconds, args.seed)
        for line in report(r, e == default):
            print(line, flush=True)
        rates[e] = r["cases"] / r["cpu"] if r["cpu"] > 0 else 0.0
    headline = default if default in rates else engines[0]
    print(f"cases_per_s_per_core: {rates[headline]:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
