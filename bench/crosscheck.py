"""Cross-check campaign: generated cases on every shipped configuration, each run through the
scenario on unicorn and on Spike; prints the case count, the speed, and every divergence grouped
by the Observation fields that differ (docs/engines.md explains each kind).

Cases come, half each (--source), from the shape builder (fuzz/shape.py, a seeded RandomDraw per
case, round-robin over `fuzz.campaign.shipped_configurations()`) and from the campaigns' hypothesis
strategy (fuzz/strategies.search_cases, generate phase only, seeded per slice of 100 cases, slices
round-robin over the configurations); a run is reproducible and can be split (--start). Divergent
cases are written to --out as engine findings.

Usage: python bench/crosscheck.py [--cases N] [--seed S] [--start I] [--jobs J] [--out DIR] [--source S]
Then (--isa N, default 3000) N random RV64GC instruction streams run in lockstep on both engines
(`fuzz.crosscheck.isa_lockstep`): each first divergent instruction is attributed to a known cause
(`fuzz.crosscheck.ISA_CAUSES`) or counted as unexplained.
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

import hypothesis

from sledfuzz.emu.engine import get_engine
from sledfuzz.fuzz.campaign import resolve, shipped_configurations
from sledfuzz.fuzz.corpus import atomic_write_text
from sledfuzz.fuzz.crosscheck import ISA_CAUSES, CrossChecker, EngineFinding, finding_path, isa_lockstep, isa_program
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.case import Case

#: Divergence signatures docs/engines.md explains (field sets; see "Cross-check divergences").
EXPLAINED: frozenset[str] = frozenset()


Slice = tuple[str, int, int, int, str]  # (source, lo, hi, seed, out)


def _slice(args: Slice) -> tuple[str, int, int, dict[str, float], list[tuple[str, str, str]]]:
    """Cases [lo, hi) of one source: (source, cases run, skipped, seconds per engine, findings)."""
    source, lo, hi, seed, out = args
    configs = shipped_configurations()
    impls = {name: resolve(name) for name in configs}
    checker = CrossChecker("spike")
    found: list[tuple[str, str, str]] = []
    counts = [0, 0]  # run, skipped

    def check(name: str, case: Case) -> None:
        finding: EngineFinding | None = checker.check(case, impls[name])
        counts[0] += 1
        if finding is not None:
            path = finding_path(Path(out), finding)
            Path(out).mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, finding.to_json())
            found.append((name, finding.signature, str(path)))

    if source == "shape":
        for i in range(lo, hi):
            name = configs[i % len(configs)]
            try:
                case = case_from_draw(RandomDraw(seed + i), impls[name].caps)
            except ValueError:
                counts[1] += 1
                continue
            check(name, case)
    else:  # hypothesis: the campaign's own strategy, (hi - lo) examples of configuration lo % n
        name = configs[lo % len(configs)]

        @hypothesis.settings(max_examples=hi - lo, database=None, deadline=None, phases=[hypothesis.Phase.generate],
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(search_cases(impls[name].caps))
        def run(case: Case) -> None:
            check(name, case)

        hypothesis.seed(seed + lo)(run)()
    return source, counts[0], counts[1], checker.seconds, found


def _insn_rates(n: int = 200_000) -> str:
    """Raw stepping speed: a two-instruction loop run for n instructions on each engine."""
    out = []
    for name in ("unicorn", "spike"):
        eng = get_engine(name)
        text = 0xFFFFFFFF80000000
        eng.map(text, 0x1000)
        eng.write(text, (0x00150513).to_bytes(4, "little") + (0xFFDFF06F).to_bytes(4, "little"))  # addi a0,a0,1; j -4
        t = time.perf_counter()
        r = eng.run(text, text + 0x800, n)
        dt = time.perf_counter() - t
        assert r.stop == "budget" and r.steps == n
        out.append(f"{name} {dt / n * 1e6:.3f} us/insn")
    return "raw stepping (budget run of a 2-instruction loop): " + ", ".join(out)


def _isa(n: int, seed: int) -> tuple[int, Counter[str], dict[str, str]]:
    """n random instruction streams in lockstep: (divergent, count per cause, an example per cause)."""
    ref, other = get_engine("unicorn"), get_engine("spike")
    causes: Counter[str] = Counter()
    examples: dict[str, str] = {}
    divergent = 0
    for i in range(n):
        d = isa_lockstep(ref, other, isa_program(seed + i))
        if d is None:
            continue
        divergent += 1
        key = d.cause or "UNEXPLAINED"
        causes[key] += 1
        examples.setdefault(key, f"program {seed + i}: insn {d.word:#x} at {d.pc:#x}: unicorn {d.reference.stop}"
                                 f" -> {d.reference.pc:#x}, spike {d.other.stop} -> {d.other.pc:#x}")
    return divergent, causes, examples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index (to resume or split a campaign)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="sledfuzz-out/crosscheck")
    ap.add_argument("--isa", type=int, default=3000, metavar="N",
                    help="also N random instruction streams run in lockstep (0: none)")
    ap.add_argument("--source", choices=("shape", "hypothesis", "both"), default="both",
                    help="case generator: the shape builder, the campaigns' hypothesis strategy, or half each")
    args = ap.parse_args()
    chunk = 100
    sources = ("shape", "hypothesis") if args.source == "both" else (args.source,)
    per = args.cases // len(sources)
    slices: list[Slice] = [(src, lo, min(lo + chunk, args.start + per), args.seed, args.out)
                           for src in sources for lo in range(args.start, args.start + per, chunk)]
    total = skipped = 0
    by_source: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    found: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        for src, n, s, sec, f in pool.imap_unordered(_slice, slices):
            total += n
            by_source[src] += n
            skipped += s
            cpu.update(sec)
            found += f
            print(f"  {total} cases, {len(found)} divergent, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(_insn_rates())
    print(f"configurations: {len(shipped_configurations())}; cases: {total} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(by_source.items()))}; +{skipped} the builder refused)")
    if total:
        print(f"speed per process, scenario included: unicorn {total / cpu['unicorn']:.0f} cases/s, "
              f"spike {total / cpu['spike']:.1f} cases/s; wall {time.perf_counter() - t0:.0f} s")
    by_sig = Counter(sig for _, sig, _ in found)
    for sig, n in by_sig.most_common():
        mark = "explained" if sig in EXPLAINED else "UNEXPLAINED"
        configs = sorted({name for name, s, _ in found if s == sig})
        example = next(p for _, s, p in found if s == sig)
        print(f"divergence {sig}: {n} cases ({mark}); configurations {', '.join(configs)}; e.g. {example}")
    unexplained = sum(n for sig, n in by_sig.items() if sig not in EXPLAINED)
    isa_unexplained = 0
    if args.isa:
        t1 = time.perf_counter()
        divergent, causes, examples = _isa(args.isa, args.seed)
        isa_unexplained = causes.get("UNEXPLAINED", 0)
        print(f"isa lockstep: {args.isa} random instruction streams, {divergent} divergent, "
              f"{isa_unexplained} unexplained ({time.perf_counter() - t1:.0f} s)")
        for cause, n in causes.most_common():
            print(f"  {cause}: {n} ({ISA_CAUSES.get(cause, 'no known cause')}); e.g. {examples[cause]}")
    isa = f"; isa lockstep: {args.isa} streams, {isa_unexplained} unexplained" if args.isa else ""
    print(f"crosscheck: {total} cases, {len(found)} divergent, {unexplained} unexplained{isa}")
    return 1 if unexplained or isa_unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
