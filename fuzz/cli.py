"""The ``sledfuzz`` command line. Exit codes: 0 clean, 1 findings (an implementation that crashed
on a case included), 2 usage or input error, or an error of sledfuzz itself.

Every user mistake (missing file, bad JSON, a case field out of range, an unknown
implementation, a bad option value) is reported as one line on stderr with exit code 2; library
code raises, this module decides what a person sees (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from fuzz import __version__

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_TOOL_ERROR = 2  # sledfuzz itself failed (never 0: a run that did not happen is not clean)

ENGINES = ("hypothesis", "atheris")


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
    p.add_argument("--jobs", type=_jobs, default=jobs_default,
                   help="worker processes (default: the number of CPUs, at most 8)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--out", default="sledfuzz-out", metavar="DIR",
                   help="where findings are written, atomically, as they are found (default ./sledfuzz-out)")
    p.add_argument("--strict-flags", action="store_true",
                   help="also judge raw flag sets the core never generates, against the strict expectation")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sledfuzz",
        description="Property-based fuzzer for RISC-V ftrace nop sleds and RV64 BPF trampolines.",
        epilog="Exit codes: 0 clean (or: every result as expected), 1 findings (an implementation crash "
               "included), 2 usage or input error, or an error of sledfuzz itself.",
    )
    parser.add_argument("--version", action="version", version=f"sledfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="the main job: a time-boxed campaign over every shipped era and bug configuration",
                       description="Search every shipped era, pairing and bug configuration for a fixed time, then "
                                   "print the configuration x invariant matrix. Exit 0 when every bug configuration "
                                   "was found and nothing else was reported, else 1.")
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="total time budget (default 60 s)")
    p.add_argument("--impl", action="append", metavar="NAME", help="restrict to these implementations (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    _common_search(p)

    p = sub.add_parser("fuzz", help="fuzz one implementation with hypothesis or atheris",
                       description="Search one implementation; every violation found is a finding (exit 1).")
    p.add_argument("--engine", choices=ENGINES, default="hypothesis")
    p.add_argument("--impl", required=True, metavar="NAME", help="implementation name (see 'sledfuzz impls')")
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="time budget (default 60 s)")
    p.add_argument("--linux-src", metavar="PATH",
                   help="Linux tree (directory or tarball) for the 'kernel' implementation "
                        "(default: $SLEDFUZZ_LINUX_SRC, else Debian's linux-source-6.12)")
    p.add_argument("--corpus", metavar="DIR", help="atheris: a seed corpus directory to start from (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    _common_search(p, jobs_default=1)

    p = sub.add_parser("replay", help="re-judge corpus files; exit 1 if any verdict changed")
    p.add_argument("paths", nargs="+", metavar="PATH", help="corpus entries (*.json) or directories of them")

    p = sub.add_parser("explain", help="show a case's violation and its annotated execution")
    p.add_argument("case", metavar="CASE.json")
    p.add_argument("--impl", metavar="NAME", help="implementation (default: the first failing one the entry names)")
    p.add_argument("--strict-flags", action="store_true")
    p.add_argument("--max-insns", type=_int_range(1, 10**7, "a number of instructions"), default=2000,
                   help="trace at most this many instructions (default 2000)")

    p = sub.add_parser("minimize", help="shrink a case while it keeps the same violation")
    p.add_argument("case", metavar="CASE.json")
    p.add_argument("--impl", metavar="NAME", help="implementation (default: the first failing one the entry names)")
    p.add_argument("--invariant", metavar="I-NAME", help="the violation to keep (default: the first one)")
    p.add_argument("--origin", metavar="NAME",
                   help="also keep passing on this implementation (default: the one the impl derives from)")
    p.add_argument("-o", "--output", metavar="PATH", help="write the minimal entry here (default: stdout)")
    p.add_argument("--strict-flags", action="store_true")
    p.add_argument("--time", type=_seconds, default=60.0, metavar="S", help="time budget (default 60 s)")

    p = sub.add_parser("impls", help="list implementations (eras, pairings, bug configurations, kernel)")
    p.add_argument("--linux-src", metavar="PATH", help="Linux tree for the 'kernel' line (default as for fuzz)")

    p = sub.add_parser("matrix", help="the historical-bug matrix: search each configuration until found")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--time-per-cell", type=_seconds, default=30.0, metavar="S",
                   help="search budget per configuration (default 30 s; found bugs stop early)")
    p.add_argument("--impl", action="append", metavar="NAME", help="restrict to these implementations (repeatable)")
    _common_search(p)

    p = sub.add_parser("exhaust", help="every configuration shape up to small bounds, values drawn per shape")
    p.add_argument("--impl", required=True, metavar="NAME")
    p.add_argument("--max-links", type=_int_range(0, 6, "a number of links"), default=3, metavar="K")
    p.add_argument("--max-args", type=_int_range(0, 12, "a number of arguments"), default=12, metavar="N")
    p.add_argument("--count-only", action="store_true", help="print the number of shapes and exit")
    _common_search(p)
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


def _load_case_file(path: str) -> tuple[Any, Any]:
    """(case, entry or None) from a case file or a corpus entry; one-line errors."""
    from fuzz.corpus import entry_from_dict
    from model.case import CaseError, case_from_dict

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a case file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        if isinstance(data, dict) and "corpus" in data:
            entry = entry_from_dict(data)
            return entry.case, entry
        return case_from_dict(data), None
    except CaseError as exc:
        raise UsageError(f"{path}: {exc}") from None


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
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create: {exc.strerror or exc}") from None


def _counts_line(counts: Any) -> str:
    return (f"{counts.cases} cases: {counts.judged} judged ({counts.failed} failing), {counts.refused} refused, "
            f"{counts.unspecified} unspecified, {counts.invalid} invalid")


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
    display = report.Display(configs, expects, enabled=False)
    start = time.time()
    with display:
        results, interrupted = run_cells(specs, jobs=jobs, on_event=display.on_event)
    return _finish(args, display, results, interrupted, configs, time.time() - start,
                   fmt=getattr(args, "format", "md"))


def _finish(args: argparse.Namespace, display: Any, results: list[Any], interrupted: bool, configs: list[str],
            elapsed: float, fmt: str = "md") -> int:
    from fuzz import report
    from fuzz.campaign import merge_results
    from fuzz.corpus import atomic_write_text

    merged = {r.impl: r for r in merge_results(results)}
    cells = [merged.get(n) or display.partial(n) for n in configs]
    cells = [c for c in cells if c is not None]
    rows = [c.to_json() for c in cells]
    atomic_write_text(Path(args.out) / "matrix.json", json.dumps(rows, indent=2) + "\n")
    md = report.matrix_md(cells)
    atomic_write_text(Path(args.out) / "matrix.md", md)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(md, end="")
        print(report.summary(cells, elapsed, interrupted))
    if interrupted:
        print("sledfuzz: interrupted; the summary above covers what was done so far", file=sys.stderr)
    ok = all(c.ok for c in cells) and len(cells) == len(configs) and not interrupted
    if any(c.error for c in cells):
        return EXIT_TOOL_ERROR
    return EXIT_CLEAN if ok else EXIT_FINDINGS


# -- fuzz -----------------------------------------------------------------------------------------------


def cmd_fuzz(args: argparse.Namespace) -> int:
    from fuzz import report
    from fuzz.campaign import CellSpec, expectation, merge_results, run_cells

    if args.linux_src is not None:
        if not Path(args.linux_src).exists():
            raise UsageError(f"--linux-src {args.linux_src}: no such file or directory")
        from emu.kernel.impl import set_default_tree

        set_default_tree(args.linux_src)  # also exported as $SLEDFUZZ_LINUX_SRC for workers
    impl = _resolve(args.impl)
    _check_out_dir(args.out)
    start = time.time()
    if args.engine == "atheris":
        from fuzz.atheris_run import run_atheris

        if args.corpus is not None and not Path(args.corpus).is_dir():
            raise UsageError(f"--corpus {args.corpus}: not a directory")
        res = run_atheris(args.impl, seconds=args.time, jobs=args.jobs, seed=args.seed, out_dir=args.out,
                          strict_flags=args.strict_flags, corpus=args.corpus)
        print(report.fuzz_report(res, time.time() - start))
        if res.error:
            return EXIT_TOOL_ERROR
        return EXIT_FINDINGS if res.findings else EXIT_CLEAN
    expects = {args.impl: expectation(impl)}
    specs = [CellSpec(args.impl, args.time, args.seed + i, args.strict_flags, args.out, stop_when_found=False,
                      engine="hypothesis") for i in range(args.jobs)]
    display = report.Display([args.impl], expects, enabled=not args.no_progress, total_seconds=args.time)
    with display:
        results, interrupted = run_cells(specs, jobs=args.jobs, on_event=display.on_event)
    merged = merge_results(results)
    cell = merged[0] if merged else display.partial(args.impl)
    print(report.fuzz_report(cell, time.time() - start))
    if interrupted:
        print("sledfuzz: interrupted; the summary above covers what was done so far", file=sys.stderr)
    if cell is not None and cell.error:
        return EXIT_TOOL_ERROR
    return EXIT_FINDINGS if cell is not None and cell.findings else EXIT_CLEAN


# -- replay ---------------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from fuzz.campaign import judge_case
    from fuzz.corpus import ExpectedVerdict, entry_files, load_entry, replay_entry
    from model.case import CaseError

    files = entry_files(args.paths)
    for p in args.paths:
        if not Path(p).exists():
            raise UsageError(f"{p}: no such file or directory")
    if not files:
        raise UsageError(f"no corpus files (*.json) under {' '.join(args.paths)}")
    entries = []
    for f in files:
        try:
            entries.append((str(f), load_entry(f)))
        except CaseError as exc:
            raise UsageError(f"{f}: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{f}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    impls: dict[str, Any] = {}

    def verdict_of(case: Any, name: str) -> tuple[ExpectedVerdict, str]:
        if name not in impls:
            impls[name] = _resolve(name)
        j = judge_case(case, impls[name])
        return j.verdict, "; ".join(j.messages[:2])

    changed = 0
    total = 0
    for path, entry in entries:
        for r in replay_entry(path, entry, verdict_of):
            total += 1
            if r.changed:
                changed += 1
                print(f"CHANGED {path} [{r.impl}]: expected {r.expected.render()}, got {r.got.render()}"
                      + (f" ({r.detail})" if r.detail else ""))
            else:
                print(f"ok      {path} [{r.impl}]: {r.got.render()}")
    print(f"{len(entries)} files, {total} verdicts, {changed} changed")
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


def cmd_minimize(args: argparse.Namespace) -> int:
    from fuzz.campaign import derives_from, judge_case, minimize_finding
    from fuzz.corpus import Entry, atomic_write_text
    from fuzz.minimize import size

    case, entry = _load_case_file(args.case)
    name = _default_impl(entry, args.impl, args.case)
    impl = _resolve(name)
    judged = judge_case(case, impl, args.strict_flags)
    if judged.status != "fail":
        raise UsageError(f"{args.case}: the case does not fail on {name} (verdict: {judged.status}); nothing to minimize")
    inv = args.invariant or sorted(judged.invariants)[0]
    if inv not in judged.invariants:
        raise UsageError(f"--invariant {inv}: the case violates {', '.join(sorted(judged.invariants))} on {name}, not {inv}")
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
    out = Entry(small, expect, prov).to_json()
    if args.output:
        atomic_write_text(args.output, out)
        print(f"minimized {args.case} -> {args.output} ({inv} on {name}; size {size(case)} -> {size(small)})",
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
    from fuzz.exhaust import enumerate_shapes, run_exhaust

    impl = _resolve(args.impl)
    shapes = enumerate_shapes(impl.caps, max_links=args.max_links, max_args=args.max_args,
                              strict_flags=args.strict_flags)
    print(f"{len(shapes)} shapes for {args.impl} (max links {args.max_links}, max args {args.max_args})")
    if args.count_only:
        return EXIT_CLEAN
    _check_out_dir(args.out)
    from fuzz.campaign import default_jobs

    res = run_exhaust(args.impl, shapes, jobs=args.jobs or default_jobs(), seed=args.seed,
                      strict_flags=args.strict_flags, out_dir=args.out)
    from fuzz import report

    print(report.exhaust_report(res))
    return EXIT_FINDINGS if res.violating else EXIT_CLEAN


HANDLERS = {
    "run": cmd_run,
    "fuzz": cmd_fuzz,
    "replay": cmd_replay,
    "explain": cmd_explain,
    "minimize": cmd_minimize,
    "impls": cmd_impls,
    "matrix": cmd_matrix,
    "exhaust": cmd_exhaust,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return HANDLERS[args.command](args)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sledfuzz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN
    except Exception as exc:  # a bug of sledfuzz itself (an implementation's crash is a finding)
        _err(f"internal error: {type(exc).__name__}: {exc} ({_innermost(exc)}); please report it")
        return EXIT_TOOL_ERROR


def _innermost(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "no traceback"


if __name__ == "__main__":
    sys.exit(main())
