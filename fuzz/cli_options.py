"""The command line's parser pieces: argparse with one-line errors, option value types, option groups.

Every bad option value is one precise line on stderr and exit 2 (``sledfuzz run: error: ...``),
never a traceback; each subcommand module (``fuzz.cmd_*``) builds its options from these.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from sledfuzz.fuzz.cli_common import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``sledfuzz run: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


if TYPE_CHECKING:  # what ``add_subparsers(parser_class=Parser)`` returns (argparse names the class privately)
    Subparsers = argparse._SubParsersAction[Parser]


# -- option value types: each failure is one precise line -----------------------------------------


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def int_range(lo: int, hi: int | None, what: str) -> Callable[[str], int]:
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


jobs = int_range(1, 256, "a number of worker processes")
seed = int_range(0, (1 << 64) - 1, "a seed")
IMPL_HELP = "implementation name (see 'sledfuzz impls')"


# -- option groups ---------------------------------------------------------------------------------


def common_search(p: argparse.ArgumentParser, *, jobs_default: int | None = None) -> None:
    p.add_argument("--jobs", type=jobs, default=jobs_default, metavar="N",
                   help="worker processes (default: %(default)s)" if jobs_default is not None
                   else "worker processes (default: the number of CPUs, at most 8)")
    p.add_argument("--seed", type=seed, default=0, metavar="N", help="seed of every random choice (default: %(default)s)")
    p.add_argument("--out", default="sledfuzz-out", metavar="DIR",
                   help="where findings are written, atomically, as they are found; several runs may share it "
                        "(default: ./%(default)s)")
    p.add_argument("--strict-flags", action="store_true",
                   help="also judge raw flag sets the core never generates, against the strict expectation "
                        "(default: off, they count as unspecified)")


def strict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict-flags", action="store_true",
                   help="judge a raw flag set the core never generates against the strict expectation "
                        "(default: off, such a case is unspecified)")


def elf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--elf", metavar="PATH",
                   help="trace the real compiled functions of this RV64 object or executable (built with "
                        "-fpatchable-function-entry; signatures from its DWARF) instead of generated bodies "
                        "(default: generated bodies)")
    p.add_argument("--symbol", action="append", default=[], metavar="NAME",
                   help="with --elf: only these functions (repeatable; default: every function with a sled)")
    p.add_argument("--signature", action="append", default=[], metavar="NAME=SIG",
                   help="with --elf: a function's signature when the object has no debug info, e.g. "
                        "'f=(8,4s,16S,p)->4s' (s signed, S struct, p pointer; default: from DWARF)")
