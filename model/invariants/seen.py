"""Invariants on what the programs and the body see: argument slots, ctx words, the return value
slot, the order of host calls and the per-program enter/exit protocol."""

from __future__ import annotations

from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import COOKIE_INDEX_SHIFT, IS_RETURN_SHIFT
from sledfuzz.model.expectation import Expected
from sledfuzz.model.invariants.base import (
    Invariant,
    first_diff,
    fmt,
    prog_pairs,
    returned,
    run_invariant,
)
from sledfuzz.model.observation import Observation


@run_invariant("I-ARGS-SEEN")
def args_seen(case: Case, exp: Expected, obs: Observation) -> str | None:
    """Every program sees ctx[i] equal to the i-th 8-byte argument slot: a0..a7, then the caller's
    stack words at the entry sp. Broken before 6801b0aef79d for more than 8 slots (refused then;
    copied from FP+16.. since), and latent for struct_ops with more than 8 slots (one frame, but
    the copy still reads FP+16..: SEMANTICS 3.3)."""
    for ev, want in prog_pairs(exp, obs):
        if want.ctx is None:
            continue
        got = tuple(ev.ctx[: exp.nr_slots])
        if got != want.ctx:
            return f"link {ev.link} saw ctx{first_diff(got, want.ctx)}"
    return None


