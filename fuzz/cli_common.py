"""What every subcommand shares: exit codes, the one-line user error, and checked inputs.

Library code raises; the command line decides what a person sees (docs/cli.md). A user mistake
(a missing file, bad JSON, a case field out of range, an unknown implementation, an output
directory that cannot be written) is a ``UsageError``: one line on stderr and exit 2.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports what a subcommand needs when it runs (a fast --help)
    from sledfuzz.emu.impls.api import Implementation
    from sledfuzz.fuzz.corpus import Entry
    from sledfuzz.fuzz.exhaust import ExhaustResult
    from sledfuzz.fuzz.results import CellResult
    from sledfuzz.model.case import Case

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_HARNESS_FAULT = 3  # a finding that does not reproduce on a fresh engine (docs/cli.md)
EXIT_SKIP = 125  # the tree cannot be built or probed: git bisect run skips it
EXIT_TOOL_ERROR = 2  # sledfuzz itself failed (never 0: a run that did not happen is not clean)


class UsageError(Exception):
    """A user mistake: reported as one line on stderr with exit code 2, never a traceback."""


def err(msg: str) -> None:
    print(f"sledfuzz: error: {msg}", file=sys.stderr)


def resolve_impl(name: str) -> Implementation:
    from sledfuzz.emu.impls.registry import ImplementationError, resolve

    try:
        return resolve(name)
    except ImplementationError as exc:
        raise UsageError(str(exc).splitlines()[0] if str(exc) else f"unknown implementation {name!r}") from None


def read_input(path: str) -> object:
    """Parsed JSON of an input file, or a one-line UsageError naming the file (never a hang on a
    FIFO, a MemoryError on /dev/zero or a RecursionError on deep nesting: corpus.read_json_file)."""
    from sledfuzz.fuzz.corpus import read_json_file
    from sledfuzz.model.case import CaseError

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


def load_case_file(path: str) -> tuple[Case, Entry | None]:
    """(case, entry or None) from a case file or a corpus entry; one-line errors."""
    from sledfuzz.fuzz.corpus import entry_from_dict, is_entry
    from sledfuzz.model.case import CaseError, case_from_dict

    data = read_input(path)
    try:
        if is_entry(data):
            entry = entry_from_dict(data)
            return object_unchanged(entry.case, path), entry
        return object_unchanged(case_from_dict(data), path), None
    except CaseError as exc:
        raise UsageError(f"{path}: {exc}") from None


def object_unchanged(case: Case, path: str) -> Case:
    """A case that traces a compiled function replays only against the same object file."""
    if case.function.compiled is None:
        return case
    from sledfuzz.emu.elf.image import ElfError
    from sledfuzz.emu.elf.placement import check_hash

    try:
        check_hash(case.function.compiled)
    except ElfError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return case


def default_impl(entry: Entry | None, given: str | None, path: str) -> str:
    """``--impl``, else the first implementation a corpus entry expects to fail, else its first."""
    if given:
        return given
    if entry is not None:
        for name, verdict in entry.expect.items():
            if verdict.status == "fail":
                return str(name)
        return str(next(iter(entry.expect)))
    raise UsageError(f"{path}: a plain case names no implementation; pass --impl NAME")


def check_out_dir(out: str) -> None:
    """``--out`` must be a directory we can create files in: checked by creating one, before any
    search starts (a read-only file system, a file, missing permission: exit 2 naming the cause)."""
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


def check_output_file(path: str) -> None:
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


def end_code(interrupted: bool, code: int, results: Sequence[CellResult | ExhaustResult] = ()) -> int:
    """130 after an interrupt (with a note on stderr), else 2 on a cell's tool error, else 3 on
    harness faults, else ``code``."""
    from sledfuzz.fuzz.interrupt import EXIT_INTERRUPTED
    from sledfuzz.fuzz.results import CellResult

    if interrupted:
        print("sledfuzz: interrupted; the summary above covers what was done so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    if any(isinstance(r, CellResult) and r.error for r in results):
        return EXIT_TOOL_ERROR
    if any(r.harness_faults for r in results):
        return EXIT_HARNESS_FAULT
    return code
