"""Corpus entries: a case, the verdict expected per implementation, and where it came from.

An entry file (``corpus/regressions/*.json``) is the unit of regression replay::

    {"corpus": 1,
     "case": {... a schema-1 case ...},
     "expect": {"ftrace=v6.6,tramp=v6.3": {"status": "fail", "invariants": ["I-BODY-RUNS"]},
                "ftrace=v6.6,tramp=v6.19": {"status": "pass"}},
     "provenance": {"bug": "25ad10658dc1", "invariant": "I-BODY-RUNS", "found_by": "..."}}

A verdict is the oracle's status plus the set of violated invariant names; replay reports any
implementation whose verdict changed. Every file the fuzzer writes goes through
``atomic_write_text`` (temp file + rename), so a killed campaign never leaves half a finding.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sledfuzz.model.case import Case, CaseError, case_from_dict, parse_json

CORPUS_SCHEMA = 1
#: A case file or corpus entry is a few KiB; anything past this is not one (``/dev/zero``, a log).
MAX_FILE_BYTES = 1 << 20
STATUSES = ("pass", "fail", "refused", "unspecified", "invalid")


@dataclass(frozen=True)
class ExpectedVerdict:
    """What an implementation must answer: a status, and for "fail" the violated invariants."""

    status: str
    invariants: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.invariants:
            out["invariants"] = sorted(self.invariants)
        return out

    def render(self) -> str:
        return self.status + (f" {','.join(sorted(self.invariants))}" if self.invariants else "")


@dataclass(frozen=True)
class Entry:
    """One corpus file: case, expected verdict per implementation name, provenance."""

    case: Case
    expect: Mapping[str, ExpectedVerdict]
    provenance: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": CORPUS_SCHEMA,
            "case": self.case.to_dict(),
            "expect": {name: v.to_dict() for name, v in self.expect.items()},
            "provenance": dict(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


class WriteError(OSError):
    """A file could not be written (disk full, read-only, no permission): the message names the
    file and the cause (``ENOSPC``), so a campaign that hits it says why it stopped."""

    def __str__(self) -> str:
        return str(self.strerror)


def _write_failed(target: Path, exc: OSError) -> WriteError:
    code = errno.errorcode.get(exc.errno or 0, "")
    cause = f"{exc.strerror or exc} ({code})" if code else str(exc.strerror or exc)
    return WriteError(exc.errno or 0, f"cannot write {target}: {cause}")


def _write_temp(target: Path, text: str) -> str:
    """A synced temp file beside ``target`` holding ``text``; its path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and an atomic rename.
    An OSError comes out as a ``WriteError`` naming the file and the errno (``ENOSPC``)."""
    target = Path(path)
    try:
        tmp = _write_temp(target, text)
        try:
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except WriteError:
        raise
    except OSError as exc:
        raise _write_failed(target, exc) from exc
    return target


def _create_new(target: Path, text: str) -> bool:
    """Atomically create ``target`` holding ``text`` unless it exists (then False, nothing written)."""
    tmp = _write_temp(target, text)
    try:
        os.link(tmp, target)  # fails if target exists: no window where another writer's file is replaced
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:  # a file system without hard links: reserve the name, then fill it atomically
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(tmp, target)
        tmp = ""
        return True
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def case_digest(case: Case) -> str:
    """A short content hash of a case: what tells two findings of one invariant apart."""
    return hashlib.sha256(case.to_json(indent=None).encode()).hexdigest()[:10]


def _tagged(target: Path, tag: str) -> Path:
    """``I-SIZE.raw.json`` -> ``I-SIZE-TAG.raw.json`` (and ``I-SIZE.json`` -> ``I-SIZE-TAG.json``)."""
    name = target.name
    for ext in (".raw.json", ".json"):
        if name.endswith(ext):
            return target.with_name(f"{name[: -len(ext)]}-{tag}{ext}")
    return target.with_name(f"{name}-{tag}")


def _holds_case(path: Path, case: Case) -> bool:
    try:
        return load_entry(path).case == case
    except (OSError, CaseError):
        return False


def write_finding(path: str | os.PathLike[str], entry: Entry) -> Path:
    """Write a finding where no other case is: ``path`` if it is free or already holds this case,
    else ``path`` tagged with the case's digest. Runs sharing an output directory (``--jobs``,
    two campaigns) never replace each other's cases. Returns the path written."""
    text = entry.to_json()
    first = Path(path)
    try:
        for candidate in (first, _tagged(first, case_digest(entry.case)), _tagged(first, f"{os.getpid()}")):
            if _create_new(candidate, text):
                return candidate
            if _holds_case(candidate, entry.case):
                atomic_write_text(candidate, text)  # the same case: newer verdict and provenance
                return candidate
        raise FileExistsError(errno.EEXIST, f"{first} and its tagged names hold other cases")
    except WriteError:
        raise
    except OSError as exc:
        raise _write_failed(first, exc) from exc


