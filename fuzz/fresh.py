"""Every reported finding reproduces: re-judge it on a fresh engine before it is written.

Searches judge thousands of cases one after another on one reused engine (creating one per case
would cost more than judging). Anything that survives from one case to the next (a hook, a
mapping, a cached translation) could make a case fail that passes on its own, and a finding
that does not reproduce is worse than none. So before a finding is written as a finding it is
judged again on a new engine with no history (``fuzz.oracle.judge(..., fresh=True)``) and must
give the same status and the same violated invariants. One that does not is a *harness fault*:
written to ``OUT/harness-faults/`` with both judgements (a corpus entry whose expected verdict is
the fresh one, so ``sledfuzz replay`` reproduces it), counted, and never reported as a finding.
The CLI ends with exit code 3 when a run had harness faults (docs/cli.md, "Exit codes").
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz.corpus import Entry, atomic_write_text
from sledfuzz.fuzz.judging import Judged, judge_case
from sledfuzz.model.case import Case

__all__ = ["EXIT_HARNESS_FAULT", "HARNESS_FAULTS_DIR", "MAX_FILES", "confirm", "same_judgement",
           "write_harness_fault"]

#: Where harness faults go, under the run's output directory.
HARNESS_FAULTS_DIR = "harness-faults"
#: The exit code of a run whose only problem is a harness fault (documented in docs/cli.md).
EXIT_HARNESS_FAULT = 3
#: Files a search writes for its harness faults at most (each one is counted all the same).
MAX_FILES = 20


def same_judgement(a: Judged, b: Judged) -> bool:
    """Same status and the same violated invariants (messages may differ in addresses only if
    the invariants agree; a finding is its invariant set)."""
    return a.status == b.status and a.invariants == b.invariants


def confirm(case: Case, impl: Implementation, judged: Judged, strict_flags: bool = False) -> tuple[bool, Judged]:
    """Re-judge ``case`` on a fresh engine: (whether it gives ``judged`` again, the fresh verdict)."""
    again = judge_case(case, impl, strict_flags, fresh=True)
    return same_judgement(judged, again), again


def _render(j: Judged) -> str:
    return j.status + (": " + "; ".join(j.messages) if j.messages else "")


def write_harness_fault(out_dir: str | Path, case: Case, impl_name: str, shared: Judged, fresh: Judged,
                        provenance: dict[str, str] | None = None) -> str:
    """Write a harness fault atomically; the name is unique per (configuration, case), so two runs
    sharing an output directory never replace each other's different cases."""
    text = case.to_json(indent=None)
    digest = hashlib.sha1(f"{impl_name}\n{text}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", impl_name).strip("_")
    path = Path(out_dir) / HARNESS_FAULTS_DIR / f"{name}-{digest}.json"
    prov = dict(provenance or {})
    prov.update(
        harness_fault="the reused engine and a fresh engine disagree on this case; not a finding",
        shared_engine=_render(shared),
        fresh_engine=_render(fresh),
    )
    atomic_write_text(path, Entry(case, {impl_name: fresh.verdict}, prov).to_json())
    return str(path)
