"""Invariants on the machine state around a run: callee-saved registers, sp and ra, faults, the
instruction budget, stack bounds and the unwind chain."""

from __future__ import annotations

from sledfuzz.model.case import Case
from sledfuzz.model.contract import PLANTED
from sledfuzz.model.expectation import TRAMPOLINE_EVENT_KINDS, Expected
from sledfuzz.model.invariants.base import (
    Invariant,
    event_name,
    fmt,
    fmt_all,
    returned,
    run_invariant,
)
from sledfuzz.model.observation import Observation

#: Trap kinds that mean the run hit its instruction budget rather than faulting.
BUDGET_TRAPS: frozenset[str] = frozenset({"budget", "timeout", "step_limit"})


@run_invariant("I-CALLEE-SAVED")
def callee_saved(case: Case, exp: Expected, obs: Observation) -> str | None:
    """At the return to the parent s0-s11, gp and tp hold exactly what the parent planted
    (``contract.PLANTED``): the trampoline saves and restores s1 (the start time) and fp, and
    nothing else may change. Broken when the original is entered past its prologue (the 16-byte
    skip on an 8-byte sled, fixed by 25ad10658dc1: the body's ``sd s0`` is skipped but its
    ``ld s0`` runs)."""
    if not returned(obs):
        return None
    for reg, want in PLANTED.items():
        got = obs.final_reg(reg)
        if got != want:
            return f"{reg}={fmt(got)} at the return, planted {fmt(want)}"
    return None


def _parent_value_kept(exp: Expected, obs: Observation, reg: str, want: int) -> str | None:
    """``reg`` holds the parent's ``want`` where the body is entered on the RESTORE_REGS path and
    when control reaches the parent (I-SP, I-PARENT-RA)."""
    if exp.restore_regs and not exp.call_orig:
        for entry in obs.body_entries:
            got = entry.sp if reg == "sp" else entry.ra
            if got != want:
                return f"body entered with {reg}={fmt(got)} want the parent's {fmt(want)}"
    if returned(obs) and obs.final_reg(reg) != want:
        return f"{reg}={fmt(obs.final_reg(reg))} at the return want {fmt(want)}"
    return None


@run_invariant("I-SP")
def sp(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The stack is balanced — sp at the return equals the sp of the parent's call, and the body on
    the RESTORE_REGS path is entered with that same sp — and sp is 16-byte aligned at every call
    made. Broken by 1732ebc4a261's predecessor (struct_ops given the two-frame epilogue) and by
    skipping the body's prologue (25ad10658dc1)."""
    for ev in obs.events:
        if ev.sp % 16:
            return f"sp={fmt(ev.sp)} not 16-byte aligned at {event_name(ev)}"
    return _parent_value_kept(exp, obs, "sp", obs.entry_sp)


@run_invariant("I-PARENT-RA")
def parent_ra(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The parent's return address survives every redirect: ra equals it when control reaches the
    parent, and the body entered on the RESTORE_REGS path holds it in ra. Broken by 6724a76cff85's
    era change (a 16-byte sled's parent ra lost by a redirect not returning to ip+12) and by the
    pre-25ad10658dc1 trampoline on t0 sleds (parent ra from an unwritten [sp-8])."""
    return _parent_value_kept(exp, obs, "ra", exp.parent_ret)


@run_invariant("I-NO-FAULT")
def no_fault(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The run raises no fault: no fetch from outside code, no misaligned or unmapped access, no
    illegal instruction. Broken by 1732ebc4a261's predecessor (struct_ops crash with epc = t0) and
    9f1e16fb1fc9's (an image overflowing its allocation)."""
    if obs.trap is None or obs.trap.kind in BUDGET_TRAPS:
        return None
    where = f" addr={fmt(obs.trap.addr)}" if obs.trap.addr is not None else ""
    detail = f" ({obs.trap.detail})" if obs.trap.detail else ""
    return f"{obs.trap.kind} at pc={fmt(obs.trap.pc)}{where}{detail}"


@run_invariant("I-TERMINATES")
def terminates(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The run reaches the parent within the instruction budget. Infinite recursion through the
    sled (47c9214dcbea) or a loop through a stale branch ends here when it does not fault first."""
    if obs.trap is not None and obs.trap.kind in BUDGET_TRAPS:
        return f"stopped by the {obs.trap.kind} after {obs.steps} steps at pc={fmt(obs.trap.pc)}"
    if obs.budget and obs.steps >= obs.budget and obs.return_pc is None:
        return f"used the whole budget of {obs.budget} steps"
    return None


@run_invariant("I-STACK-BOUNDS")
def stack_bounds(case: Case, exp: Expected, obs: Observation) -> str | None:
    """Between the parent's call and its return nothing is written at or above the entry sp (the
    caller's frame, its outgoing stack arguments, the canaries) nor below the stack region, and
    the data region receives only the body's own store. Broken by entering the body past its
    prologue (25ad10658dc1: the body's frame lands in the caller's) and by wrong stack-argument
    offsets (6801b0aef79d)."""
    if not obs.canaries_ok:
        return "the canaries above the parent's sp were overwritten"
    lo, hi = case.layout.stack, obs.entry_sp
    store_addr = exp.store[0] if exp.store is not None else None
    for w in obs.writes:
        if lo <= w.addr and w.addr + w.size <= hi:
            continue
        if store_addr is not None and w.addr == store_addr and w.size == 8:
            continue
        if any(w.addr == st.addr and w.size == st.size for st in exp.body_stores):
            continue
        return f"{w.size}-byte write to {fmt(w.addr)} from pc={fmt(w.pc)} outside [{fmt(lo)}, entry sp {fmt(hi)})"
    return None


@run_invariant("I-UNWIND")
def unwind(case: Case, exp: Expected, obs: Observation) -> str | None:
    """At every host call the trampoline makes, the fp chain reads trampoline -> traced function ->
    parent: [fp-8] is the return into the traced function (func + sled entry bytes; ip+12 for the
    16-byte detour), the next level is the parent's return; a directly called struct_ops
    trampoline shows the parent's return only. 25ad10658dc1 v2 added the 16-byte parent frame
    ("otherwise we will miss one layer when unwinding"); before it the layout could not be walked."""
    n = len(exp.frames)
    for ev in obs.events:
        if ev.kind not in TRAMPOLINE_EVENT_KINDS:
            continue
        got = tuple(ev.frames[:n])
        if got != exp.frames:
            return f"at {event_name(ev)} the unwinder saw {fmt_all(got)} want {fmt_all(exp.frames)}"
    return None


#: This module's invariants, in DESIGN §6 order.
INVARIANTS: tuple[Invariant, ...] = (callee_saved, sp, parent_ra, no_fault, terminates, stack_bounds, unwind)
