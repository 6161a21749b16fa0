"""Time to find: cases and seconds until each historical bug's declared invariant is first violated.

For every bug configuration the tool ships (``fuzz.campaign.shipped_configurations()`` whose
expectation is ``fail``), every engine (``hypothesis``, ``random``, ``mixed`` through
``fuzz.campaign.search_cell``; ``atheris`` through the libFuzzer target) and ``--seeds K`` seeds,
one fresh process searches the configuration until each of its target bugs (its known bugs minus
those of the configuration it derives from) has been seen — a case violating one of the
invariants the bug declares, credited as the campaign credits it — or ``--budget-seconds`` pass.
The clock starts at the first generated case; the process start-up before it is reported beside.
The first seed's finding of each (configuration, bug, engine) is then minimised as the campaign
does (same invariant, still passing on the configuration it derives from) and its size printed
(``fuzz.minimize.size``: links, arguments, slots, non-default body fields, value bits).

Table: per configuration, bug and engine, seconds and cases to find (median, min, max over the
seeds; a seed that did not find counts as above the budget). ``--json PATH`` writes every run.
The last line, ``median_s: X``, is the slowest engine's median time to find every target bug of
the last configuration (so "under 0.5 s with every engine" holds when X < 0.5).

    python bench/ttf.py [--seeds 5] [--bug NAME] [--engine NAME ...] [--budget-seconds 20] [--json PATH]

``--bug`` takes a configuration name (``ftrace=v6.6,tramp=v6.3``) or a bug's commit (``fd2e0812``);
``--config`` restricts the configurations: the seed's bug alone is
``--config ftrace=v6.6,tramp=v6.3 --bug 25ad10658dc1``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import child_command, error_tail, fuzz_default_engine, search_engines


def bug_configurations() -> dict[str, dict[str, list[str]]]:
    """Configuration -> its target bugs (bug key -> declared invariants), in shipped order."""
    from sledfuzz.fuzz.campaign import cell_context, expectation, resolve, shipped_configurations

    out: dict[str, dict[str, list[str]]] = {}
    for name in shipped_configurations():
        if expectation(resolve(name)) != "fail":
            continue
        ctx = cell_context(name)
        out[name] = {k: v for k, v in ctx.known.items() if k not in ctx.inherited}
    return out


def select(configs: dict[str, dict[str, list[str]]], wanted: list[str] | None,
           only: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """``--bug`` filter: a configuration name, or a bug commit (prefix) within the configurations;
    ``--config``: only these configurations."""
    if only:
        unknown = [c for c in only if c not in configs]
        if unknown:
            raise SystemExit(f"ttf: error: not a bug configuration: {', '.join(unknown)} "
                             f"(configurations: {', '.join(configs)})")
        configs = {c: configs[c] for c in only}
    if not wanted:
        return configs
    out: dict[str, dict[str, list[str]]] = {}
    for w in wanted:
        if w in configs:
            out[w] = configs[w]
            continue
        hits = {c: {k: v for k, v in bugs.items() if k.startswith(w)} for c, bugs in configs.items()}
        hits = {c: b for c, b in hits.items() if b}
        if not hits:
            raise SystemExit(f"ttf: error: {w!r} is neither a bug configuration nor a bug commit "
                             f"(configurations: {', '.join(configs)})")
        for c, b in hits.items():
            out.setdefault(c, {}).update(b)
    return out


def run(config: str, bugs: dict[str, list[str]], engine: str, seed: int, budget: float) -> dict[str, Any]:
    fd, out = tempfile.mkstemp(prefix="sledfuzz-ttf-", suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.run(child_command(engine, config, budget, seed, out, awaited=bugs),
                              stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir(), stderr=subprocess.PIPE, text=True,
                              timeout=budget + 180, check=False)
        text = Path(out).read_text(encoding="utf-8")
        if not text:
            tail = error_tail(proc.stderr)
            return {"config": config, "engine": engine, "seed": seed, "error": f"no result: {tail}", "found": {}}
        r: dict[str, Any] = json.loads(text)
    finally:
        os.unlink(out)
    r.update(config=config, engine=engine, seed=seed)
    return r


def minimal_size(config: str, case_json: str, invariants: list[str], seconds: float) -> tuple[int, ...] | None:
    """The campaign's minimisation of a finding; the size of the result (None if it fails)."""
    from sledfuzz.fuzz.campaign import cell_context, judge_case, minimize_finding
    from sledfuzz.fuzz.minimize import size
    from sledfuzz.model.case import case_from_dict

    ctx = cell_context(config)
    case = case_from_dict(json.loads(case_json))
    got = judge_case(case, ctx.impl)
    inv = next((i for i in invariants if i in got.invariants), None)
    if inv is None:
        return None
    demand = ctx.origin if ctx.origin is not None and judge_case(case, ctx.origin).passed else None
    small = minimize_finding(case, ctx.impl, inv, origin=demand, strict_flags=False, seconds=seconds)
    return size(small)


def fmt_size(s: tuple[int, ...] | list[int] | None) -> str:
    if s is None:
        return "-"
    links, args, slots, body, bits = s
    return f"{links}L {args}A {slots}S {body}B {bits}b"


