"""The ``sledfuzz`` command line. Exit codes: 0 clean, 1 findings (an implementation that crashed
on a case included), 2 usage or input error, or an error of sledfuzz itself, 3 harness fault,
125 a kernel tree that cannot be built (git bisect run skips it), 130 interrupted (SIGINT or
SIGTERM, after the summary).

Every user mistake (missing file, bad JSON, a case field out of range, an unknown
implementation, a bad option value) is reported as one line on stderr with exit code 2; library
code raises, this module decides what a person sees (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from fuzz import __version__, review_cli
from fuzz.review_cli import TreeUnavailable

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_HARNESS_FAULT = 3  # a finding that does not reproduce on a fresh engine (docs/cli.md)
EXIT_SKIP = 125  # the tree cannot be built or probed: git bisect run skips it
EXIT_TOOL_ERROR = 2  # sledfuzz itself failed (never 0: a run that did not happen is not clean)

ENGINES = ("random", "hypothesis", "atheris")


class UsageError(Exception):
    """A user mistake: reported as one line on stderr with exit code 2, never a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``sledfuzz run: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# -- option value types: each failure is one precise line -----------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _int_range(lo: int, hi: int | None, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"expected {what} in {bound}, got {value}")
        return value

    return parse


_jobs = _int_range(1, 256, "a number of worker processes")
_seed = _int_range(0, (1 << 64) - 1, "a seed")


def _common_search(p: argparse.ArgumentParser, *, jobs_default: int | None = None) -> None:
    p.add_argument("--jobs", type=_jobs, default=jobs_default, metavar="N",
                   help="worker processes (default: %(default)s)" if jobs_default is not None
                   else "worker processes (default: the number of CPUs, at most 8)")
    p.add_argument("--seed", type=_seed, default=0, metavar="N", help="seed of every random choice (default: %(default)s)")
    p.add_argument("--out", default="sledfuzz-out", metavar="DIR",
                   help="where findings are written, atomically, as they are found; several runs may share it "
                        "(default: ./%(default)s)")
    p.add_argument("--strict-flags", action="store_true",
                   help="also judge raw flag sets the core never generates, against the strict expectation "
                        "(default: off, they count as unspecified)")


def _strict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict-flags", action="store_true",
                   help="judge a raw flag set the core never generates against the strict expectation "
                        "(default: off, such a case is unspecified)")


