"""The named invariants of DESIGN §6: each judges one property of a run against ``expect()``.

Every invariant is an ``Invariant`` object (``model.invariants.base``) with a stable ``name``, a
docstring paragraph (what, why, which kernel bug broke it, SEMANTICS §4), the commits it catches,
and ``check(case, caps, expected, observed) -> Violation | None``. They live in one module per
subject (``flow``, ``seen``, ``machine``, ``image``, ``session``); ``ALL`` lists them in DESIGN §6
order. Conventions shared by all of them:

* ``Invalid`` and ``Unspecified`` expectations are never judged (the oracle asks ``expect`` with
  ``strict_flags=True`` when the user wants unspecified flags judged);
* refusal invariants (I-REJECT, I-REACH) judge the refusal itself; every *run* invariant is skipped
  when the implementation refused (there is no run to judge) or the model expects a refusal;
* *final-state* checks (registers, counts that can only be short because the run stopped) are
  made only when the run returned to the parent; excesses (a body run twice, a re-entered
  trampoline) are reported even from a run that then faulted;
* trap kinds in ``BUDGET_TRAPS`` mean "stopped by the instruction budget" (I-TERMINATES); any other
  trap is a fault (I-NO-FAULT).
"""

from __future__ import annotations

from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import Case
from sledfuzz.model.expectation import Expectation
from sledfuzz.model.invariants import flow, image, machine, seen, session
from sledfuzz.model.invariants.base import Invariant, Violation
from sledfuzz.model.invariants.crash import IMPL_CRASH, crash_exception, impl_crash
from sledfuzz.model.invariants.machine import BUDGET_TRAPS
from sledfuzz.model.observation import Observation

__all__ = [
    "ALL",
    "BUDGET_TRAPS",
    "BY_NAME",
    "IMPL_CRASH",
    "NAMES",
    "Invariant",
    "Violation",
    "check_all",
    "crash_exception",
    "impl_crash",
]

ALL: tuple[Invariant, ...] = (
    *flow.INVARIANTS, *seen.INVARIANTS, *machine.INVARIANTS, *image.INVARIANTS, *session.INVARIANTS,
)
BY_NAME: dict[str, Invariant] = {inv.name: inv for inv in ALL}

#: The names of DESIGN §6, in its order (stable; ``ALL`` follows it, a unit test checks).
NAMES: tuple[str, ...] = (
    "I-RETURN-TARGET", "I-RETURN-VALUE", "I-BODY-RUNS", "I-NO-RECURSION", "I-ARGS-SEEN", "I-ARGS-PASSED",
    "I-NARGS", "I-IP-ARG", "I-RETVAL-SEEN", "I-ORDER", "I-PROG-PROTOCOL", "I-CALLEE-SAVED", "I-SP",
    "I-PARENT-RA", "I-NO-FAULT", "I-TERMINATES", "I-STACK-BOUNDS", "I-UNWIND", "I-SIZE", "I-POKE",
    "I-REACH", "I-SLED-CONSISTENT", "I-TORN", "I-TEARDOWN", "I-REJECT",
    # issue 11 (7.x): after DESIGN §6's list
    "I-SESSION-COOKIE", "I-IS-RETURN", "I-TAIL-CALL-COUNT",
)


def check_all(case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> tuple[Violation, ...]:
    """Every violation, in DESIGN §6 order. Invalid and Unspecified expectations judge nothing."""
    out = (inv.check(case, caps, expected, observed) for inv in ALL)
    return tuple(v for v in out if v is not None)
