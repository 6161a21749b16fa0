"""Cross-check campaign: generated cases on every shipped configuration, each run through the
scenario on unicorn and on Spike; prints the case count, the speed, and every divergence grouped
by the Observation fields that differ (docs/engines.md explains each kind).

Cases come from the shape builder (fuzz/shape.py) with a seeded RandomDraw, round-robin over
`fuzz.campaign.shipped_configurations()`; case i uses seed (--seed + i), so a run is reproducible
and can be split into slices (--start). Divergent cases are written to --out as engine findings.

Usage: python bench/crosscheck.py [--cases N] [--seed S] [--start I] [--jobs J] [--out DIR]
The last line is `crosscheck: N cases, D divergent, U unexplained`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz.campaign import resolve, shipped_configurations
from fuzz.corpus import atomic_write_text
from fuzz.crosscheck import CrossChecker, EngineFinding, finding_path
from fuzz.shape import RandomDraw, case_from_draw

#: Divergence signatures docs/engines.md explains (field sets; see "Cross-check divergences").
EXPLAINED: frozenset[str] = frozenset()


def _slice(args: tuple[int, int, int, str]) -> tuple[int, int, float, list[tuple[str, str, str]]]:
    """Cases [lo, hi) of the campaign: (cases run, skipped, spike seconds, findings)."""
    lo, hi, seed, out = args
    configs = shipped_configurations()
    impls = {name: resolve(name) for name in configs}
    checker = CrossChecker("spike")
    found: list[tuple[str, str, str]] = []
    run = skipped = 0
    t = time.perf_counter()
    for i in range(lo, hi):
        name = configs[i % len(configs)]
        impl = impls[name]
        try:
            case = case_from_draw(RandomDraw(seed + i), impl.caps)
        except ValueError:
            skipped += 1
            continue
        finding: EngineFinding | None = checker.check(case, impl)
        run += 1
        if finding is not None:
            path = finding_path(Path(out), finding)
            Path(out).mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, finding.to_json())
            found.append((name, finding.signature, str(path)))
    return run, skipped, time.perf_counter() - t, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index (to resume or split a campaign)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="sledfuzz-out/crosscheck")
    args = ap.parse_args()
    chunk = 250
    slices = [(lo, min(lo + chunk, args.start + args.cases), args.seed, args.out)
              for lo in range(args.start, args.start + args.cases, chunk)]
    total = skipped = 0
    cpu = 0.0
    found: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        for n, s, sec, f in pool.imap_unordered(_slice, slices):
            total += n
            skipped += s
            cpu += sec
            found += f
            print(f"  {total} cases, {len(found)} divergent, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"configurations: {len(shipped_configurations())}; cases: {total} (+{skipped} the builder refused)")
    print(f"speed: {total / cpu:.1f} cases/s per process (unicorn + spike), wall {time.perf_counter() - t0:.0f} s")
    by_sig = Counter(sig for _, sig, _ in found)
    for sig, n in by_sig.most_common():
        mark = "explained" if sig in EXPLAINED else "UNEXPLAINED"
        configs = sorted({name for name, s, _ in found if s == sig})
        example = next(p for _, s, p in found if s == sig)
        print(f"divergence {sig}: {n} cases ({mark}); configurations {', '.join(configs)}; e.g. {example}")
    unexplained = sum(n for sig, n in by_sig.items() if sig not in EXPLAINED)
    print(f"crosscheck: {total} cases, {len(found)} divergent, {unexplained} unexplained")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
