"""The ``sledfuzz`` command line. Exit codes: 0 clean, 1 findings, 2 usage or input error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fuzz import __version__

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A user mistake: reported as one line on stderr with exit code 2, never a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sledfuzz",
        description="Property-based fuzzer for RISC-V ftrace nop sleds and RV64 BPF trampolines.",
        epilog="Exit codes: 0 clean, 1 findings, 2 usage or input error.",
    )
    parser.add_argument("--version", action="version", version=f"sledfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("impls", help="list implementations (eras, pairings, bug configurations)")
    return parser


def cmd_impls(args: argparse.Namespace) -> int:
    from emu.impls.registry import available

    for name, line in available():
        print(f"{name:32s} {line}")
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {"impls": cmd_impls}
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"sledfuzz: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sledfuzz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
