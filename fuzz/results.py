"""What a search found, per configuration ("cell"): counts, findings, and the cell's word.

A ``CellResult`` says whether a configuration behaved as expected: a bug configuration must show
each of its own (target) bugs and nothing else, a clean one nothing at all, and every minimal
counterexample must pass on the configuration it derives from. The report (``fuzz.report``), the
``matrix.json`` rows and the exit code are read from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sledfuzz.fuzz.oracle import PASSING

Expect = Literal["pass", "fail"]


@dataclass
class Counts:
    """How many cases a search judged and how the rest were answered."""

    cases: int = 0
    judged: int = 0  # pass + fail
    failed: int = 0
    refused: int = 0
    unspecified: int = 0
    invalid: int = 0
    #: failures the reused engine saw that a fresh engine did not (fuzz.fresh; never findings)
    harness_faults: int = 0

    def add(self, status: str) -> None:
        self.cases += 1
        if status in ("pass", "fail"):
            self.judged += 1
            if status == "fail":
                self.failed += 1
        elif status == "refused":
            self.refused += 1
        elif status == "unspecified":
            self.unspecified += 1
        else:
            self.invalid += 1

    def merge(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class Finding:
    """The first violation of one invariant in a cell, and where its cases are."""

    impl: str
    invariant: str
    message: str
    seconds: float
    raw_path: str
    case_path: str
    known: bool
    origin: str | None = None
    origin_status: str | None = None  # the minimal case's verdict on the configuration it derives from
    origin_required: bool = True  # False when the origin declares this invariant's bug itself
    checked: bool = False  # minimisation and the origin check ran (False: interrupted before)

    @property
    def origin_ok(self) -> bool | None:
        """None when there is nothing to check or the check never ran."""
        if self.origin is None or not self.origin_required or not self.checked:
            return None
        return self.origin_status in PASSING


@dataclass
class CellResult:
    """One configuration's search. ``ok`` means: as expected (all known bugs found, nothing else)."""

    impl: str
    expect: Expect
    seconds: float
    counts: Counts = field(default_factory=Counts)
    findings: dict[str, Finding] = field(default_factory=dict)
    known_bugs: dict[str, list[str]] = field(default_factory=dict)  # commit -> invariants
    inherited: frozenset[str] = frozenset()  # known bugs the origin declares too (not this cell's target)
    origin: str | None = None
    seed: int = 0
    interrupted: bool = False
    error: str = ""

    @property
    def not_run(self) -> bool:
        """Stopped before it judged a single case (or never started)."""
        return self.interrupted and self.counts.cases == 0 and not self.findings and not self.error

    @property
    def unexpected(self) -> list[str]:
        return sorted(inv for inv, f in self.findings.items() if not f.known)

    @property
    def harness_faults(self) -> int:
        """Failures that did not reproduce on a fresh engine (written to harness-faults/)."""
        return self.counts.harness_faults

    @property
    def target_bugs(self) -> dict[str, list[str]]:
        """The bugs this configuration isolates: all its known bugs minus its origin's."""
        return {c: invs for c, invs in self.known_bugs.items() if c not in self.inherited}

    @property
    def bugs_found(self) -> dict[str, Finding | None]:
        out: dict[str, Finding | None] = {}
        for commit, invs in self.target_bugs.items():
            hits = [self.findings[i] for i in invs if i in self.findings]
            out[commit] = min(hits, key=lambda f: f.seconds) if hits else None
        return out

    @property
    def found(self) -> bool:
        """expect "fail": every target bug found; expect "pass": anything found."""
        if self.expect == "fail":
            return bool(self.target_bugs) and all(f is not None for f in self.bugs_found.values())
        return bool(self.findings)

    @property
    def first(self) -> Finding | None:
        """The first finding of a target bug (else the first finding at all)."""
        hits = [f for f in self.bugs_found.values() if f is not None]
        pool = hits or list(self.findings.values())
        return min(pool, key=lambda f: f.seconds) if pool else None

    @property
    def ok(self) -> bool:
        if self.error:
            return False
        if self.unexpected:
            return False
        if any(f.origin_ok is False for f in self.findings.values()):
            return False
        return all(f is not None for f in self.bugs_found.values())

    def to_json(self) -> dict[str, Any]:
        first = self.first
        return {
            "impl": self.impl,
            "expect": self.expect,
            "found": self.found,
            "invariant": first.invariant if first else None,
            "seconds": round(first.seconds, 3) if first else None,
            "case": first.case_path if first else None,
            "ok": self.ok,
            "status": self.status,
            "derives_from": self.origin,
            "inherited_bugs": sorted(self.inherited),
            "target_bugs": {
                commit: ({"invariant": f.invariant, "seconds": round(f.seconds, 3), "case": f.case_path} if f else None)
                for commit, f in self.bugs_found.items()
            },
            "findings": [
                {
                    "invariant": f.invariant,
                    "known": f.known,
                    "seconds": round(f.seconds, 3),
                    "case": f.case_path,
                    "raw_case": f.raw_path,
                    "message": f.message,
                    "origin_status": f.origin_status if f.checked else "not run",
                    "origin_required": f.origin_required,
                    "minimized": f.checked,
                }
                for f in sorted(self.findings.values(), key=lambda f: f.seconds)
            ],
            "unexpected": self.unexpected,
            "counts": asdict(self.counts),
            "harness_faults": self.harness_faults,
            "search_seconds": round(self.seconds, 3),
            "seed": self.seed,
            "interrupted": self.interrupted,
            "not_run": self.not_run,
            **({"error": self.error} if self.error else {}),
        }

    @property
    def status(self) -> str:
        """The configuration's word in the report (docs/cli.md, "Reading the report")."""
        if self.not_run:
            return "not run"
        if self.error:
            return "ERROR"
        if self.unexpected:
            return "UNEXPECTED"
        if any(f.origin_ok is False for f in self.findings.values()):
            return "ORIGIN-FAILS"
        if any(f is None for f in self.bugs_found.values()):
            return "interrupted" if self.interrupted else "MISSED"
        return "ok"
