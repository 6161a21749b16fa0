"""End-to-end throughput on one core: generate -> expect -> run -> judge, cases per second.

The rate is cases per second of this process's CPU time (one core; other load on the machine does
not count against it); the wall-clock rate is printed beside it. A fixed-seed mix of generated
cases (``fuzz.strategies.search_cases``, what campaigns search with, for the implementation's
capabilities; ``--base`` for the base ``cases`` only) is drawn up front (drawing is not part of
the figure), then every case is judged by ``fuzz.oracle.judge`` in one process on one engine.
Prints the counts per verdict, the rate, and the time split (model ``expect``, JIT size+emit,
scenario setup, engine run, observation collection, invariants), and last ``cases_per_s: N``.

    python bench/throughput.py [--impl v6.19] [--cases 2000] [--seed 1] [--repeat 1]

``--repeat 2`` judges the same cases twice: the second pass shows the cached-JIT rate (what
shrinking and replay see); the figure printed last is always the first, cold pass.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed

from emu.impls.registry import resolve
from emu.scenario import scenario_for
from fuzz.oracle import judge
from fuzz.strategies import cases, search_cases
from model.case import Case


def draw_cases(impl_name: str, n: int, seed: int, *, base: bool = False) -> list[Case]:
    """``n`` cases from the campaign strategies (or the base ones), deterministic for ``seed``."""
    impl = resolve(impl_name)
    out: list[Case] = []
    strategy = cases(caps=impl.caps) if base else search_cases(impl.caps)

    @hyp_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Case) -> None:
        out.append(case)

    collect()
    return out[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="v6.19")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--base", action="store_true", help="draw from the base strategies only")
    args = ap.parse_args(argv)

    impl = resolve(args.impl)
    t = time.perf_counter()
    batch = draw_cases(args.impl, args.cases, args.seed, base=args.base)
    digest = hashlib.sha256("".join(c.to_json(indent=None) for c in batch).encode()).hexdigest()[:12]
    print(f"drew {len(batch)} cases for {impl.name} in {time.perf_counter() - t:.1f}s (seed {args.seed}, mix {digest})")

    spent = {"expect": 0.0, "invariants": 0.0}
    sc = scenario_for(None)
    first_rate = 0.0
    for rep in range(args.repeat):
        for k in sc.timing:
            sc.timing[k] = 0.0
        spent["expect"] = spent["invariants"] = 0.0
        counts: collections.Counter[str] = collections.Counter()
        failing: collections.Counter[str] = collections.Counter()
        t0 = time.perf_counter()
        c0 = time.process_time()
        for case in batch:
            v = judge(case, impl, timing=spent)
            counts[v.status] += 1
            for name in v.invariants:
                failing[name] += 1
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        rate = len(batch) / cpu if cpu else 0.0
        if rep == 0:
            first_rate = rate
        label = "cold (JIT not cached)" if rep == 0 else "warm (JIT cached)"
        print(f"pass {rep + 1}, {label}: {len(batch)} cases in {cpu:.2f}s CPU ({wall:.2f}s wall) = {rate:.0f} cases/s "
              f"per core ({len(batch) / wall:.0f}/s wall)")
        print("  verdicts: " + ", ".join(f"{k} {counts[k]}" for k in ("pass", "refused", "fail", "unspecified", "invalid")))
        if failing:
            print("  violations: " + ", ".join(f"{k} {n}" for k, n in failing.most_common()))
        parts = {**{"expect": spent["expect"]}, **sc.timing, "invariants": spent["invariants"]}
        other = wall - sum(parts.values())
        per = " | ".join(f"{k} {1e6 * s / len(batch):.0f}us ({100 * s / wall:.0f}%)" for k, s in parts.items())
        print(f"  per case: {per} | other {1e6 * other / len(batch):.0f}us")
    print(f"cases_per_s: {first_rate:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
