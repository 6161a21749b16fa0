"""Invariants of 7.x: session programs (their cookie, IS_RETURN) and the tail-call count a
trampoline must carry across itself."""

from __future__ import annotations

from sledfuzz.model.case import Case
from sledfuzz.model.contract import COOKIE_INDEX_SHIFT, IS_RETURN_SHIFT
from sledfuzz.model.expectation import Expected
from sledfuzz.model.invariants.base import (
    Invariant,
    fmt,
    prog_pairs,
    returned,
    run_invariant,
)
from sledfuzz.model.observation import Observation


@run_invariant("I-SESSION-COOKIE")
def session_cookie(case: Case, exp: Expected, obs: Observation) -> str | None:
    """A session program that calls ``bpf_session_cookie()`` gets a cookie slot of its own, zeroed
    before the fentry phase, and the same slot in both phases: its fentry run reads 0 there (it
    then writes a token, ``contract.session_token``), its fexit run reads its own token back. The
    slot is ctx[-index] with the index in bits 8-15 of ``func_meta`` (ctx[-1]); a slot shared with
    another program, with the argument/ip/meta words, or not zeroed shows as a wrong read
    (7.x ``invoke_bpf``'s ``cur_cookie``, ``bpf_fsession_cookie_cnt``)."""
    for ev, want in prog_pairs(exp, obs):
        if want.session_cookie is None:
            continue
        phase = "fexit" if want.is_return else "fentry"
        index = None if ev.nregs is None else (ev.nregs >> COOKIE_INDEX_SHIFT) & 0xFF
        if index is not None and index < 2:
            return f"link {ev.link} ({phase} run): cookie index {index} is ctx[-{index}], not a cookie slot"
        if ev.session_cookie != want.session_cookie:
            return (f"link {ev.link} ({phase} run) read its cookie at ctx[-{index}] = {fmt(ev.session_cookie)} "
                    f"want {fmt(want.session_cookie)}")
    return None


@run_invariant("I-IS-RETURN")
def is_return(case: Case, exp: Expected, obs: Observation) -> str | None:
    """A session program's ``bpf_session_is_return()`` (bit 63 of ``func_meta``, ctx[-1]) is false
    in its fentry run and true in its fexit run: the JIT stores the word with IS_RETURN set after
    the original returned and before the fexit phase (7.x)."""
    for ev, want in prog_pairs(exp, obs):
        if want.is_return is None or ev.nregs is None:
            continue
        got = bool(ev.nregs >> IS_RETURN_SHIFT & 1)
        if got != want.is_return:
            phase = "fexit" if want.is_return else "fentry"
            return f"link {ev.link} ({phase} run) saw func_meta={fmt(ev.nregs)}: is_return {got} want {want.is_return}"
    return None


@run_invariant("I-TAIL-CALL-COUNT")
def tail_call_count(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The trampoline of a tail-call-reachable BPF program (``BPF_TRAMP_F_TAIL_CALL_CTX``) keeps the
    tail-call count (a6) across itself: the original is entered with the count its caller passed
    (saved on entry, reloaded before the call), and the caller gets back the count the original
    left (stored after the call, restored on exit), or its own when the original did not run.
    Programs clobber a6 (a C-ABI temporary), so without this the count is lost and tail calls
    through a traced subprogram are unbounded: the class x86 fixed as its "tailcall hierarchy"
    (7.3 riscv: 7.2 reset the count in every subprogram instead)."""
    if exp.body_a6 is None:
        return None
    for k, entry in enumerate(obs.body_entries):
        if len(entry.regs) > 6 and entry.regs[6] != exp.body_a6:
            return f"body entry {k} got a6={fmt(entry.regs[6])} want the caller's count {fmt(exp.body_a6)}"
    if exp.a6 is not None and returned(obs):
        a6 = obs.final_reg("a6")
        if a6 != exp.a6:
            return f"parent got a6={fmt(a6)} want {fmt(exp.a6)}"
    return None


#: This module's invariants, in DESIGN §6 order.
INVARIANTS: tuple[Invariant, ...] = (session_cookie, is_return, tail_call_count)
