"""What a correct trampoline does with an accepted request: its host calls and results.

``expected_run`` follows SEMANTICS 3.4 for a (possibly raw) flag set: the fentry programs, the
fmod_ret programs and their short-circuit, the original, the fexit programs (a session program in
both phases), ``__bpf_tramp_enter/exit`` around them with CALL_ORIG, and what the parent gets back.
``model.semantics.expect`` calls it once the case has passed every refusal rule.
"""

from __future__ import annotations

from sledfuzz.model.caps import Capabilities, SledLayout
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import (
    F_CALL_ORIG,
    F_IP_ARG,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_TAIL_CALL_CTX,
    TCC_INIT,
    TCC_PLANTED,
    session_token,
)
from sledfuzz.model.expectation import Expected, ExpectedEvent
from sledfuzz.model.values import body_result, prog_a0, struct_ops_a0


def return_into(case: Case, sled: SledLayout) -> int:
    """The return address into the traced function a patched sled leaves for the trampoline.

    t0 schemes: t0 = func + entry bytes (the body). Ra detour: ra = ip+12, the ``ld ra`` before
    the body.
    """
    off = sled.entry_bytes - 4 if sled.scheme == "ra_detour" else sled.entry_bytes
    return (case.layout.func + off) & MASK64


def expected_run(
    case: Case, caps: Capabilities, sled: SledLayout, flags: int, pret: int, allowed: frozenset[int]
) -> Expected:
    """The event list and results for a (possibly raw) flag set, following SEMANTICS 3.4."""
    fn = case.function
    layout = case.layout
    slots = fn.nr_slots
    values = fn.values
    call_orig = bool(flags & F_CALL_ORIG)
    restore = bool(flags & F_RESTORE_REGS)
    struct_ops = case.target == "struct_ops"
    fentry_ret = bool(flags & F_RET_FENTRY_RET)
    ip = layout.func if flags & F_IP_ARG else None
    im = layout.im
    by_kind: dict[str, list[int]] = {k: [] for k in ("fentry", "fmod_ret", "fexit")}
    # the two phases: a session program (7.x) runs in both, in link order with the others
    for i, link in enumerate(case.links):
        if link.kind == "fsession":
            by_kind["fentry"].append(i)
            by_kind["fexit"].append(i)
        else:
            by_kind[link.kind].append(i)

    events: list[ExpectedEvent] = []
    notes: list[str] = []

    def run_prog(i: int, retval: int | None, fexit_phase: bool = False) -> bool:
        link = case.links[i]
        prog = layout.prog_addr(i)
        events.append(ExpectedEvent("prog_enter", i, a0=prog, returns=link.enter))
        ran = link.enter != 0
        if ran:
            session = link.kind == "fsession"
            if session and not fexit_phase:
                retval = 0  # the return slot is zeroed before the fentry phase
            cookie_seen = (session_token(i) if fexit_phase else 0) if link.session_cookie else None
            events.append(
                ExpectedEvent(
                    "prog", i, ctx=values, nregs=slots, ip=ip, retval=retval, cookie=link.cookie, returns=link.r0,
                    is_return=fexit_phase if session else None, session_cookie=cookie_seen,
                )
            )
        events.append(ExpectedEvent("prog_exit", i, a0=prog, a1=link.enter))
        return ran

    if call_orig:
        events.append(ExpectedEvent("tramp_enter", a0=im))
    # The retval area (a0 slot, a5 slot); None = never written (stack garbage).
    slot_a0: int | None = None
    slot_a5: int | None = None
    # fentry: with RET_FENTRY_RET each prog that runs stores its a0 and R0 there.
    for i in by_kind["fentry"]:
        if run_prog(i, None) and fentry_ret:
            r0 = case.links[i].r0
            slot_a0, slot_a5 = prog_a0(r0, caps), r0 & MASK64
    # fmod_ret: the a0 slot is zeroed ("cleanup"), so each prog sees 0; the first prog whose a0
    # (sext.w(R0), or raw R0 before 2f1b0d3d7331) is non-zero skips the rest and the original.
    short: int | None = None
    if by_kind["fmod_ret"]:
        slot_a0 = 0
        for i in by_kind["fmod_ret"]:
            if run_prog(i, 0):
                r0 = case.links[i].r0
                slot_a0, slot_a5 = prog_a0(r0, caps), r0 & MASK64
                if slot_a0 != 0:
                    short = i
                    break
    body_runs = 0
    ret = body_result(case)
    if call_orig and short is None:
        body_runs = 1
        if fn.body.calls_helper:
            events.append(ExpectedEvent("helper"))
        slot_a0, slot_a5 = ret, fn.body.a5 & MASK64
    teardown = case.teardown and call_orig and short is None
    if not teardown:
        for i in by_kind["fexit"]:
            run_prog(i, slot_a0, fexit_phase=True)
    elif by_kind["fexit"]:
        notes.append("teardown: the fexit progs are skipped")
    if call_orig:
        events.append(ExpectedEvent("tramp_exit", a0=im))

    # What the parent sees.
    a0: int | None
    a5: int | None
    if struct_ops:
        if fentry_ret and slot_a0 is not None:
            link = case.links[by_kind["fentry"][0]]
            a0 = struct_ops_a0(link.r0, fn.ret_size, fn.ret_signed, caps)
            a5 = link.r0 & MASK64
        else:
            a0 = a5 = None
            if fentry_ret:
                notes.append("struct_ops: fentry skipped, the retval slot is never written (stack garbage)")
    elif call_orig or fentry_ret:
        a0, a5 = slot_a0, slot_a5
    else:
        # The trampoline returns into the body (t0), which then returns to the parent.
        body_runs += 1
        if fn.body.calls_helper:
            events.append(ExpectedEvent("helper"))
        a0, a5 = ret, fn.body.a5 & MASK64
    if not restore and not call_orig and not struct_ops:
        notes.append("no RESTORE_REGS: the body gets the registers the progs left")
    store = None
    if body_runs and fn.body.store is not None:
        store = (values[fn.body.store.slot], fn.body.store.value & MASK64)

    body_addr = (layout.func + sled.body_offset) & MASK64
    frames = (pret,) if struct_ops else (return_into(case, sled), pret)
    judged_a5 = a5 if case.target == "bpf_prog" else None
    # 7.3: a tail-call-reachable BPF program's count (a6) crosses the trampoline untouched: the
    # body is entered with the caller's count, and the caller gets back what the body left
    # (its own init, TCC_INIT), or its own count when the body did not run
    tail_call = case.target == "bpf_prog" and bool(flags & F_TAIL_CALL_CTX) and caps.tail_call_ctx
    return Expected(
        flags=flags,
        events=tuple(events),
        body_runs=body_runs,
        body_args=values if body_runs else (),
        body_addr=body_addr,
        a0=a0,
        a5=judged_a5,
        parent_ret=pret,
        frames=frames,
        allowed_refusals=allowed,
        teardown=teardown,
        store=store,
        body_stores=fn.compiled.stores if fn.compiled is not None and body_runs else (),
        short_circuit=short,
        nr_slots=slots,
        call_orig=call_orig,
        restore_regs=restore,
        a5_model=a5,
        notes=tuple(notes),
        func_meta=caps.fsession,
        body_a6=TCC_PLANTED if tail_call else None,
        # a body that calls a helper leaves whatever the helper left in a6: not judged then
        a6=None if not tail_call or (body_runs and fn.body.calls_helper) else TCC_INIT if body_runs else TCC_PLANTED,
    )