def _elf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--elf", metavar="PATH",
                   help="trace the real compiled functions of this RV64 object or executable (built with "
                        "-fpatchable-function-entry; signatures from its DWARF) instead of generated bodies "
                        "(default: generated bodies)")
    p.add_argument("--symbol", action="append", default=[], metavar="NAME",
                   help="with --elf: only these functions (repeatable; default: every function with a sled)")
    p.add_argument("--signature", action="append", default=[], metavar="NAME=SIG",
                   help="with --elf: a function's signature when the object has no debug info, e.g. "
                        "'f=(8,4s,16S,p)->4s' (s signed, S struct, p pointer; default: from DWARF)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sledfuzz",
        description="Property-based fuzzer for RISC-V ftrace nop sleds and RV64 BPF trampolines.",
        epilog="Exit codes: 0 clean (or: every result as expected), 1 findings (an implementation crash "
               "included), 2 usage or input error, or an error of sledfuzz itself.",
    )
    parser.add_argument("--version", action="version", version=f"sledfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    impl_help = "implementation name (see 'sledfuzz impls')"

    p = sub.add_parser("run", help="the main job: a time-boxed campaign over every shipped era and bug configuration",
                       description="Search every shipped era, pairing and bug configuration for a fixed time, then "
                                   "print the configuration x invariant matrix. Exit 0 when every bug configuration "
                                   "was found and nothing else was reported, else 1.")
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="total time budget (default: %(default)g s)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="restrict to these implementations, repeatable (default: every shipped configuration)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display (default: shown)")
    _common_search(p)

    p = sub.add_parser("fuzz", help="fuzz one implementation (the fast generator, hypothesis or atheris)",
                       description="Search one implementation; every violation found is a finding (exit 1).")
    p.add_argument("--engine", choices=ENGINES, default="random",
                   help="random: the fast generator of the case space (fuzz/space.py) on a seeded stream; "
                        "hypothesis: the same space through hypothesis; both in --jobs processes, findings "
                        "minimised alike; atheris: the libFuzzer target (default: %(default)s)")
    p.add_argument("--impl", required=True, metavar="NAME", help=f"{impl_help}; required")
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="time budget (default: %(default)g s)")
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
    _common_search(p, jobs_default=1)
    _elf_options(p)

    p = sub.add_parser("replay", help="re-judge corpus files; exit 1 if any verdict changed")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="corpus entries (*.json) or directories searched recursively for them")

    p = sub.add_parser("explain", help="show a case's violation and its annotated execution")
    p.add_argument("case", metavar="CASE.json", help="a case file or a corpus entry")
    p.add_argument("--impl", metavar="NAME",
                   help=f"{impl_help} (default: the first one a corpus entry expects to fail)")
    _strict_flags(p)
    p.add_argument("--max-insns", type=_int_range(1, 10**7, "a number of instructions"), default=2000, metavar="N",
                   help="show at most this many instructions, the first ones and the last ones "
                        "(default: %(default)s)")

    p = sub.add_parser("minimize", help="shrink a case while it keeps the same violation")
    p.add_argument("case", metavar="CASE.json", help="a case file or a corpus entry (e.g. a finding's .raw.json)")
    p.add_argument("--impl", metavar="NAME",
                   help=f"{impl_help} (default: the first one a corpus entry expects to fail)")
    p.add_argument("--invariant", metavar="I-NAME",
                   help="the violation to keep (default: the invariant the file records, else the first one "
                        "the case violates)")
    p.add_argument("--origin", metavar="NAME",
                   help="also keep passing on this implementation (default: the one --impl derives from)")
    p.add_argument("-o", "--output", metavar="PATH", help="write the minimal entry to this file (default: stdout)")
    _strict_flags(p)
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="time budget (default: %(default)g s)")

    p = sub.add_parser("impls", help="list implementations (eras, pairings, bug configurations, kernel)")
    p.add_argument("--linux-src", metavar="PATH",
                   help="Linux tree for the 'kernel' line, e.g. debian:7.3 (default: $SLEDFUZZ_LINUX_SRC, else "
                        "Debian's linux-source-6.12)")

    p = sub.add_parser("matrix", help="the historical-bug matrix: search each configuration until found")
    p.add_argument("--format", choices=("md", "json"), default="md",
                   help="md: a markdown table; json: one object per configuration (default: %(default)s)")
    p.add_argument("--time-per-cell", type=_seconds, default=30.0, metavar="S",
                   help="search budget per configuration; found bugs stop early (default: %(default)g s)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="restrict to these implementations, repeatable (default: every shipped configuration)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr (default: shown)")
    _common_search(p)

    p = sub.add_parser("exhaust", help="every configuration shape up to small bounds, values drawn per shape")
    p.add_argument("--impl", required=True, metavar="NAME", help=f"{impl_help}; required")
    p.add_argument("--max-links", type=_int_range(0, 6, "a number of links"), default=3, metavar="K",
                   help="longest link sequence enumerated, 0..6 (default: %(default)s)")
    p.add_argument("--max-args", type=_int_range(0, 12, "a number of arguments"), default=12, metavar="N",
                   help="most function arguments enumerated, 0..12 (default: %(default)s)")
    p.add_argument("--count-only", action="store_true",
                   help="print the number of shapes and exit (default: off, run them)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr (default: shown)")
    _common_search(p)

    from fuzz.nightly import add_parser as add_nightly_parser  # sledfuzz nightly (docs/nightly.md)

    add_nightly_parser(sub)
    review_cli.add_parser(sub, _seconds, _seed)
    return parser


# -- helpers ----------------------------------------------------------------------------------------


def _err(msg: str) -> None:
    print(f"sledfuzz: error: {msg}", file=sys.stderr)


def _resolve(name: str) -> Any:
    from emu.impls.registry import ImplementationError, resolve

    try:
        return resolve(name)
    except ImplementationError as exc:
        raise UsageError(str(exc).splitlines()[0] if str(exc) else f"unknown implementation {name!r}") from None


def _read_input(path: str) -> Any:
    """Parsed JSON of an input file, or a one-line UsageError naming the file (never a hang on a
    FIFO, a MemoryError on /dev/zero or a RecursionError on deep nesting: corpus.read_json_file)."""
    from fuzz.corpus import read_json_file
    from model.case import CaseError

    try:
        return read_json_file(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a case file") from None
    except CaseError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _load_case_file(path: str) -> tuple[Any, Any]:
    """(case, entry or None) from a case file or a corpus entry; one-line errors."""
    from fuzz.corpus import entry_from_dict, is_entry
    from model.case import CaseError, case_from_dict

    data = _read_input(path)
    try:
        if is_entry(data):
            entry = entry_from_dict(data)
            return _object_unchanged(entry.case, path), entry
        return _object_unchanged(case_from_dict(data), path), None
    except CaseError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _object_unchanged(case: Any, path: str) -> Any:
    """A case that traces a compiled function replays only against the same object file."""
    if case.function.compiled is None:
        return case
    from emu.elf.image import ElfError
    from emu.elf.placement import check_hash

    try:
        check_hash(case.function.compiled)
    except ElfError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return case


def _default_impl(entry: Any, given: str | None, path: str) -> str:
    if given:
        return given
    if entry is not None:
        for name, verdict in entry.expect.items():
            if verdict.status == "fail":
                return str(name)
        return str(next(iter(entry.expect)))
    raise UsageError(f"{path}: a plain case names no implementation; pass --impl NAME")


def _check_out_dir(out: str) -> None:
    """``--out`` must be a directory we can create files in: checked by creating one, before any
    search starts (a read-only file system, a file, missing permission: exit 2 naming the cause)."""
    import errno
    import tempfile

    p = Path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sledfuzz-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "")
        raise UsageError(f"--out {out}: not writable: {exc.strerror or exc}" + (f" ({code})" if code else "")) from None


def _use_hypothesis_cache() -> None:
    """Keep hypothesis's files (example database, constants cache) out of the working directory:
    under ``$XDG_CACHE_HOME/sledfuzz/hypothesis`` (default ``~/.cache``) unless
    ``$HYPOTHESIS_STORAGE_DIRECTORY`` says otherwise. Set in the environment, so worker processes
    and the atheris children inherit it."""
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(Path(cache) / "sledfuzz" / "hypothesis")


# -- run / matrix ---------------------------------------------------------------------------------------


def _configs(names: list[str] | None) -> list[str]:
    from fuzz.campaign import shipped_configurations

    if names:
        for n in names:
            _resolve(n)
        return list(dict.fromkeys(names))
    return shipped_configurations()


def cmd_run(args: argparse.Namespace) -> int:
    from fuzz import report
    from fuzz.campaign import CellSpec, default_jobs, run_cells

    _check_out_dir(args.out)
    configs = _configs(args.impl)
    jobs = args.jobs or default_jobs()
    start = time.time()
    end = start + args.time
    share = args.time * jobs / max(1, len(configs))
    # expected failures first: they stop as soon as every known bug is found
    from fuzz.campaign import expectation, resolve

    expects = {n: expectation(resolve(n)) for n in configs}
    ordered = sorted(configs, key=lambda n: expects[n] != "fail")
    specs = [CellSpec(n, share, args.seed + i, args.strict_flags, args.out, True, True, end)
             for i, n in enumerate(ordered)]
    display = report.Display(ordered, expects, enabled=not args.no_progress, total_seconds=args.time)
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
    from fuzz import report
    from fuzz.campaign import CellSpec, default_jobs, expectation, resolve, run_cells

    _check_out_dir(args.out)
    configs = _configs(args.impl)
    jobs = args.jobs or default_jobs()
    expects = {n: expectation(resolve(n)) for n in configs}
    specs = [CellSpec(n, args.time_per_cell, args.seed + i, args.strict_flags, args.out) for i, n in enumerate(configs)]
    display = report.Display(configs, expects, enabled=not args.no_progress, label="matrix")
    start = time.time()
    with display:
        results, interrupted = run_cells(specs, jobs=jobs, on_event=display.on_event)
    return _finish(args, display, results, interrupted, configs, time.time() - start,
                   fmt=getattr(args, "format", "md"))


def _finish(args: argparse.Namespace, display: Any, results: list[Any], interrupted: bool, configs: list[str],
            elapsed: float, fmt: str = "md") -> int:
    """Write matrix.json and matrix.md, print the report; every configuration is accounted for."""
    from fuzz import interrupt, report
    from fuzz.campaign import merge_results
    from fuzz.corpus import atomic_write_text

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
    return _end_code(interrupted, EXIT_CLEAN if all(c.ok for c in cells) else EXIT_FINDINGS, cells)


def _end_code(interrupted: bool, code: int, cells: Sequence[Any] = ()) -> int:
    """130 after an interrupt (with a note on stderr), else 3 on harness faults, else ``code``."""
    from fuzz.interrupt import EXIT_INTERRUPTED

    if interrupted:
        print("sledfuzz: interrupted; the summary above covers what was done so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    if any(getattr(c, "error", None) for c in cells):
        return EXIT_TOOL_ERROR
    if any(getattr(c, "harness_faults", 0) for c in cells):
        return EXIT_HARNESS_FAULT
    return code


# -- fuzz -----------------------------------------------------------------------------------------------


def cmd_fuzz(args: argparse.Namespace) -> int:
    impls = _kernel_trees(args) if args.linux_src else [args.impl]
    if args.case is not None:
        return max([_judge_saved_case(args, name) for name in impls])
    return max([_fuzz_one(args, name) for name in impls])


def _judge_saved_case(args: argparse.Namespace, name: str) -> int:
    """``fuzz --case FILE``: judge one saved case only (fast and deterministic: a bisect step)."""
    from fuzz.oracle import judge

    case, _ = _load_case_file(args.case)
    verdict = judge(case, _resolve(name), strict_flags=args.strict_flags)
    print(f"{name}: {verdict.status}: {verdict.summary}")
    return EXIT_FINDINGS if verdict.status == "fail" else EXIT_CLEAN


def _kernel_trees(args: argparse.Namespace) -> list[str]:
    """``--linux-src`` (repeatable): one tree keeps the name ``kernel``; several are ``kernel-<version>``.

    Notes of the probe (what it could not read) and labels of missing fixes go to stderr, one line each.
    """
    if args.impl != "kernel":
        raise UsageError("--linux-src is for --impl kernel")
    from emu.impls.registry import ImplementationError
    from emu.kernel.debian import DebianTreeError, resolve_tree
    from emu.kernel.impl import register_trees, set_default_tree, tree_report

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
        from fuzz.review_cli import TreeUnavailable

        raise TreeUnavailable(str(exc).splitlines()[0]) from None
    return names


def _fuzz_one(args: argparse.Namespace, name: str) -> int:
    from fuzz import interrupt, report
    from fuzz.campaign import CellSpec, expectation, merge_results, run_cells

    args.impl = name
    impl = _resolve(args.impl)
    _check_out_dir(args.out)
    elf = _elf_source(args, impl)
    start = time.time()
    if args.engine == "atheris":
        from fuzz.atheris_run import run_atheris

        if args.corpus is not None and not Path(args.corpus).is_dir():
            raise UsageError(f"--corpus {args.corpus}: not a directory")
        status = report.StatusLine(not args.no_progress)

        def show(cell: Any) -> None:
            if cell.counts.cases:  # the first line once the target runs
                status.update(lambda: f"fuzz: {report.counts_line(cell.counts, cell.seconds)}")

        with status:
            res = run_atheris(args.impl, seconds=args.time, jobs=args.jobs, seed=args.seed, out_dir=args.out,
                              strict_flags=args.strict_flags, corpus=args.corpus, elf=elf, on_progress=show)
        interrupted = res.interrupted or interrupt.requested()
        print(report.fuzz_report(res, time.time() - start, interrupted, interrupt.signal_name()))
        return _end_code(interrupted, EXIT_FINDINGS if res.findings else EXIT_CLEAN, [res])
    expects = {args.impl: expectation(impl)}
    specs = [CellSpec(args.impl, args.time, args.seed + i, args.strict_flags, args.out, stop_when_found=False,
                      engine=args.engine, elf=elf) for i in range(args.jobs)]
    display = report.Display([args.impl], expects, enabled=not args.no_progress, total_seconds=args.time,
                             label="fuzz")
    with display:
        results, interrupted = run_cells(specs, jobs=args.jobs, on_event=display.on_event)
    merged = merge_results(results)
    cell = merged[0] if merged else display.partial(args.impl)
    interrupted = interrupted or interrupt.requested()
    print(report.fuzz_report(cell, time.time() - start, interrupted, interrupt.signal_name()))
    code = EXIT_FINDINGS if cell.findings else EXIT_USAGE if cell.error else EXIT_CLEAN
    return _end_code(interrupted, code, [cell])


def _elf_source(args: argparse.Namespace, impl: Any) -> Any:
    """The --elf source, checked before any work: one line per function skipped, exit 2 when
    none is left (naming the implementations that support the object's sled layouts)."""
    if args.elf is None:
        if args.symbol or args.signature:
            raise UsageError("--symbol and --signature need --elf")
        return None
    from emu.elf.image import ElfError
    from fuzz.elf_cases import ElfSource

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
    from emu.elf.functions import traced_functions
    from emu.elf.image import ElfError, load_elf
    from emu.impls.registry import resolve
    from fuzz.campaign import shipped_configurations

    try:
        layouts = {f.sled_key for f in traced_functions(load_elf(path, base=0, with_debug=False))[0]}
    except ElfError:
        return ""
    if not layouts:
        return ""
    names = [n for n in shipped_configurations()
             if resolve(n).caps.kernel_direct_calls and any(resolve(n).caps.sled_for("kernel_function", k) for k in layouts)]
    return f" (its sled layouts {', '.join(sorted(layouts))} are supported by: {', '.join(names) or 'none'})"


# -- replay ---------------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from fuzz.campaign import judge_case
    from fuzz.corpus import ExpectedVerdict, entry_files, entry_from_dict, is_entry, replay_entry
    from model.case import CaseError

    for p in args.paths:
        if not Path(p).exists():
            raise UsageError(f"{p}: no such file or directory")
    given = {str(Path(p)) for p in args.paths}
    entries = []
    skipped: list[str] = []
    for f in entry_files(args.paths):
        data = _read_input(str(f))
        if not is_entry(data) and str(f) not in given:
            skipped.append(f.name)  # a summary in an output directory (matrix.json, exhaust-*.json)
            continue
        try:
            entries.append((str(f), entry_from_dict(data)))
            _object_unchanged(entries[-1][1].case, str(f))
        except CaseError as exc:
            raise UsageError(f"{f}: {exc}") from None
    if not entries:
        raise UsageError(f"no corpus files (*.json) under {' '.join(args.paths)}")
    impls: dict[str, Any] = {}
    current = [""]

    def verdict_of(case: Any, name: str) -> tuple[ExpectedVerdict, str]:
        if name not in impls:
            try:
                impls[name] = _resolve(name)
            except UsageError as exc:
                raise UsageError(f"{current[0]}: expect: {exc}") from None
        j = judge_case(case, impls[name])
        return j.verdict, "; ".join(j.messages[:2])

    changed = 0
    total = 0
    for path, entry in entries:
        current[0] = path
        for r in replay_entry(path, entry, verdict_of):
            total += 1
            if r.changed:
                changed += 1
                print(f"CHANGED {path} [{r.impl}]: expected {r.expected.render()}, got {r.got.render()}"
                      + (f" ({r.detail})" if r.detail else ""))
            else:
                print(f"ok      {path} [{r.impl}]: {r.got.render()}")
    more = f", {len(skipped)} other JSON files skipped ({', '.join(sorted(set(skipped))[:3])})" if skipped else ""
    print(f"{len(entries)} files, {total} verdicts, {changed} changed{more}")
    return EXIT_FINDINGS if changed else EXIT_CLEAN


# -- explain / minimize ----------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    case, entry = _load_case_file(args.case)
    name = _default_impl(entry, args.impl, args.case)
    impl = _resolve(name)
    from fuzz.explain import explain

    text, failed = explain(case, impl, name=name, strict_flags=args.strict_flags, max_insns=args.max_insns)
    print(text)
    return EXIT_FINDINGS if failed else EXIT_CLEAN


def _recorded_invariants(entry: Any, name: str) -> list[str]:
    """The invariants a finding file says its case violates on ``name``: its provenance's own
    (``I-X``, or ``I-X,I-Y`` from atheris), else the ones its expected verdict lists."""
    if entry is None:
        return []
    own = [i.strip() for i in str(entry.provenance.get("invariant", "")).split(",") if i.strip()]
    if own:
        return own
    verdict = entry.expect.get(name)
    return sorted(verdict.invariants) if verdict is not None and verdict.status == "fail" else []


def _check_output_file(path: str) -> None:
    """``-o PATH`` must be a file we can create or replace: refused before any work."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"-o {path}: is a directory, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"-o {path}: directory {parent} is not writable")
    if p.exists() and not p.is_file():
        raise UsageError(f"-o {path}: exists and is not a regular file")


def cmd_minimize(args: argparse.Namespace) -> int:
    from fuzz.campaign import derives_from, judge_case, minimize_finding
    from fuzz.corpus import Entry, atomic_write_text, with_tool_version
    from fuzz.minimize import size, size_change

    if args.output:
        _check_output_file(args.output)
    case, entry = _load_case_file(args.case)
    name = _default_impl(entry, args.impl, args.case)
    impl = _resolve(name)
    judged = judge_case(case, impl, args.strict_flags)
    if judged.status != "fail":
        raise UsageError(f"{args.case}: the case does not fail on {name} (verdict: {judged.status}); nothing to minimize")
    violated = ", ".join(sorted(judged.invariants))
    if args.invariant:
        inv = args.invariant
        if inv not in judged.invariants:
            raise UsageError(f"--invariant {inv}: the case violates {violated} on {name}, not {inv}")
    else:
        recorded = _recorded_invariants(entry, name)
        kept = [i for i in recorded if i in judged.invariants]
        if recorded and not kept:
            raise UsageError(f"{args.case}: records {', '.join(recorded)} but the case now violates {violated} on "
                             f"{name}; pass --invariant to choose one")
        inv = kept[0] if kept else sorted(judged.invariants)[0]
    origin_name = args.origin or derives_from(name)
    origin = _resolve(origin_name) if origin_name else None
    if origin is not None and not judge_case(case, origin, args.strict_flags).passed:
        origin, origin_name = None, None  # the original does not pass there either: do not demand it
    small = minimize_finding(case, impl, inv, origin=origin, strict_flags=args.strict_flags, seconds=args.time)
    small_j = judge_case(small, impl, args.strict_flags)
    expect = {name: small_j.verdict}
    if origin is not None and origin_name:
        expect[origin_name] = judge_case(small, origin, args.strict_flags).verdict
    prov = dict(entry.provenance) if entry is not None else {}
    prov.update({"invariant": inv, "minimized_from": str(args.case)})
    out = Entry(small, expect, with_tool_version(prov)).to_json()
    if args.output:
        try:
            atomic_write_text(args.output, out)
        except OSError as exc:
            raise UsageError(f"-o {args.output}: cannot write: {exc.strerror or exc}") from None
        print(f"minimized {args.case} -> {args.output} ({inv} on {name}; {size_change(size(case), size(small))})",
              file=sys.stderr)
    else:
        print(out, end="")
    return EXIT_CLEAN


# -- impls / exhaust ------------------------------------------------------------------------------------


def cmd_impls(args: argparse.Namespace) -> int:
    from emu.impls.registry import available

    for item in available():
        if isinstance(item, tuple):
            name, line = item[0], item[1] if len(item) > 1 else ""
        else:
            name, line = str(item), ""
        print(f"{name:32s} {line}")
    from emu.kernel.impl import describe_kernel_impl

    print(f"{'kernel':32s} {describe_kernel_impl(getattr(args, 'linux_src', None))}")
    return EXIT_CLEAN


def cmd_exhaust(args: argparse.Namespace) -> int:
    from fuzz import interrupt, report
    from fuzz.exhaust import enumerate_shapes, run_exhaust

    impl = _resolve(args.impl)
    shapes = enumerate_shapes(impl.caps, max_links=args.max_links, max_args=args.max_args,
                              strict_flags=args.strict_flags)
    print(f"{len(shapes)} shapes for {args.impl} (max links {args.max_links}, max args {args.max_args})",
          flush=True)
    if args.count_only:
        return EXIT_CLEAN
    _check_out_dir(args.out)
    from fuzz.campaign import default_jobs

    status = report.StatusLine(not args.no_progress)

    def show(res: Any) -> None:
        status.update(lambda: f"exhaust: {res.shapes_done:,}/{res.shapes:,} shapes in {res.seconds:.0f} s, "
                              f"{len(res.violating)} violate")

    with status:
        res = run_exhaust(args.impl, shapes, jobs=args.jobs or default_jobs(), seed=args.seed,
                          strict_flags=args.strict_flags, out_dir=args.out, on_progress=show)
    print(report.exhaust_report(res, interrupt.signal_name()))
    code = EXIT_FINDINGS if res.violating else EXIT_USAGE if res.errors else EXIT_CLEAN
    return _end_code(res.interrupted or interrupt.requested(), code, [res])


def cmd_nightly(args: argparse.Namespace) -> int:
    from fuzz.nightly import cmd_nightly as run_nightly  # docs/nightly.md

    return run_nightly(args)


def cmd_fuzz_cross_checked(args: argparse.Namespace) -> int:
    """`fuzz`, with `--cross-check ENGINE`: engine findings reported apart from trampoline ones."""
    if args.cross_check is None:
        return cmd_fuzz(args)
    from emu.engine import EngineError
    from fuzz import crosscheck

    since = time.time()
    try:
        with crosscheck.enabled(args.cross_check, args.out) as where:
            rc = cmd_fuzz(args)
    except EngineError as e:
        raise UsageError(f"--cross-check {args.cross_check}: {e}") from e
    found = crosscheck.findings_in(where, since)
    print(f"engine cross-check: {crosscheck.checked_in(where)} cases on unicorn and {args.cross_check}, "
          f"{len(found)} engine findings" + (f" in {where}" if found else ""))
    return EXIT_FINDINGS if found else rc


def cmd_review(args: argparse.Namespace) -> int:
    try:
        return review_cli.cmd_review(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


HANDLERS = {
    "run": cmd_run,
    "fuzz": cmd_fuzz_cross_checked,
    "replay": cmd_replay,
    "explain": cmd_explain,
    "minimize": cmd_minimize,
    "impls": cmd_impls,
    "matrix": cmd_matrix,
    "exhaust": cmd_exhaust,
    "nightly": cmd_nightly,
    "review": cmd_review,
}


class _BuildNotice(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows ``emu.kernel.build``'s notices (a first kernel JIT build takes half a minute)."""


def _announce_kernel_builds(enabled: bool) -> None:
    """Say on stderr when the kernel JIT is built for the first time (``--no-progress``: not)."""
    log = logging.getLogger("emu.kernel.build")
    log.handlers = [h for h in log.handlers if not isinstance(h, _BuildNotice)]
    if enabled:
        handler = _BuildNotice(sys.stderr)
        handler.setFormatter(logging.Formatter("sledfuzz: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


# Every subcommand polls the interrupt flag between judged cases (so no KeyboardInterrupt is ever
# raised inside an engine callback, where it would be lost); ``impls`` runs no cases but may wait
# half a minute on the kernel build, so a signal stops it at once.
IMMEDIATE = frozenset({"impls"})


def main(argv: Sequence[str] | None = None) -> int:
    _use_hypothesis_cache()
    from fuzz import interrupt

    # first: SIGINT and SIGTERM end every subcommand the same way (fuzz/interrupt.py)
    with interrupt.handling(), interrupt.deferred():
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
        except SystemExit as exc:
            return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        _announce_kernel_builds(not getattr(args, "no_progress", False))
        try:
            if args.command in IMMEDIATE:
                with interrupt.immediate():
                    code = HANDLERS[args.command](args)
            else:
                code = HANDLERS[args.command](args)
        except UsageError as exc:
            if interrupt.requested():
                print("sledfuzz: interrupted", file=sys.stderr)
                return interrupt.EXIT_INTERRUPTED
            _err(str(exc))
            return EXIT_USAGE
        except TreeUnavailable as exc:
            _err(f"{exc} (exit 125: git bisect run skips this tree)")
            return EXIT_SKIP
        except KeyboardInterrupt:
            print("sledfuzz: interrupted", file=sys.stderr)
            return interrupt.EXIT_INTERRUPTED
        except BrokenPipeError:
            return EXIT_CLEAN
        except Exception as exc:  # a bug of sledfuzz itself (an implementation's crash is a finding)
            _err(f"internal error: {type(exc).__name__}: {exc} ({_innermost(exc)}); please report it")
            return EXIT_TOOL_ERROR
        finally:
            _announce_kernel_builds(False)
        if interrupt.requested() and code != interrupt.EXIT_INTERRUPTED:
            print("sledfuzz: interrupted", file=sys.stderr)
            return interrupt.EXIT_INTERRUPTED
        return code


def _innermost(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "no traceback"


if __name__ == "__main__":
    sys.exit(main())
