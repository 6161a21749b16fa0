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
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sledfuzz.fuzz import __version__, cmd_campaign, cmd_case, cmd_exhaust, cmd_fuzz, cmd_nightly, review_cli
from sledfuzz.fuzz import cli_options as opt
from sledfuzz.fuzz.cli_common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_HARNESS_FAULT,
    EXIT_SKIP,
    EXIT_TOOL_ERROR,
    EXIT_USAGE,
    UsageError,
    err,
)
from sledfuzz.fuzz.review_cli import TreeUnavailable

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_HARNESS_FAULT", "EXIT_SKIP", "EXIT_TOOL_ERROR", "EXIT_USAGE",
           "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each subcommand module adds its own (``fuzz.cmd_*``)."""
    parser = opt.Parser(
        prog="sledfuzz",
        description="Property-based fuzzer for RISC-V ftrace nop sleds and RV64 BPF trampolines.",
        epilog="Exit codes: 0 clean (or: every result as expected), 1 findings (an implementation crash "
               "included), 2 usage or input error, or an error of sledfuzz itself.",
    )
    parser.add_argument("--version", action="version", version=f"sledfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=opt.Parser)
    cmd_campaign.add_run_parser(sub)
    cmd_fuzz.add_parser(sub)
    cmd_case.add_parsers(sub)  # replay, explain, minimize
    p = sub.add_parser("impls", help="list implementations (eras, pairings, bug configurations, kernel)")
    p.add_argument("--linux-src", metavar="PATH",
                   help="Linux tree for the 'kernel' line, e.g. debian:7.3 (default: $SLEDFUZZ_LINUX_SRC, else "
                        "Debian's linux-source-6.12)")
    cmd_campaign.add_matrix_parser(sub)
    cmd_exhaust.add_parser(sub)
    cmd_nightly.add_parser(sub)  # docs/nightly.md
    review_cli.add_parser(sub, opt.seconds, opt.seed)
    return parser


def _use_hypothesis_cache() -> None:
    """Keep hypothesis's files (example database, constants cache) out of the working directory:
    under ``$XDG_CACHE_HOME/sledfuzz/hypothesis`` (default ``~/.cache``) unless
    ``$HYPOTHESIS_STORAGE_DIRECTORY`` says otherwise. Set in the environment, so worker processes
    and the atheris children inherit it."""
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(Path(cache) / "sledfuzz" / "hypothesis")


def cmd_impls(args: argparse.Namespace) -> int:
    from sledfuzz.emu.impls.registry import available

    for name, line in available():
        print(f"{name:32s} {line}")
    from sledfuzz.emu.kernel.impl import describe_kernel_impl

    print(f"{'kernel':32s} {describe_kernel_impl(args.linux_src)}")
    return EXIT_CLEAN



def cmd_review(args: argparse.Namespace) -> int:
    try:
        return review_cli.cmd_review(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_campaign.cmd_run,
    "fuzz": cmd_fuzz.cmd_fuzz,
    "replay": cmd_case.cmd_replay,
    "explain": cmd_case.cmd_explain,
    "minimize": cmd_case.cmd_minimize,
    "impls": cmd_impls,
    "matrix": cmd_campaign.cmd_matrix,
    "exhaust": cmd_exhaust.cmd_exhaust,
    "nightly": cmd_nightly.cmd_nightly,
    "review": cmd_review,
}


class _BuildNotice(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows ``emu.kernel.build``'s notices (a first kernel JIT build takes half a minute)."""


def _announce_kernel_builds(enabled: bool) -> None:
    """Say on stderr when the kernel JIT is built for the first time (``--no-progress``: not)."""
    log = logging.getLogger("sledfuzz.emu.kernel.build")
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
    from sledfuzz.fuzz import interrupt

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
            err(str(exc))
            return EXIT_USAGE
        except TreeUnavailable as exc:
            err(f"{exc} (exit 125: git bisect run skips this tree)")
            return EXIT_SKIP
        except KeyboardInterrupt:
            print("sledfuzz: interrupted", file=sys.stderr)
            return interrupt.EXIT_INTERRUPTED
        except BrokenPipeError:
            return EXIT_CLEAN
        except Exception as exc:  # a bug of sledfuzz itself (an implementation's crash is a finding)
            err(f"internal error: {type(exc).__name__}: {exc} ({_innermost(exc)}); please report it")
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
