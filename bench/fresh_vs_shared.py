"""Shared engine vs a fresh engine per case: no state may cross from one case to the next.

Searches judge case after case on one reused engine; a fresh engine per case is the reference.
This draws generated cases over every shipped configuration (interleaved at random, so a
struct_ops case follows a kernel-function case of another configuration), judges each on the
process's shared engine in the order drawn and on a new engine, and compares status, violated
invariants and the whole Observation. The cases come from the shape builder on a seeded stream
(``fuzz.shape``), a share from the campaign strategies (``fuzz.strategies.search_cases``), and a
third of them are *aliased*: laid out at the previous case's addresses, or with its function and
image swapped, so that anything kept per address (observers, translations, mappings, caches) is
exercised by different code at the same place.

    python bench/fresh_vs_shared.py [--cases 100000] [--seed 1] [--hypothesis-share 0.2] [--save DIR]

Prints progress, then ``differences: N`` (must be 0); exit status 1 when N > 0. ``--save`` writes
each differing case with both verdicts as a corpus entry.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.campaign import shipped_configurations
from sledfuzz.fuzz.oracle import Verdict, judge
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.model.case import MASK64, Case, CaseError, Layout

ALIAS_SHARE = 1 / 3


def _aliased(layout: Layout, prev: Layout, rng: random.Random) -> Layout:
    """``prev``'s code addresses for the next case: the same, or function and image swapped (an
    image where a body was, a body where an image was). The case keeps its data and stack (its
    store's pointer points into its own data region)."""
    out = replace(prev, data=layout.data, stack=layout.stack)
    if rng.random() < 0.5:
        return out
    func = prev.image & ~0xF
    return replace(out, func=func, image=prev.func & ~0xF,
                   ftrace_caller=(func + Layout().ftrace_caller - Layout().func) & MASK64)


def _hypothesis_pool(name: str, n: int, seed: int) -> list[Case]:
    from bench.drawn_cases import draw_cases

    return draw_cases(name, n, seed)


def interleaved_cases(configs: Sequence[str], n: int, seed: int, hypothesis_share: float = 0.0,
                      pool_size: int = 50) -> Iterator[tuple[str, Case]]:
    """``n`` (configuration, case) pairs, deterministic for ``seed`` (see the module docstring)."""
    rng = random.Random(seed)
    caps = {name: resolve(name).caps for name in configs}
    pools: dict[str, list[Case]] = {}
    refills = 0
    prev: Layout | None = None
    for i in range(n):
        name = configs[rng.randrange(len(configs))]
        if hypothesis_share and rng.random() < hypothesis_share:
            pool = pools.get(name)
            if not pool:
                refills += 1
                pool = pools[name] = _hypothesis_pool(name, pool_size, seed * 7919 + refills)
            case = pool.pop()
        else:
            case = case_from_draw(RandomDraw((seed << 40) ^ i), caps[name])
        if prev is not None and rng.random() < ALIAS_SHARE:
            with contextlib.suppress(CaseError):  # an aliased layout the case cannot have
                case = replace(case, layout=_aliased(case.layout, prev, rng))
        prev = case.layout
        yield name, case


def same(a: Verdict, b: Verdict) -> bool:
    """Same status, same violation messages, same observation."""
    return (a.status, [str(v) for v in a.violations], a.observation) == (
        b.status, [str(v) for v in b.violations], b.observation)


def compare(pairs: Iterator[tuple[str, Case]], *, progress_every: float = 0.0,
            save: Path | None = None) -> tuple[int, int, list[str]]:
    """Judge each pair on the shared engine and on a fresh one: (cases, differences, first lines)."""
    impls = {}
    n = diffs = 0
    lines: list[str] = []
    t0 = last = time.monotonic()
    for name, case in pairs:
        impl = impls.get(name) or impls.setdefault(name, resolve(name))
        shared = judge(case, impl)
        fresh = judge(case, impl, fresh=True)
        n += 1
        if not same(shared, fresh):
            diffs += 1
            if len(lines) < 20:
                lines.append(f"case {n} on {name} ({case.target}): shared {shared.summary} | fresh {fresh.summary}")
            if save is not None:
                from sledfuzz.fuzz.campaign import judge_case
                from sledfuzz.fuzz.fresh import write_harness_fault

                write_harness_fault(save, case, name, judge_case(case, impl), judge_case(case, impl, fresh=True),
                                    {"found_by": "bench/fresh_vs_shared.py"})
        now = time.monotonic()
        if progress_every and now - last >= progress_every:
            last = now
            print(f"  {n:>8,} cases, {now - t0:6.0f} s, {diffs} differences", flush=True)
    return n, diffs, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="cases to compare (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the case stream (default 1)")
    ap.add_argument("--hypothesis-share", type=float, default=0.2,
                    help="share of cases from the campaign strategies (default 0.2)")
    ap.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines (default 30)")
    ap.add_argument("--save", type=Path, default=None, help="write differing cases here (default: nowhere)")
    args = ap.parse_args(argv)
    configs = shipped_configurations()
    print(f"fresh vs shared engine: {args.cases:,} cases over {len(configs)} configurations, seed {args.seed}",
          flush=True)
    t = time.monotonic()
    n, diffs, lines = compare(interleaved_cases(configs, args.cases, args.seed, args.hypothesis_share),
                              progress_every=args.progress, save=args.save)
    for line in lines:
        print("DIFF", line)
    print(f"compared {n:,} cases in {time.monotonic() - t:.0f} s")
    print(f"differences: {diffs}")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
