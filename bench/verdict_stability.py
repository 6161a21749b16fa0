"""Verdict stability across performance work: record verdicts of a fixed case set, check them later.

A performance change to the engine, the scenario, the JIT or the invariants must not change any
verdict. ``record`` draws a fixed-seed set of cases (the campaign strategies of ``v6.19`` and the
base ones, judged on every implementation listed, plus a smaller set per implementation drawn for
its own capabilities), judges them and saves the cases themselves (so later strategy edits do not
change the set) with every status and violation string and a digest of each observation. ``check``
re-judges the saved cases and reports every difference; exit status 1 when a verdict differs.
Observation digests are reported separately (a change there without a verdict change is worth a
look, e.g. a step count, but is not a verdict change).

    python bench/verdict_stability.py record /tmp/verdicts.json.gz [--cases 2000] [--per-impl 300]
    python bench/verdict_stability.py check /tmp/verdicts.json.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.oracle import Verdict, judge
from sledfuzz.model.case import Case

IMPLS = (
    "v6.19",
    "v6.12",
    "v6.16",
    "v6.3",
    "next-47c9214dcbea",
    "ftrace=v6.6,tramp=v6.3",
    "v6.19-pre-9f1e16fb1fc9",
    "v6.6-pre-8547649981e6",
)


def _key(v: Verdict) -> dict[str, Any]:
    obs = v.observation
    return {
        "status": v.status,
        "violations": [f"{x.invariant}: {x}" for x in v.violations],
        "obs": hashlib.sha256(repr(obs).encode()).hexdigest()[:16] if obs is not None else None,
    }


def _judge_all(sets: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], float, int]:
    out: list[list[dict[str, Any]]] = []
    n = 0
    c0 = time.process_time()
    for s in sets:
        cases = [Case.from_json(c) for c in s["cases"]]
        row: list[dict[str, Any]] = []
        for name in s["impls"]:
            impl = resolve(name)
            row += [_key(judge(c, impl)) for c in cases]
            n += len(cases)
        out.append(row)
    return out, time.process_time() - c0, n


def record(path: Path, n_cases: int, per_impl: int, seed: int) -> int:
    from bench.drawn_cases import draw_cases

    t = time.perf_counter()
    sets: list[dict[str, Any]] = [
        {"name": "campaign v6.19", "impls": list(IMPLS),
         "cases": [c.to_json(indent=None) for c in draw_cases("v6.19", n_cases, seed)]},
        {"name": "base v6.19", "impls": list(IMPLS),
         "cases": [c.to_json(indent=None) for c in draw_cases("v6.19", n_cases // 4, seed + 1, base=True)]},
    ]
    for name in IMPLS[1:]:
        sets.append({"name": f"campaign {name}", "impls": [name],
                     "cases": [c.to_json(indent=None) for c in draw_cases(name, per_impl, seed + 2)]})
    print(f"drew {sum(len(s['cases']) for s in sets)} cases in {time.perf_counter() - t:.1f}s")
    results, cpu, n = _judge_all(sets)
    for s, r in zip(sets, results, strict=True):
        s["results"] = r
    with gzip.open(path, "wt") as f:
        json.dump({"sets": sets}, f)
    print(f"judged {n} (case, impl) pairs in {cpu:.1f}s CPU; saved to {path}")
    return 0


def check(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        sets: list[dict[str, Any]] = json.load(f)["sets"]
    results, cpu, n = _judge_all(sets)
    verdict_diffs = obs_diffs = 0
    for s, got in zip(sets, results, strict=True):
        ncase = len(s["cases"])
        for i, (want, have) in enumerate(zip(s["results"], got, strict=True)):
            impl, case = s["impls"][i // ncase], i % ncase
            if (want["status"], want["violations"]) != (have["status"], have["violations"]):
                verdict_diffs += 1
                if verdict_diffs <= 20:
                    print(f"VERDICT {s['name']} case {case} on {impl}: {want['status']} {want['violations']} "
                          f"-> {have['status']} {have['violations']}")
            elif want["obs"] != have["obs"]:
                obs_diffs += 1
                if obs_diffs <= 5:
                    print(f"observation {s['name']} case {case} on {impl}: digest {want['obs']} -> {have['obs']}")
    print(f"checked {n} (case, impl) pairs in {cpu:.1f}s CPU ({n / cpu:.0f}/s): "
          f"{verdict_diffs} verdict differences, {obs_diffs} observation-only differences")
    print(f"verdict_differences: {verdict_diffs}")
    return 1 if verdict_diffs else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "check"))
    ap.add_argument("path", type=Path)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--per-impl", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.mode == "record":
        return record(args.path, args.cases, args.per_impl, args.seed)
    return check(args.path)


if __name__ == "__main__":
    raise SystemExit(main())
