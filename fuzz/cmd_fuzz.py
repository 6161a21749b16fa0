"""``sledfuzz fuzz``: one implementation searched with hypothesis or atheris, or one saved case judged.

Also the options that only this subcommand has: ``--linux-src`` (one kernel implementation per
tree), ``--elf`` (cases over an object's compiled functions, checked before any work),
``--cross-check`` (every case on a second engine; its divergences reported apart) and ``--case``
(a deterministic single judgement, a ``git bisect run`` step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sledfuzz.fuzz import cli_options as opt
from sledfuzz.fuzz.cli_common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_USAGE,
    UsageError,
    check_out_dir,
    end_code,
    load_case_file,
    resolve_impl,
)

if TYPE_CHECKING:
    from sledfuzz.emu.impls.api import Implementation
    from sledfuzz.fuzz.elf_cases import ElfSource
    from sledfuzz.fuzz.results import CellResult

ENGINES = ("random", "hypothesis", "atheris")


def add_parser(sub: opt.Subparsers) -> None:
    p = sub.add_parser("fuzz", help="fuzz one implementation (the fast generator, hypothesis or atheris)",
                       description="Search one implementation; every violation found is a finding (exit 1).")
    p.add_argument("--engine", choices=ENGINES, default="random",
                   help="random: the fast generator of the case space (fuzz/space.py) on a seeded stream; "
                        "hypothesis: the same space through hypothesis; both in --jobs processes, findings "
                        "minimised alike; atheris: the libFuzzer target (default: %(default)s)")
    p.add_argument("--impl", required=True, metavar="NAME", help=f"{opt.IMPL_HELP}; required")
    p.add_argument("--time", type=opt.seconds, default=60.0, metavar="S", help="time budget (default: %(default)g s)")
    p.add_argument("--linux-src", metavar="PATH", action="append",
                   help="Linux tree (directory, tarball, or debian:6.12 / debian:7.2 / debian:7.3) for the 'kernel' "
                        "implementation; repeatable: each tree is judged as kernel-<version> "
                        "(default: $SLEDFUZZ_LINUX_SRC, else Debian's linux-source-6.12)")
    p.add_argument("--corpus", metavar="DIR", help="atheris: a seed corpus directory to start from (default: none)")
    p.add_argument("--cross-check", choices=("spike",), metavar="ENGINE",
                   help="also run every case on this engine (spike) and report where it and unicorn diverge "
                        "as engine findings in OUT/engine-findings (needs the spike extra; default: none)")
    p.add_argument("--case", metavar="FILE",
                   help="judge only this saved case (deterministic; for git bisect run) instead of searching "
                        "(default: search)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display (default: shown)")
    opt.common_search(p, jobs_default=1)
    opt.elf_options(p)


def cmd_fuzz(args: argparse.Namespace) -> int:
    """`fuzz`, with `--cross-check ENGINE`: engine findings reported apart from trampoline ones."""
    if args.cross_check is None:
        return _fuzz(args)
    from sledfuzz.emu.engine import EngineError
    from sledfuzz.fuzz import crosscheck

    since = time.time()
    try:
        with crosscheck.enabled(args.cross_check, args.out) as where:
            rc = _fuzz(args)
    except EngineError as e:
        raise UsageError(f"--cross-check {args.cross_check}: {e}") from e
    found = crosscheck.findings_in(where, since)
    print(f"engine cross-check: {crosscheck.checked_in(where)} cases on unicorn and {args.cross_check}, "
          f"{len(found)} engine findings" + (f" in {where}" if found else ""))
    return EXIT_FINDINGS if found else rc


def _fuzz(args: argparse.Namespace) -> int:
    impls = _kernel_trees(args) if args.linux_src else [args.impl]
    if args.case is not None:
        return max([_judge_saved_case(args, name) for name in impls])
    return max([_fuzz_one(args, name) for name in impls])


def _judge_saved_case(args: argparse.Namespace, name: str) -> int:
    """``fuzz --case FILE``: judge one saved case only (fast and deterministic: a bisect step)."""
    from sledfuzz.fuzz.oracle import judge

    case, _ = load_case_file(args.case)
    verdict = judge(case, resolve_impl(name), strict_flags=args.strict_flags)
    print(f"{name}: {verdict.status}: {verdict.summary}")
    return EXIT_FINDINGS if verdict.status == "fail" else EXIT_CLEAN


def _kernel_trees(args: argparse.Namespace) -> list[str]:
    """``--linux-src`` (repeatable): one tree keeps the name ``kernel``; several are ``kernel-<version>``.

    Notes of the probe (what it could not read) and labels of missing fixes go to stderr, one line each.
    """
    if args.impl != "kernel":
        raise UsageError("--linux-src is for --impl kernel")
    from sledfuzz.emu.impls.registry import ImplementationError
    from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
    from sledfuzz.emu.kernel.impl import register_trees, set_default_tree, tree_report
    from sledfuzz.fuzz.review_cli import TreeUnavailable

    try:
        args.linux_src = [str(resolve_tree(src)) for src in args.linux_src]  # debian:7.3 -> its tarball
    except DebianTreeError as exc:
        raise UsageError(f"--linux-src {exc}") from None
    for src in args.linux_src:
        if not Path(src).exists():
            raise UsageError(f"--linux-src {src}: no such file or directory")
    try:
        if len(args.linux_src) == 1:
            set_default_tree(args.linux_src[0])  # also exported as $SLEDFUZZ_LINUX_SRC for workers
            names = ["kernel"]
        else:
            names = register_trees(args.linux_src)
        for src in args.linux_src:
            report = tree_report(src)
            for line in report.notes:
                print(f"sledfuzz: {report.name}: {line}", file=sys.stderr)
            for bug in report.labels:
                print(f"sledfuzz: {report.name}: markers suggest {bug.commit} is missing ({bug.summary}); "
                      "a finding on its invariants may be that known bug", file=sys.stderr)
    except ImplementationError as exc:
        raise TreeUnavailable(str(exc).splitlines()[0]) from None
    return names


def _fuzz_one(args: argparse.Namespace, name: str) -> int:
    from sledfuzz.fuzz import interrupt, progress, report
    from sledfuzz.fuzz.campaign import CellSpec, expectation, merge_results, run_cells

    args.impl = name
    impl = resolve_impl(args.impl)
    check_out_dir(args.out)
    elf = _elf_source(args, impl)
    start = time.time()
    if args.engine == "atheris":
        from sledfuzz.fuzz.atheris_run import run_atheris

        if args.corpus is not None and not Path(args.corpus).is_dir():
            raise UsageError(f"--corpus {args.corpus}: not a directory")
        status = progress.StatusLine(not args.no_progress)

        def show(cell: CellResult) -> None:
            if cell.counts.cases:  # the first line once the target runs
                status.update(lambda: f"fuzz: {report.counts_line(cell.counts, cell.seconds)}")

        with status:
            res = run_atheris(args.impl, seconds=args.time, jobs=args.jobs, seed=args.seed, out_dir=args.out,
                              strict_flags=args.strict_flags, corpus=args.corpus, elf=elf, on_progress=show)
        interrupted = res.interrupted or interrupt.requested()
        print(report.fuzz_report(res, time.time() - start, interrupted, interrupt.signal_name()))
        return end_code(interrupted, EXIT_FINDINGS if res.findings else EXIT_CLEAN, [res])
    expects = {args.impl: expectation(impl)}
    specs = [CellSpec(args.impl, args.time, args.seed + i, args.strict_flags, args.out, stop_when_found=False,
                      engine=args.engine, elf=elf) for i in range(args.jobs)]
    display = progress.Display([args.impl], expects, enabled=not args.no_progress, total_seconds=args.time,
                             label="fuzz")
    with display:
        results, interrupted = run_cells(specs, jobs=args.jobs, on_event=display.on_event)
    merged = merge_results(results)
    cell = merged[0] if merged else display.partial(args.impl)
    interrupted = interrupted or interrupt.requested()
    print(report.fuzz_report(cell, time.time() - start, interrupted, interrupt.signal_name()))
    code = EXIT_FINDINGS if cell.findings else EXIT_USAGE if cell.error else EXIT_CLEAN
    return end_code(interrupted, code, [cell])


def _elf_source(args: argparse.Namespace, impl: Implementation) -> ElfSource | None:
    """The --elf source, checked before any work: one line per function skipped, exit 2 when
    none is left (naming the implementations that support the object's sled layouts)."""
    if args.elf is None:
        if args.symbol or args.signature:
            raise UsageError("--symbol and --signature need --elf")
        return None
    from sledfuzz.emu.elf.image import ElfError
    from sledfuzz.fuzz.elf_cases import ElfSource

    source = ElfSource(args.elf, tuple(args.symbol), tuple(args.signature))
    try:
        targets, skipped = source.targets(impl)
    except (ElfError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for line in skipped:
        print(f"sledfuzz: skipped {line}", file=sys.stderr)
    if not targets:
        raise UsageError(f"--elf {args.elf}: no function {impl.name} can trace{_supporting(args.elf)}")
    return source


def _supporting(path: str) -> str:
    """Which shipped implementations support the sled layouts an object's functions have."""
    from sledfuzz.emu.elf.functions import traced_functions
    from sledfuzz.emu.elf.image import ElfError, load_elf
    from sledfuzz.emu.impls.registry import resolve
    from sledfuzz.fuzz.campaign import shipped_configurations

    try:
        layouts = {f.sled_key for f in traced_functions(load_elf(path, base=0, with_debug=False))[0]}
    except ElfError:
        return ""
    if not layouts:
        return ""
    names = [n for n in shipped_configurations()
             if resolve(n).caps.kernel_direct_calls and any(resolve(n).caps.sled_for("kernel_function", k) for k in layouts)]
    return f" (its sled layouts {', '.join(sorted(layouts))} are supported by: {', '.join(names) or 'none'})"