def fmt_s(x: float, budget: float) -> str:
    return f">{budget:g}" if math.isinf(x) else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per configuration and engine (default 5)")
    ap.add_argument("--bug", action="append", metavar="NAME", help="a configuration or bug commit (repeatable)")
    ap.add_argument("--config", action="append", metavar="NAME", help="only these configurations (repeatable)")
    ap.add_argument("--engine", action="append", help="only these engines (repeatable)")
    ap.add_argument("--budget-seconds", type=float, default=20.0, help="search budget per run (default 20)")
    ap.add_argument("--minimize-seconds", type=float, default=3.0,
                    help="minimisation budget per (configuration, bug, engine); 0: no minimising (default 3)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    ap.add_argument("--json", metavar="PATH", help="write every run and the summary here")
    args = ap.parse_args(argv)

    known = [*search_engines(), "atheris"]
    default = fuzz_default_engine()
    engines = args.engine or [default, *(e for e in known if e != default)]
    bad = [e for e in engines if e not in known]
    if bad:
        ap.error(f"unknown engine(s) {', '.join(bad)} (known: {', '.join(known)})")
    configs = select(bug_configurations(), args.bug, args.config)
    jobs = [(c, bugs, e, s) for c, bugs in configs.items() for e in engines for s in range(args.seeds)]
    print(f"{len(configs)} bug configurations x {len(engines)} engines x {args.seeds} seeds = {len(jobs)} runs, "
          f"budget {args.budget_seconds:g}s each", flush=True)
    t0 = time.monotonic()
    runs: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(lambda j: run(j[0], j[1], j[2], j[3], args.budget_seconds), jobs):
            runs.append(r)
            if r.get("error"):
                print(f"  {r['config']} {r['engine']} seed {r['seed']}: {r['error']}", flush=True)
    print(f"searched in {time.monotonic() - t0:.0f}s", flush=True)

    inf = math.inf
    rows: list[dict[str, Any]] = []
    header = ("| configuration | bug | engine | found | seconds median (min-max) | cases median (min-max) "
              "| start-up s | first case size | minimal size |")
    lines = [header, "|" + "---|" * 9]
    worst_last: float = 0.0
    minimal: dict[tuple[str, str, tuple[str, ...]], tuple[int, ...] | None] = {}
    last = list(configs)[-1] if configs else None
    for config, bugs in configs.items():
        for engine in engines:
            mine = sorted((r for r in runs if r["config"] == config and r["engine"] == engine),
                          key=lambda r: r["seed"])
            all_found = [max((r["found"][b]["seconds"] if b in r["found"] else inf) for b in bugs) for r in mine]
            med_all = statistics.median(all_found) if all_found else inf
            if config == last:
                worst_last = max(worst_last, med_all)
            for bug in bugs:
                secs = [r["found"][bug]["seconds"] if bug in r["found"] else inf for r in mine]
                cases = [r["found"][bug]["cases"] if bug in r["found"] else inf for r in mine]
                starts = [r["startup"] for r in mine if r.get("startup") is not None]
                first = next((r["found"][bug] for r in mine if bug in r["found"]), None)
                raw = small = None
                if first is not None:
                    from sledfuzz.fuzz.minimize import size
                    from sledfuzz.model.case import case_from_dict

                    raw = size(case_from_dict(json.loads(first["case"])))
                    key = (config, first["case"], tuple(first["invariants"]))
                    if args.minimize_seconds > 0 and key not in minimal:
                        minimal[key] = minimal_size(config, first["case"], first["invariants"], args.minimize_seconds)
                    small = minimal.get(key)
                row = {
                    "configuration": config, "bug": bug, "engine": engine,
                    "found": sum(1 for s in secs if not math.isinf(s)), "runs": len(secs),
                    "seconds": {"median": statistics.median(secs), "min": min(secs), "max": max(secs)},
                    "cases": {"median": statistics.median(cases), "min": min(cases), "max": max(cases)},
                    "startup_median": statistics.median(starts) if starts else None,
                    "first_size": raw, "minimal_size": small, "all_bugs_median_s": med_all,
                }
                rows.append(row)
                sec, cas = row["seconds"], row["cases"]
                b = args.budget_seconds
                lines.append(
                    f"| `{config}` | {bug} | {engine} | {row['found']}/{row['runs']} | "
                    f"{fmt_s(sec['median'], b)} ({fmt_s(sec['min'], b)}-{fmt_s(sec['max'], b)}) | "
                    f"{cas['median']:g} ({cas['min']:g}-{cas['max']:g}) | "
                    f"{row['startup_median'] or 0:.2f} | {fmt_size(raw)} | {fmt_size(small)} |")
    print("\n".join(lines))
    if args.json:
        def clean(x: Any) -> Any:
            if isinstance(x, float) and math.isinf(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [clean(v) for v in x]
            return x

        Path(args.json).write_text(json.dumps(clean({"budget_seconds": args.budget_seconds, "rows": rows,
                                                     "runs": runs}), indent=1) + "\n", encoding="utf-8")
    print(f"median_s: {worst_last:.3f}" if not math.isinf(worst_last) else f"median_s: >{args.budget_seconds:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
