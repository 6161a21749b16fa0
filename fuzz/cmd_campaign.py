"""``sledfuzz run`` and ``sledfuzz matrix``: every configuration searched, the matrix written.

Both search shipped configurations in cells (``fuzz.campaign``) and end the same way: every
configuration is accounted for in ``OUT/matrix.json`` and ``OUT/matrix.md`` (a cell that never
returned is shown from its events), then the report, then the exit code (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sledfuzz.fuzz import cli_options as opt
from sledfuzz.fuzz.cli_common import EXIT_CLEAN, EXIT_FINDINGS, check_out_dir, end_code, resolve_impl

if TYPE_CHECKING:
    from sledfuzz.fuzz.progress import Display
    from sledfuzz.fuzz.results import CellResult


def add_run_parser(sub: opt.Subparsers) -> None:
    p = sub.add_parser("run", help="the main job: a time-boxed campaign over every shipped era and bug configuration",
                       description="Search every shipped era, pairing and bug configuration for a fixed time, then "
                                   "print the configuration x invariant matrix. Exit 0 when every bug configuration "
                                   "was found and nothing else was reported, else 1.")
    p.add_argument("--time", type=opt.seconds, default=60.0, metavar="S", help="total time budget (default: %(default)g s)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="restrict to these implementations, repeatable (default: every shipped configuration)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display (default: shown)")
    opt.common_search(p)


def add_matrix_parser(sub: opt.Subparsers) -> None:
    p = sub.add_parser("matrix", help="the historical-bug matrix: search each configuration until found")
    p.add_argument("--format", choices=("md", "json"), default="md",
                   help="md: a markdown table; json: one object per configuration (default: %(default)s)")
    p.add_argument("--time-per-cell", type=opt.seconds, default=30.0, metavar="S",
                   help="search budget per configuration; found bugs stop early (default: %(default)g s)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="restrict to these implementations, repeatable (default: every shipped configuration)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr (default: shown)")
    opt.common_search(p)


def _configs(names: list[str] | None) -> list[str]:
    from sledfuzz.fuzz.campaign import shipped_configurations

    if names:
        for n in names:
            resolve_impl(n)
        return list(dict.fromkeys(names))
    return shipped_configurations()


def cmd_run(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz import progress
    from sledfuzz.fuzz.campaign import CellSpec, default_jobs, expectation, resolve, run_cells

    check_out_dir(args.out)
    configs = _configs(args.impl)
    jobs = args.jobs or default_jobs()
    start = time.time()
    end = start + args.time
    share = args.time * jobs / max(1, len(configs))
    # expected failures first: they stop as soon as every known bug is found
    expects = {n: expectation(resolve(n)) for n in configs}
    ordered = sorted(configs, key=lambda n: expects[n] != "fail")
    specs = [CellSpec(n, share, args.seed + i, args.strict_flags, args.out, True, True, end)
             for i, n in enumerate(ordered)]
    display = progress.Display(ordered, expects, enabled=not args.no_progress, total_seconds=args.time)
    with display:
        results, interrupted = run_cells(specs, jobs=jobs, on_event=display.on_event)
        # time left (bug configurations stopped early): more search on the clean ones
        left = end - time.time()
        clean = [n for n in ordered if expects[n] == "pass"]
        if not interrupted and clean and left > 2:
            more = [CellSpec(n, left * jobs / len(clean), args.seed + 1000 + i, args.strict_flags, args.out,
                             True, True, end) for i, n in enumerate(clean)]
            extra, interrupted = run_cells(more, jobs=jobs, on_event=display.on_event)
            results = results + extra
    return _finish(args, display, results, interrupted, configs, time.time() - start)


def cmd_matrix(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz import progress
    from sledfuzz.fuzz.campaign import CellSpec, default_jobs, expectation, resolve, run_cells

    check_out_dir(args.out)
    configs = _configs(args.impl)
    jobs = args.jobs or default_jobs()
    expects = {n: expectation(resolve(n)) for n in configs}
    specs = [CellSpec(n, args.time_per_cell, args.seed + i, args.strict_flags, args.out) for i, n in enumerate(configs)]
    display = progress.Display(configs, expects, enabled=not args.no_progress, label="matrix")
    start = time.time()
    with display:
        results, interrupted = run_cells(specs, jobs=jobs, on_event=display.on_event)
    return _finish(args, display, results, interrupted, configs, time.time() - start, fmt=args.format)


def _finish(args: argparse.Namespace, display: Display, results: list[CellResult], interrupted: bool,
            configs: list[str], elapsed: float, fmt: str = "md") -> int:
    """Write matrix.json and matrix.md, print the report; every configuration is accounted for."""
    from sledfuzz.fuzz import interrupt, report
    from sledfuzz.fuzz.campaign import merge_results
    from sledfuzz.fuzz.corpus import atomic_write_text

    interrupted = interrupted or interrupt.requested()
    merged = {r.impl: r for r in merge_results(results)}
    cells = [merged.get(n) or display.partial(n) for n in configs]
    rows = [c.to_json() for c in cells]
    atomic_write_text(Path(args.out) / "matrix.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(Path(args.out) / "matrix.md", report.matrix_md(cells, args.out))
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        if args.command == "matrix":
            print(report.matrix_md(cells, args.out), end="")
        print(report.run_report(cells, elapsed, interrupted, args.out, interrupt.signal_name()))
    return end_code(interrupted, EXIT_CLEAN if all(c.ok for c in cells) else EXIT_FINDINGS, cells)
