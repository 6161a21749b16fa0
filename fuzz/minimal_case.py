"""A finding's minimal case: the one path every front takes from a failing case to what it writes.

The search (``fuzz.search``), ``sledfuzz fuzz --engine atheris``, the nightly atheris task and
``sledfuzz minimize`` all do the same thing with a failing case: demand that the smaller case
still passes on the configuration it derives from only when the original did, shrink it while it
keeps the same violation (``fuzz.minimize``), and judge the result again on a fresh engine, on
the implementation and on the origin, because what is written is what a fresh engine says
(``fuzz.fresh``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz import judging
from sledfuzz.fuzz.minimize import minimize
from sledfuzz.model.case import Case
from sledfuzz.model.invariants import IMPL_CRASH, crash_exception

MINIMIZE_SECONDS = 15.0


def _crash_types(judged: judging.Judged) -> set[str]:
    return {t for t in (crash_exception(m) for m in judged.messages) if t is not None}


def minimize_finding(case: Case, impl: Implementation, invariant: str, *, origin: Implementation | None,
                     strict_flags: bool, seconds: float = MINIMIZE_SECONDS) -> Case:
    """A smaller case violating ``invariant`` on ``impl`` (and passing on ``origin`` if given); for
    I-IMPL-CRASH, one on which the implementation raises the same exception type."""
    judge = judging.judge_case
    same_crash = _crash_types(judge(case, impl, strict_flags)) if invariant == IMPL_CRASH else set()

    def keep(c: Case) -> bool:
        j = judge(c, impl, strict_flags)
        if j.status != "fail" or invariant not in j.invariants:
            return False
        if same_crash and not _crash_types(j) & same_crash:
            return False
        return origin is None or judge(c, origin, strict_flags).passed

    prepare = None
    if case.function.compiled is not None:
        from sledfuzz.fuzz.elf_cases import compiled_candidate

        prepare = partial(compiled_candidate, original=case, impl=impl)
    return minimize(case, keep, deadline=time.monotonic() + seconds, prepare=prepare)


@dataclass(frozen=True)
class MinimalCase:
    """A finding's case after minimisation, judged on fresh engines.

    ``origin_demanded``: the original passed on the origin, so the minimiser kept the case passing
    there (a case that already failed on the origin is not asked to)."""

    case: Case
    judged: judging.Judged
    origin_judged: judging.Judged | None
    origin_demanded: bool


def minimal_case(case: Case, impl: Implementation, invariant: str, *, origin: Implementation | None,
                 strict_flags: bool, seconds: float = MINIMIZE_SECONDS, shrink: bool = True,
                 fresh_judged: judging.Judged | None = None) -> MinimalCase:
    """Minimise ``case`` for ``invariant`` on ``impl`` (``shrink=False``: keep it as it is) and judge
    the result on fresh engines. ``fresh_judged``: ``case``'s fresh verdict on ``impl`` when the
    caller already has it (not judged again if the case does not shrink)."""
    judge = judging.judge_case
    demanded = origin is not None and judge(case, origin, strict_flags).passed
    small = case
    if shrink:
        small = minimize_finding(case, impl, invariant, origin=origin if demanded else None,
                                 strict_flags=strict_flags, seconds=seconds)
    small_j = fresh_judged if small is case else None
    if small_j is None:
        small_j = judge(small, impl, strict_flags, fresh=True)
    origin_j = judge(small, origin, strict_flags, fresh=True) if origin is not None else None
    return MinimalCase(small, small_j, origin_j, demanded)
