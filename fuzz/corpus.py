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
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.case import Case, CaseError, case_from_dict

CORPUS_SCHEMA = 1
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


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


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


def load_entry(path: str | os.PathLike[str]) -> Entry:
    """Read one corpus file; OSError / CaseError propagate for the CLI's one-line report."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseError("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return entry_from_dict(data)


def entry_files(paths: list[str]) -> list[Path]:
    """Expand directories to their ``*.json`` files (sorted); plain files are kept as given."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(path.glob("*.json")))
        else:
            out.append(path)
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
