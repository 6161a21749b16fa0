"""Invariants on control flow and results: where control returns, what the parent gets back,
how often the body runs, and that the trampoline never re-enters itself."""

from __future__ import annotations

from sledfuzz.model.case import Case
from sledfuzz.model.expectation import TRAMPOLINE_EVENT_KINDS, Expected
from sledfuzz.model.invariants.base import (
    Invariant,
    event_name,
    fmt,
    in_parent,
    returned,
    run_invariant,
)
from sledfuzz.model.observation import Event, Observation


@run_invariant("I-RETURN-TARGET")
def return_target(case: Case, exp: Expected, obs: Observation) -> str | None:
    """Control comes back exactly once to the parent's return address: via t0 into the body and then
    the body's own return (RESTORE_REGS), via ra straight to the parent (SKIP_FRAME), via ra for a
    directly called struct_ops trampoline. A return to any address taken from a stack slot the
    trampoline did not write itself is the bug of 25ad10658dc1 (the pre-6.6 trampoline on an
    8-byte t0 sled loaded the parent ra from [sp-8], which the new sled never writes — the seed
    bug), and 1732ebc4a261 (struct_ops returning through the caller's t0). The run stops only at
    the parent's return address, so a return to another address in the parent stub shows as a trap
    there, reported here as well as by I-NO-FAULT."""
    if obs.parent_ret and obs.parent_ret != exp.parent_ret:
        return (f"the scenario's parent returns to {fmt(obs.parent_ret)} but the model expects {fmt(exp.parent_ret)} "
                f"(contract.PARENT_RET_OFFSET)")
    if obs.return_pc is None:
        if obs.trap is None and not (obs.budget and obs.steps >= obs.budget):
            return "the run never returned to the parent"
        if obs.trap is not None and obs.trap.pc != exp.parent_ret and in_parent(case, obs.trap.pc):
            # the parent stub holds nothing but its call and the return sentinel: control that
            # stops anywhere else in it came back to the wrong address
            return f"returned into the parent at {fmt(obs.trap.pc)} want {fmt(exp.parent_ret)} ({obs.trap.kind} there)"
        return None
    if obs.return_pc != exp.parent_ret:
        return f"returned to {fmt(obs.return_pc)} want the parent at {fmt(exp.parent_ret)}"
    return None


@run_invariant("I-RETURN-VALUE")
def return_value(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The parent receives a0 (and, for BPF-program targets whose BPF callers read R0, a5) as the
    model says: the body's result on the RESTORE_REGS path; the saved retval slots with CALL_ORIG
    (the original's a0/a5, or the short-circuiting fmod_ret program's a0 and R0); for struct_ops
    the fentry program's R0 extended per BTF. Broken by 2f1b0d3d7331 (a0 = raw R0 instead of
    sext.w), 7112cd26e606 (only one of a0/a5 saved) and fd2e08128944 (struct_ops returns
    truncated by sext.w instead of the BTF size)."""
    if not returned(obs):
        return None
    a0, a5 = obs.final_reg("a0"), obs.final_reg("a5")
    if exp.a0 is not None and a0 != exp.a0:
        return f"parent got a0={fmt(a0)} want {fmt(exp.a0)}"
    if exp.a5 is not None and a5 != exp.a5:
        return f"parent got a5={fmt(a5)} want {fmt(exp.a5)}"
    return None


@run_invariant("I-BODY-RUNS")
def body_runs(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The traced body runs exactly once (fentry-only, or CALL_ORIG without a non-zero fmod_ret) or
    not at all (a non-zero fmod_ret, struct_ops), and its store side effect happens exactly as
    often. Broken by 25ad10658dc1's predecessor on t0 sleds (fentry-only returned to the parent
    and skipped the body), and by CALL_ORIG without SKIP_FRAME after 8f3e00af8e52 (body twice);
    the modify_return selftest checks the side-effect count."""
    n = obs.body_runs
    if n > exp.body_runs or (n < exp.body_runs and returned(obs)):
        return f"body ran {n} times want {exp.body_runs}"
    if exp.store is not None or case.function.body.store is not None:
        addr = case.function.values[case.function.body.store.slot] if case.function.body.store else 0
        stores = [w for w in obs.writes if w.addr == addr and w.size == 8]
        want = exp.body_runs
        if len(stores) > want or (len(stores) < want and returned(obs)):
            return f"the body's store to {fmt(addr)} happened {len(stores)} times want {want}"
        if exp.store is not None and stores and stores[0].value != exp.store[1]:
            return f"the body's store wrote {fmt(stores[0].value)} want {fmt(exp.store[1])}"
    if case.function.compiled is not None:
        return _compiled_stores(case, exp, obs)
    return None


def _compiled_stores(case: Case, exp: Expected, obs: Observation) -> str | None:
    """A compiled body's stores outside its frame happen once per run, with the measured values."""
    assert case.function.compiled is not None
    per_run = case.function.compiled.stores
    for place in dict.fromkeys((st.addr, st.size) for st in per_run):
        want_values = [st.value for st in per_run if (st.addr, st.size) == place] * exp.body_runs
        got = [w.value for w in obs.writes if (w.addr, w.size) == place]
        if len(got) > len(want_values) or (len(got) < len(want_values) and returned(obs)):
            return f"the body's {place[1]}-byte store to {fmt(place[0])} happened {len(got)} times want {len(want_values)}"
        for g, w in zip(got, want_values, strict=False):
            if g != w:
                return f"the body's {place[1]}-byte store to {fmt(place[0])} wrote {fmt(g)} want {fmt(w)}"
    return None


@run_invariant("I-NO-RECURSION")
def no_recursion(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The trampoline is never re-entered from itself: calling the original at the patched sled
    (func+0) instead of the body enters the trampoline again, deeper on the stack, without end.
    Detected as a repeated trampoline host call made at a lower sp than its first occurrence.
    Introduced by 47c9214dcbea (orig_call += 8 only with ORIG_STACK, which riscv refuses), fixed
    by 8f3e00af8e52 ("Kernel stack overflow")."""
    first: dict[tuple[str, int], Event] = {}
    for ev in obs.events:
        if ev.kind not in TRAMPOLINE_EVENT_KINDS:
            continue
        key = (ev.kind, ev.link)
        seen = first.get(key)
        if seen is None:
            first[key] = ev
        elif ev.sp < seen.sp:
            return f"trampoline re-entered: {event_name(ev)} again at sp={fmt(ev.sp)} below sp={fmt(seen.sp)}"
    return None


#: This module's invariants, in DESIGN §6 order.
INVARIANTS: tuple[Invariant, ...] = (return_target, return_value, body_runs, no_recursion)