@run_invariant("I-ARGS-PASSED")
def args_passed(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The body receives the caller's arguments unchanged: a0..a7 for the first eight slots and the
    stack words at its sp for the rest, even after programs clobbered every caller-saved register.
    Broken by the stack-argument copy of 6801b0aef79d if offsets are wrong, and by any
    RESTORE_REGS/restore_args slip; SEMANTICS 5.5."""
    values = case.function.values
    nreg = min(len(values), 8)
    for k, entry in enumerate(obs.body_entries):
        regs = tuple(entry.regs[:nreg])
        if regs != values[:nreg]:
            return f"body entry {k} got a{first_diff(regs, values[:nreg])}"
        stack = tuple(entry.stack[: len(values) - nreg])
        if stack != values[nreg:]:
            return f"body entry {k} got stack arg{first_diff(stack, values[nreg:])}"
    return None


@run_invariant("I-NARGS")
def nargs(case: Case, exp: Expected, obs: Observation) -> str | None:
    """ctx[-1] (bpf_get_func_arg_cnt) equals the number of 8-byte argument slots, a 16-byte struct
    counting two (tracing_struct: nregs 4 for ({2,3}, 1, 4)). Tied to the slot counting of
    6801b0aef79d. From 7.x ctx[-1] is the ``func_meta`` word and the count is its low 8 bits
    (``& 0xFF``, as the helpers read it); the other bits are I-SESSION-COOKIE's and I-IS-RETURN's,
    and any bit above the cookie index but below IS_RETURN must be clear."""
    for ev, want in prog_pairs(exp, obs):
        if want.nregs is None or ev.nregs is None:
            if want.nregs is not None:
                return f"link {ev.link}: ctx[-1] unreadable, want {want.nregs}"
            continue
        if not exp.func_meta:
            if ev.nregs != want.nregs:
                return f"link {ev.link} saw ctx[-1]={ev.nregs} want {want.nregs}"
            continue
        if ev.nregs & 0xFF != want.nregs:
            return f"link {ev.link} saw func_meta={fmt(ev.nregs)}: {ev.nregs & 0xFF} slots want {want.nregs}"
        stray = ev.nregs & ~((1 << IS_RETURN_SHIFT) | (0xFF << COOKIE_INDEX_SHIFT) | 0xFF) & MASK64
        if stray:
            return f"link {ev.link} saw func_meta={fmt(ev.nregs)}: stray bits {fmt(stray)}"
    return None


@run_invariant("I-IP-ARG")
def ip_arg(case: Case, exp: Expected, obs: Observation) -> str | None:
    """With IP_ARG, ctx[-2] (bpf_get_func_ip) is the traced function's symbol address — not the
    patch site, not func+8 (get_func_ip_test). The ``li t1, func_addr`` is variable-length, so a
    sizing/emit disagreement on it is the 9f1e16fb1fc9 class of bug."""
    for ev, want in prog_pairs(exp, obs):
        if want.ip is not None and ev.ip != want.ip:
            return f"link {ev.link} saw ctx[-2]={fmt(ev.ip)} want {fmt(want.ip)}"
    return None


@run_invariant("I-RETVAL-SEEN")
def retval_seen(case: Case, exp: Expected, obs: Observation) -> str | None:
    """fmod_ret programs see ctx[slots] == 0 (the slot is cleared first) and fexit programs see the
    original's a0, or the short-circuiting fmod_ret program's a0 (fexit_test: 2, 5, 15, 34, 65,
    111). The slot is where both a0 and a5 are saved since 7112cd26e606."""
    n = exp.nr_slots
    for ev, want in prog_pairs(exp, obs):
        if want.retval is None:
            continue
        got = ev.ctx[n] if len(ev.ctx) > n else None
        if got != want.retval:
            return f"link {ev.link} ({case.links[ev.link].kind}) saw ret={fmt(got)} want {fmt(want.retval)}"
    return None


@run_invariant("I-ORDER")
def order(case: Case, exp: Expected, obs: Observation) -> str | None:
    """Host calls come in the order fentry programs -> fmod_ret programs (stopping at the first
    non-zero) -> the original -> fexit programs, with ``__bpf_tramp_enter(im)`` first and
    ``__bpf_tramp_exit(im)`` last, exactly once each and only with CALL_ORIG (SEMANTICS 5.7).
    The fmod_ret branch patching and the CALL_ORIG block ordering (8f3e00af8e52's move) are
    where this breaks."""
    got = [(ev.kind, ev.link) for ev in obs.events]
    want = [(ev.kind, ev.link) for ev in exp.events]
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"host call {i} was {g[0]}(link {g[1]}) want {w[0]}(link {w[1]})"
    if len(got) > len(want):
        return f"extra host call {got[len(want)][0]}(link {got[len(want)][1]}) after the expected {len(want)}"
    if len(got) < len(want) and returned(obs):
        return f"missing host call {want[len(got)][0]}(link {want[len(got)][1]})"
    for oev, wev in zip(obs.events, exp.events, strict=False):
        if wev.kind in ("tramp_enter", "tramp_exit") and oev.a0 != wev.a0:
            return f"{oev.kind} got a0={fmt(oev.a0)} want im={fmt(wev.a0)}"
    return None


@run_invariant("I-PROG-PROTOCOL")
def prog_protocol(case: Case, exp: Expected, obs: Observation) -> str | None:
    """Per program: ``enter(prog, &run_ctx)`` before and ``exit(prog, start, &run_ctx)`` after, paired
    even when enter returns 0 (then the program is skipped and start 0 is passed); start is what
    enter returned (1 = no stats, >= 2 a time); run_ctx.cookie equals the link's cookie while the
    program runs. Broken by 10541b374aa0's predecessor (a stale s1 passed as start on the skip
    path)."""
    kinds = ("prog_enter", "prog", "prog_exit")
    for i in range(len(case.links)):
        got = [ev for ev in obs.events if ev.link == i and ev.kind in kinds]
        want = [ev for ev in exp.events if ev.link == i and ev.kind in kinds]
        run_ctx: int | None = None
        for g, w in zip(got, want, strict=False):
            if g.kind != w.kind:
                return f"link {i}: {g.kind} where {w.kind} was due"
            if w.a0 is not None and g.a0 != w.a0:
                return f"link {i}: {g.kind} got prog={fmt(g.a0)} want {fmt(w.a0)}"
            if g.kind == "prog_enter":
                run_ctx = g.a1
            elif g.kind == "prog" and w.cookie is not None and g.cookie != w.cookie:
                return f"link {i}: the program saw cookie={fmt(g.cookie)} want {fmt(w.cookie)}"
            elif g.kind == "prog_exit":
                if w.a1 is not None and g.a1 != w.a1:
                    return f"link {i}: exit got start={fmt(g.a1)} want {fmt(w.a1)}"
                if run_ctx is not None and g.a2 != run_ctx:
                    return f"link {i}: exit got run_ctx={fmt(g.a2)} but enter had {fmt(run_ctx)}"
        if len(got) != len(want) and (len(got) > len(want) or returned(obs)):
            return f"link {i}: {len(got)} enter/prog/exit calls want {len(want)}"
    return None


#: This module's invariants, in DESIGN §6 order.
INVARIANTS: tuple[Invariant, ...] = (args_seen, args_passed, nargs, ip_arg, retval_seen, order, prog_protocol)
