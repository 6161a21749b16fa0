"""``sledfuzz nightly``: the unattended job a team reads in the morning (docs/nightly.md).

Every path it reads or writes is an option: ``--out``, ``--state-dir``, ``--hypothesis-db``,
``--corpus`` and ``--checkout`` (the checkout whose regression corpus, property tests and atheris
seeds it uses; default: the current directory, as when CI runs it from the checkout).

Within ``--time``: replay the corpus and the findings other machines stored in the shared example
database, run the property suite under the hypothesis ``nightly`` profile (from a checkout that
has it), then search every configuration on ``--jobs`` worker processes with the mixed
hypothesis/shape-builder engine and with atheris (whose corpus grows across nights). Each
minimised finding is keyed by (implementation, invariant, signature) and written to
``OUT/findings/`` as found; it is new when neither the corpus, nor earlier nights' state file, nor
the shared database knows the key. Four reports at the end (``fuzz.nightly_report``), also after
SIGINT/SIGTERM. Exit 0: nothing new; 1: something to read; 2: the job could not run; 130:
interrupted (the reports say so).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz.nightly_db import (
    DatabaseSpec,
    DatabaseUnavailable,
    SharedFindings,
    cache_dir,
    default_directory,
    open_database,
)
from sledfuzz.fuzz.nightly_findings import NightState
from sledfuzz.fuzz.nightly_phases import phase_campaign, phase_properties, phase_replay, phase_shared_db
from sledfuzz.fuzz.nightly_plan import (
    Checkout,
    Configuration,
    PlanError,
    Shard,
    kernel_configurations,
    parse_shard,
    properties_seconds,
    report_reserve,
    shard_of,
)
from sledfuzz.fuzz.nightly_run import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    Night,
    NightInterrupted,
    check_interrupt,
    clear_stop,
    request_stop,
    stop_requested,
)

if TYPE_CHECKING:
    from sledfuzz.fuzz.cli_options import Subparsers

PHASES = ("replay", "properties", "search", "atheris")


class NightError(Exception):
    """The job cannot run (bad option, Redis down, a configuration that does not resolve); one line."""


# -- the command line -------------------------------------------------------------------------------


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|h)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration (seconds, or 90m, 1h), got {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


def _jobs(text: str) -> int:
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes or 'auto', got {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"expected 1..256 worker processes, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (a non-negative integer), got {text!r}") from None
    if not 0 <= value < 1 << 63:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..2**63-1, got {value}")
    return value


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except PlanError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Subparsers) -> None:
    """Register ``sledfuzz nightly`` on the CLI's subparsers."""
    p = sub.add_parser(
        "nightly", help="the unattended nightly job: replay, properties, search, atheris; four reports",
        description="A time-boxed nightly campaign (docs/nightly.md). Exit codes: 0 no new finding, 1 new "
                    "findings (or a changed corpus verdict, a failing property, a declared bug not found), 2 the "
                    "job could not run, 130 interrupted (after writing the reports).")
    p.add_argument("--time", type=_duration, default=3600.0, metavar="T",
                   help="budget covering every phase: seconds, or 90m, 1h (default 3600 s = 1h)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="configurations to search (repeatable; default: every clean configuration, plus kernel "
                        "for each --linux-src)")
    p.add_argument("--linux-src", action="append", default=[], metavar="PATH",
                   help="a Linux tree (directory, tarball or debian:X.Y): adds a 'kernel' configuration built from it "
                        "(repeatable; default: none)")
    p.add_argument("--jobs", type=_jobs, default=0, metavar="N|auto", help="worker processes (default auto: the CPUs)")
    p.add_argument("--out", default="nightly-out", metavar="DIR",
                   help="where reports and findings go (default ./nightly-out)")
    p.add_argument("--seed", type=_seed, default=None, help="seed of the night (default: today's date, YYYYMMDD)")
    p.add_argument("--shard", type=_shard, default=Shard(1, 1), metavar="I/N",
                   help="run the I-th of N deterministic slices of the configurations (default 1/1)")
    p.add_argument("--hypothesis-db", metavar="URL|DIR",
                   help="shared example database: redis://HOST:PORT[/DB] or a directory "
                        "(default $XDG_CACHE_HOME/sledfuzz/hypothesis)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="earlier nights' seen findings and the atheris corpora (default $XDG_CACHE_HOME/sledfuzz/nightly)")
    p.add_argument("--checkout", default=".", metavar="DIR",
                   help="the sledfuzz checkout whose tests/properties, corpus/regressions and atheris seeds the night "
                        "uses; what it lacks is skipped (default: %(default)s, the current directory)")
    p.add_argument("--corpus", metavar="DIR", help="regression corpus to replay first (default: the checkout's "
                                                   "corpus/regressions, if any)")
    p.add_argument("--skip", action="append", choices=PHASES, default=[],
                   help="leave out a phase (repeatable; default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr (default: shown)")


# -- configurations -----------------------------------------------------------------------------------


def _impl_for(config: Configuration) -> Implementation:
    """The implementation object in this (the parent) process; kernel trees each their own."""
    from sledfuzz.emu.impls.registry import ImplementationError, resolve

    try:
        if config.impl == "kernel" and config.linux_src:
            from sledfuzz.emu.kernel.impl import factory

            return factory(config.linux_src)
        return resolve(config.impl)
    except ImplementationError as exc:
        raise NightError(str(exc).splitlines()[0]) from None


def choose_configurations(names: list[str] | None, trees: list[str]) -> list[Configuration]:
    from sledfuzz.fuzz.campaign import expectation, shipped_configurations

    for tree in trees:
        if not Path(tree).exists():
            raise NightError(f"--linux-src {tree}: no such file or directory")
    kernels = kernel_configurations(trees)
    if names:
        out: list[Configuration] = []
        for n in dict.fromkeys(names):
            if n == "kernel":
                if not kernels:
                    raise NightError("--impl kernel needs --linux-src PATH (one kernel configuration per tree)")
                out += kernels
            else:
                out.append(Configuration(n, n))
        return out
    clean = [Configuration(n, n) for n in shipped_configurations() if expectation(_impl_for(Configuration(n, n))) == "pass"]
    return clean + kernels


def cmd_nightly(args: argparse.Namespace) -> int:
    """The subcommand; prints its own one-line errors (exit 2)."""
    clear_stop()
    old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args)
    except NightError as exc:
        print(f"sledfuzz nightly: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except NightInterrupted:
        print("sledfuzz nightly: interrupted before the job started", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run(args: argparse.Namespace) -> int:
    start = time.time()
    deadline = start + args.time
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NightError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NightError(f"--out {out}: cannot create: {exc.strerror or exc}") from None
    if importlib.util.find_spec("matplotlib") is None:
        raise NightError("matplotlib is not installed (pip install 'sledfuzz[nightly]'): the report plot needs it")
    db_spec = DatabaseSpec(args.hypothesis_db or str(default_directory()))
    try:
        shared = SharedFindings(open_database(db_spec))
    except DatabaseUnavailable as exc:
        raise NightError(f"--hypothesis-db: {exc}") from None
    configs = shard_of(choose_configurations(args.impl, args.linux_src), args.shard)
    if not configs:
        raise NightError(f"shard {args.shard} has no configuration (fewer configurations than shards)")
    state_dir = Path(args.state_dir) if args.state_dir else cache_dir() / "nightly"
    checkout = Checkout(Path(args.checkout))
    if not checkout.root.is_dir():
        raise NightError(f"--checkout {checkout.root}: not a directory")
    corpus = Path(args.corpus) if args.corpus else checkout.regressions
    if args.corpus and not corpus.is_dir():
        raise NightError(f"--corpus {corpus}: not a directory")
    seed = args.seed if args.seed is not None else int(time.strftime("%Y%m%d"))
    jobs = args.jobs or max(1, os.cpu_count() or 1)
    night = Night(out=out, configs=configs, budget=args.time, jobs=jobs, seed=seed, shard=args.shard,
                  db_spec=db_spec, shared=shared, state=NightState(state_dir / "state.json"), quiet=args.no_progress,
                  started_wall=start)
    night.known |= night.state.keys()
    interrupted = False
    error = ""
    try:
        for c in configs:
            check_interrupt()
            night.impls[c.label] = _impl_for(c)
            if c.linux_src:
                desc = str(night.impls[c.label].description)
                m = re.search(r"linux (\S+)", desc)
                night.kernel_versions[c.label] = m.group(1) if m else desc
        try:
            night.known |= shared.seen()
        except Exception as exc:
            raise NightError(f"--hypothesis-db: cannot read {db_spec.describe()}: {' '.join(str(exc).split())}") from None
        plural = "s" if len(configs) != 1 else ""
        night.say(f"{len(configs)} configuration{plural} ({', '.join(c.label for c in configs)}), shard {args.shard}, "
                  f"{jobs} workers, {args.time:.0f} s, database {db_spec.describe()}")
        reserve = report_reserve(args.time)
        if "replay" not in args.skip:
            phase_replay(night, corpus if corpus.is_dir() else None, deadline - reserve)
        phase_shared_db(night, deadline - reserve)
        if "properties" in args.skip:
            night.phases["properties"] = {"line": "skipped (--skip properties)"}
        elif not checkout.has_property_suite:
            night.phases["properties"] = {"line": f"skipped: no tests/properties in --checkout {checkout.root}"}
            night.say(f"properties: skipped (no tests/properties in --checkout {checkout.root})")
        else:
            phase_properties(night, checkout, min(properties_seconds(args.time), max(0.0, deadline - reserve - time.time())))
        atheris = "atheris" not in args.skip and importlib.util.find_spec("atheris") is not None
        if "atheris" not in args.skip and not atheris:
            night.phases["atheris"] = {"line": "skipped: atheris is not installed (pip install 'sledfuzz[fuzz]')"}
        elif "atheris" in args.skip:
            night.phases["atheris"] = {"line": "skipped (--skip atheris)"}
        if "search" not in args.skip or atheris:
            phase_campaign(night, checkout, deadline - reserve, deadline - reserve / 2, atheris=atheris,
                           search="search" not in args.skip)
    except NightInterrupted:
        interrupted = True
    except NightError as exc:
        error = str(exc)
    interrupted = interrupted or stop_requested()  # a signal after the last check still makes the night interrupted
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # the reports are written whatever arrives now
    night.phase_name = "reports"
    summary = night.summary(interrupted=interrupted, error=error)
    from sledfuzz.fuzz.nightly_report import verdict_line, write_reports

    write_reports(summary, out)
    if error:
        print(f"sledfuzz nightly: error: {error}", file=sys.stderr)
    for f in summary["findings"]:
        if f["status"] == "new":
            print(f"NEW {f['impl']} {f['invariant']} {f['signature']}: {f['message']}\n    {f['reproduce']}")
    print(f"sledfuzz nightly: {verdict_line(summary)} Reports: {out / 'summary.md'} (exit {summary['exit_code']})"
          + (" [interrupted]" if interrupted else ""))
    return int(summary["exit_code"])
