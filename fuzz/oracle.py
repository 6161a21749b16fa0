"""The oracle: run a case on an implementation and judge it against the model -> Verdict.

The base version (the fuzzing front extends it): ``expect`` decides what must happen; an invalid
case is not run, an unspecified one is not run unless ``strict_flags`` asks for the strict
expectation; everything else runs in the scenario and every invariant is checked. A violation
is a ``fail``; an expected refusal that happened is ``refused``; anything else clean is ``pass``.

An exception raised by the implementation's own code (its JIT, patcher or poke: an era, the
kernel adapter, a plugin) is the finding I-IMPL-CRASH, a ``fail`` like any other, so every front
saves, minimises and reports it. An exception raised by the model or the harness is a bug of
the tool: it propagates (the command line turns it into exit status 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from sledfuzz.emu.engine import Engine
from sledfuzz.emu.impls.api import Implementation
from sledfuzz.emu.impls.guard import ImplementationCrash, guarded
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.scenario import DEFAULT_BUDGET, LayoutError, run_case, scenario_for
from sledfuzz.model.case import Case
from sledfuzz.model.contract import flag_names
from sledfuzz.model.core_stage import effective_flags
from sledfuzz.model.expectation import Invalid, Refusal, Unspecified
from sledfuzz.model.invariants import Violation, check_all, impl_crash
from sledfuzz.model.observation import Observation
from sledfuzz.model.semantics import expect

Status = Literal["pass", "fail", "refused", "unspecified", "invalid"]


@dataclass(frozen=True)
class Verdict:
    """The judgement of one case on one implementation.

    ``flags`` are the flags the JIT received (None when the core refused first); ``summary`` is
    one line for reports; ``observation`` is what the run produced (None when nothing ran).
    """

    status: Status
    violations: tuple[Violation, ...]
    impl: str
    flags: int | None
    summary: str
    observation: Observation | None = None

    @property
    def invariants(self) -> frozenset[str]:
        """Names of the violated invariants."""
        return frozenset(v.invariant for v in self.violations)

    @property
    def ok(self) -> bool:
        """Nothing to report: pass, refused as expected, or not judged."""
        return self.status != "fail"

    @property
    def passed(self) -> bool:
        """Judged and correct: it ran as the model says, or was refused as the model says.
        (A counterexample must pass on the configuration its bug configuration derives from.)"""
        return self.status in PASSING


#: Verdict statuses that mean "judged, and correct".
PASSING: frozenset[str] = frozenset({"pass", "refused"})


def _flags(case: Case) -> int | None:
    try:
        return effective_flags(case)
    except Exception:  # a case the core cannot even look at
        return None


def judge(
    case: Case,
    impl_or_name: Implementation | str,
    *,
    strict_flags: bool = False,
    engine: Engine | None = None,
    budget: int = DEFAULT_BUDGET,
    timing: dict[str, float] | None = None,
    fresh: bool = False,
) -> Verdict:
    """Judge ``case`` on an implementation (object or registry name, e.g. ``v6.19``).

    ``timing``, when given, accumulates the seconds spent in ``expect`` and in the invariants
    (the scenario keeps its own split in ``Scenario.timing``). ``fresh`` runs the case on a new
    engine with no history instead of the worker's (fuzz.fresh re-judges findings that way).
    """
    impl = resolve(impl_or_name) if isinstance(impl_or_name, str) else impl_or_name
    flags = _flags(case)
    fl = "?" if flags is None else flag_names(flags)
    t0 = time.perf_counter()
    exp = expect(case, impl.caps, strict_flags=strict_flags)
    if timing is not None:
        timing["expect"] = timing.get("expect", 0.0) + time.perf_counter() - t0
    if isinstance(exp, Invalid):
        return Verdict("invalid", (), impl.name, flags, f"invalid for {impl.name}: {exp.reason}")
    if isinstance(exp, Unspecified):
        return Verdict("unspecified", (), impl.name, flags, f"unspecified: {exp.reason}")
    try:
        obs = run_case(case, guarded(impl), engine=engine, budget=budget, fresh=fresh)
    except LayoutError as e:
        return Verdict("invalid", (), impl.name, flags, f"no run can be built: {e}")
    except ImplementationCrash as crash:
        # the crash may have cut a run short: its guest writes were never collected
        if not fresh:
            scenario_for(engine).reset()
        v = impl_crash(crash.exc_type, crash.call, crash.detail, crash.where)
        return Verdict("fail", (v,), impl.name, flags, f"{v} [{fl}]")
    t1 = time.perf_counter()
    violations = check_all(case, impl.caps, exp, obs)
    if timing is not None:
        timing["invariants"] = timing.get("invariants", 0.0) + time.perf_counter() - t1
    if violations:
        first = violations[0]
        more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
        return Verdict("fail", violations, impl.name, flags, f"{first}{more} [{fl}]", obs)
    if obs.refused is not None:  # a refusal the invariants accept (the model's, or an allowed one)
        why = exp.reason if isinstance(exp, Refusal) else obs.refused_reason
        return Verdict("refused", (), impl.name, flags, f"refused -{obs.refused} as expected: {why} [{fl}]", obs)
    return Verdict("pass", (), impl.name, flags, f"pass: body x{obs.body_runs}, {len(obs.events)} host calls [{fl}]", obs)
