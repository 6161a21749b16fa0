"""The judge alone on a fixed case set: cases per CPU-second, the split per stage, and a profile.

Why: the judge's speed work (issue 12, "judge fast") needs one repeatable figure and a place to
see where the time goes. The cases are drawn up front from the campaign strategies with a fixed
seed (``bench.drawn_cases``; drawing is not measured), or read from a file that
``bench/verdict_stability.py record`` wrote (``--from``: its first set). Every case is judged once
on a process-wide scenario, as a search judges them (each case has its own layout, so nothing is
a repeat); the first ``--warmup`` cases are judged before the clock starts (imports, the native
block hook, the first translations) and are not part of the timed set.

    python bench/profile_judge.py [--impl v6.19] [--cases 2000] [--seed 7] [--from FILE]
                                  [--warmup 200] [--profile] [--html OUT.html]

Prints the cases per CPU-second and per wall-second and the per-case time of each stage
(``bench.measure.STAGES``); ``--profile`` runs the timed pass under pyinstrument and prints its
tree (``--html`` writes it as a page). The last line is ``judge_cases_per_cpu_s: N``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import STAGES
from sledfuzz.model.case import Case


def load_cases(path: Path, n: int) -> list[Case]:
    """The first set of a ``bench/verdict_stability.py`` file, first ``n`` cases."""
    with gzip.open(path, "rt") as f:
        sets = json.load(f)["sets"]
    return [Case.from_json(c) for c in sets[0]["cases"][:n]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="v6.19")
    ap.add_argument("--cases", type=int, default=2000, help="cases to take, warm-up included (default 2000)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the drawn set (default 7)")
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="read the cases from a verdict_stability file instead of drawing them")
    ap.add_argument("--warmup", type=int, default=200, help="cases judged before the clock starts")
    ap.add_argument("--profile", action="store_true", help="profile the timed pass (pyinstrument)")
    ap.add_argument("--html", type=Path, default=None, help="with --profile: write the profile here")
    args = ap.parse_args(argv)

    from sledfuzz.emu.impls.registry import resolve
    from sledfuzz.emu.scenario import scenario_for
    from sledfuzz.fuzz.oracle import judge

    impl = resolve(args.impl)
    t = time.perf_counter()
    if args.source is not None:
        batch = load_cases(args.source, args.cases)
        origin = f"from {args.source}"
    else:
        from bench.drawn_cases import draw_cases

        batch = draw_cases(impl.name, args.cases, args.seed)
        origin = f"drawn (campaign strategies, seed {args.seed})"
    print(f"{len(batch)} cases {origin} in {time.perf_counter() - t:.1f}s; judged on {impl.name}", flush=True)
    warm, batch = batch[: args.warmup], batch[args.warmup :]
    for case in warm:
        judge(case, impl)
    sc = scenario_for(None)
    before = dict(sc.timing)
    spent: dict[str, float] = {}
    counts: collections.Counter[str] = collections.Counter()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    t0, c0 = time.perf_counter(), time.process_time()
    for case in batch:
        counts[judge(case, impl, timing=spent).status] += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profiler is not None:
        profiler.stop()
    n = len(batch)
    split = {**spent, **{k: v - before.get(k, 0.0) for k, v in sc.timing.items()}}
    total = sum(split.get(k, 0.0) for k in STAGES)
    print(f"{n} cases in {cpu:.2f}s CPU ({wall:.2f}s wall): {n / cpu:.0f} cases per CPU-second, "
          f"{n / wall:.0f}/s wall; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("  per case (wall): " + " | ".join(
        f"{k} {1e6 * split.get(k, 0.0) / n:.0f}us ({100 * split.get(k, 0.0) / total:.0f}%)" for k in STAGES))
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        if args.html is not None:
            args.html.write_text(profiler.output_html(), encoding="utf-8")
    print(f"judge_cases_per_cpu_s: {n / cpu:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