@functools.cache
def tool_version() -> str:
    """``sledfuzz 0.1.0 (git 096715c)`` from a checkout (``+dirty`` with local changes), else the
    installed distribution's version: which code produced a finding."""
    from importlib.metadata import PackageNotFoundError, version

    from sledfuzz.fuzz import __version__

    try:
        ver = version("sledfuzz")
    except PackageNotFoundError:
        ver = __version__
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return f"sledfuzz {ver}"
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"sledfuzz {ver}"
    return f"sledfuzz {ver} (git {head}{'+dirty' if dirty else ''})"


def with_tool_version(provenance: Mapping[str, str]) -> dict[str, str]:
    """``provenance`` plus ``"sledfuzz"``: the version (and commit) of the code writing it."""
    return {**provenance, "sledfuzz": tool_version()}


def _verdict(data: Any, path: str) -> ExpectedVerdict:
    if not isinstance(data, dict):
        raise CaseError(path, f"expected an object like {{\"status\": \"pass\"}}, got {type(data).__name__}")
    status = data.get("status")
    if status not in STATUSES:
        raise CaseError(f"{path}.status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
    invs = data.get("invariants", [])
    if not isinstance(invs, list) or not all(isinstance(x, str) for x in invs):
        raise CaseError(f"{path}.invariants", "expected a list of invariant names")
    return ExpectedVerdict(status, frozenset(invs))


def entry_from_dict(data: Any) -> Entry:
    """Parse an entry; errors are CaseError naming the field (``expect.v6.19.status``)."""
    if not isinstance(data, dict):
        raise CaseError("", f"expected a corpus entry object, got {type(data).__name__}")
    if data.get("corpus") != CORPUS_SCHEMA:
        raise CaseError("corpus", f"expected {CORPUS_SCHEMA} (a corpus entry), got {data.get('corpus')!r}")
    case = case_from_dict(data.get("case"))
    expect_raw = data.get("expect")
    if not isinstance(expect_raw, dict) or not expect_raw:
        raise CaseError("expect", "expected a non-empty object mapping implementation names to verdicts")
    expect = {str(k): _verdict(v, f"expect.{k}") for k, v in expect_raw.items()}
    prov_raw = data.get("provenance", {})
    if not isinstance(prov_raw, dict):
        raise CaseError("provenance", "expected an object")
    return Entry(case, expect, {str(k): str(v) for k, v in prov_raw.items()})


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """Parsed JSON of a case file, refusing what cannot be one before reading much of it: a
    non-regular file (a FIFO would block, ``/dev/zero`` never ends), more than ``MAX_FILE_BYTES``,
    nesting or numbers past ``model.case``'s limits. Content problems are CaseError; a missing or
    unreadable file is OSError."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        raise CaseError("", f"is {kind}, expected a regular JSON file" if kind != "not a regular file" else
                        "not a regular file, expected a JSON file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the stat
            raise CaseError("", "not a regular file, expected a JSON file")
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CaseError("", f"larger than {MAX_FILE_BYTES >> 20} MiB: not a case file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError("", f"not UTF-8 text (byte {exc.start})") from None
    return parse_json(text)


def load_entry(path: str | os.PathLike[str]) -> Entry:
    """Read one corpus file; OSError / CaseError propagate for the CLI's one-line report."""
    return entry_from_dict(read_json_file(path))


def is_entry(data: Any) -> bool:
    """Parsed JSON that claims to be a corpus entry (a fuzz output directory also holds summaries)."""
    return isinstance(data, dict) and "corpus" in data


def entry_files(paths: list[str]) -> list[Path]:
    """Expand directories, recursively, to their ``*.json`` files (sorted; hidden temp files and
    directories skipped); plain files are kept as given."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            out.append(path)
            continue
        found: list[Path] = []
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(root) / n for n in names if n.endswith(".json") and not n.startswith(".")]
        out.extend(sorted(found))
    return out


@dataclass(frozen=True)
class ReplayResult:
    """One (file, implementation) replay: what was expected, what came out."""

    path: str
    impl: str
    expected: ExpectedVerdict
    got: ExpectedVerdict
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.expected != self.got


VerdictFn = Callable[[Case, str], tuple[ExpectedVerdict, str]]


def replay_entry(path: str, entry: Entry, verdict_of: VerdictFn) -> list[ReplayResult]:
    """Re-judge the case on every implementation the entry names."""
    out = []
    for impl, expected in entry.expect.items():
        got, detail = verdict_of(entry.case, impl)
        out.append(ReplayResult(path, impl, expected, got, detail))
    return out
