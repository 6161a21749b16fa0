"""The oracle as campaigns use it: one case on one implementation -> a ``Judged``.

Searches, the minimiser, replay and the atheris target compare verdicts by status and violated
invariant names only; ``Judged`` is that reduction of ``fuzz.oracle.Verdict``. Every call goes
through ``judge_case``, so a nightly worker can note the case it is about to judge
(``observing``) and ``fuzz --cross-check`` can run it on a second engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz import interrupt
from sledfuzz.fuzz.corpus import ExpectedVerdict
from sledfuzz.fuzz.oracle import PASSING
from sledfuzz.model.case import Case

CaseObserver = Callable[[Case], None]

_observers: list[CaseObserver] = []


@dataclass(frozen=True)
class Judged:
    """A verdict reduced to what campaigns compare: status and violated invariant names.

    ``messages`` are the violations' lines (``I-SIZE: ...``), one per violation."""

    status: str
    invariants: frozenset[str]
    messages: tuple[str, ...] = ()

    @property
    def verdict(self) -> ExpectedVerdict:
        return ExpectedVerdict(self.status, self.invariants if self.status == "fail" else frozenset())

    @property
    def passed(self) -> bool:
        """Judged and correct (ran as the model says, or refused as it says)."""
        return self.status in PASSING

    def messages_by_invariant(self) -> list[tuple[str, str]]:
        """(invariant, its first message line), sorted by invariant (a line starts ``I-NAME:``)."""
        out: dict[str, str] = {}
        for msg in self.messages:
            out.setdefault(msg.split(":", 1)[0], msg)
        for inv in self.invariants:
            out.setdefault(inv, inv)
        return sorted(out.items())


@contextlib.contextmanager
def observing(observer: CaseObserver) -> Iterator[None]:
    """Within the block, call ``observer`` with every case before it is judged (a nightly worker
    records the case it is on, so the supervisor can save it if the worker dies)."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


def judge_case(case: Case, impl: Implementation, strict_flags: bool = False, *, fresh: bool = False) -> Judged:
    """The verdict of one case (``fresh``: on a new engine with no history, fuzz.fresh); raises
    ``fuzz.interrupt.Interrupted`` once a stop was requested."""
    from sledfuzz.fuzz.crosscheck import cross_check_hook
    from sledfuzz.fuzz.oracle import judge  # looked up per call: bench/measure.py probes the oracle

    interrupt.check()
    for observer in _observers:
        observer(case)
    if not fresh:
        cross_check_hook(case, impl)  # `fuzz --cross-check`: engine findings (no-op unless enabled)
    verdict = judge(case, impl, strict_flags=strict_flags, fresh=fresh)
    return Judged(
        status=verdict.status,
        invariants=verdict.invariants,
        messages=tuple(str(v) for v in verdict.violations),
    )
