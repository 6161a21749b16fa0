"""The named invariants of DESIGN §6: each judges one property of a run against ``expect()``.

Every invariant is an ``Invariant`` object with a stable ``name``, a docstring paragraph (what,
why, which kernel bug broke it, SEMANTICS §4), and ``check(case, caps, expected, observed) ->
Violation | None``. Conventions shared by all of them:

* ``Invalid`` and ``Unspecified`` expectations are never judged (the oracle asks ``expect`` with
  ``strict_flags=True`` when the user wants unspecified flags judged);
* refusal invariants (I-REJECT, I-REACH) judge the refusal itself; every *run* invariant returns
  None when the implementation refused (there is no run to judge) or the model expects a refusal;
* *final-state* checks (registers, counts that can only be short because the run stopped) are
  made only when the run returned to the parent; excesses (a body run twice, a re-entered
  trampoline) are reported even from a run that then faulted;
* trap kinds in ``BUDGET_TRAPS`` mean "stopped by the instruction budget" (I-TERMINATES); any other
  trap is a fault (I-NO-FAULT).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from model.caps import Capabilities
from model.case import MASK64, Case
from model.contract import COOKIE_INDEX_SHIFT, E2BIG, EFAULT, EINVAL, ERANGE, IS_RETURN_SHIFT, PARENT_RET_OFFSET, PLANTED
from model.expectation import TRAMPOLINE_EVENT_KINDS, Expectation, Expected, ExpectedEvent, Invalid, Refusal, Unspecified
from model.observation import Event, Observation

#: Trap kinds that mean the run hit its instruction budget rather than faulting.
BUDGET_TRAPS: frozenset[str] = frozenset({"budget", "timeout", "step_limit"})

#: Poke mechanisms that compare the old bytes first, and the errno they answer a mismatch with
#: (DESIGN §3). ``ftrace_make_call``/``ftrace_make_nop`` do not verify.
VERIFYING_POKES: dict[str, int] = {"bpf_arch_text_poke": EFAULT, "ftrace_modify_call": EINVAL}

#: PokeCheck.op prefixes with a defined outcome: a wrong old kind/bytes must be refused by a
#: verifying mechanism, an out-of-reach target must give -ERANGE.
WRONG_OLD_PREFIX = "wrong_old"
OUT_OF_REACH_MARK = "out_of_reach"


@dataclass(frozen=True)
class Violation:
    """One broken invariant, one line: ``I-RETURN-VALUE: parent got a0=0x3 want 0x2``."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


CheckFn = Callable[[Case, Capabilities, Expectation, Observation], "str | None"]


@dataclass(frozen=True)
class Invariant:
    """A named invariant. ``doc`` is the paragraph docs/invariants.md explains it with."""

    name: str
    doc: str
    fn: CheckFn

    def check(self, case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> Violation | None:
        msg = self.fn(case, caps, expected, observed)
        return None if msg is None else Violation(self.name, msg)

    @property
    def summary(self) -> str:
        """The first sentence of the docstring."""
        return self.doc.split(". ")[0].rstrip(".") + "."


_REGISTRY: list[Invariant] = []


def _invariant(name: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        doc = " ".join((fn.__doc__ or "").split())
        _REGISTRY.append(Invariant(name, doc, fn))
        return fn

    return register


def _ran(expected: Expectation, observed: Observation) -> Expected | None:
    """The expectation when there is a run to judge, else None."""
    if isinstance(expected, Expected) and observed.refused is None:
        return expected
    return None


def _returned(observed: Observation) -> bool:
    return observed.trap is None and observed.return_pc is not None and observed.final is not None


#: Bytes on either side of the parent's return address that belong to the parent stub (its call,
#: at most a ``li`` of 8 instructions and a ``jalr``, then the return sentinel).
PARENT_STUB_REACH = 0x40


def _in_parent(case: Case, pc: int) -> bool:
    """``pc`` lies in the parent stub around its return address."""
    ret = case.layout.parent + PARENT_RET_OFFSET
    return 0 <= (pc - ret + PARENT_STUB_REACH) & MASK64 < 2 * PARENT_STUB_REACH


def _h(value: int | None) -> str:
    return "none" if value is None else f"{value & MASK64:#x}"


def _hs(values: tuple[int, ...]) -> str:
    """``[0x1, 0x2]`` (not a list of quoted strings)."""
    return "[" + ", ".join(_h(v) for v in values) + "]"


def _first_diff(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"[{i}]={_h(g)} want {_h(w)}"
    return f"{len(got)} words want {len(want)}"


def _name(ev: Event) -> str:
    return ev.kind if ev.link < 0 else f"{ev.kind}(link {ev.link})"


def _prog_pairs(exp: Expected, obs: Observation) -> list[tuple[Event, ExpectedEvent]]:
    """Each observed ``prog`` event with the expected one it answers: the n-th run of a link with
    the link's n-th expected run (a session program runs twice, once per phase)."""
    seen: dict[int, int] = {}
    out: list[tuple[Event, ExpectedEvent]] = []
    for ev in obs.events:
        if ev.kind != "prog":
            continue
        nth = seen.get(ev.link, 0)
        seen[ev.link] = nth + 1
        want = exp.prog_event(ev.link, nth)
        if want is not None:
            out.append((ev, want))
    return out


# ---------------------------------------------------------------------------------------------
# control flow and results


@_invariant("I-RETURN-TARGET")
def _return_target(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Control comes back exactly once to the parent's return address: via t0 into the body and then
    the body's own return (RESTORE_REGS), via ra straight to the parent (SKIP_FRAME), via ra for a
    directly called struct_ops trampoline. A return to any address taken from a stack slot the
    trampoline did not write itself is the bug of 25ad10658dc1 (the pre-6.6 trampoline on an
    8-byte t0 sled loaded the parent ra from [sp-8], which the new sled never writes — the seed
    bug), and 1732ebc4a261 (struct_ops returning through the caller's t0). The run stops only at
    the parent's return address, so a return to another address in the parent stub shows as a trap
    there, reported here as well as by I-NO-FAULT."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    if obs.parent_ret and obs.parent_ret != exp.parent_ret:
        return (f"the scenario's parent returns to {_h(obs.parent_ret)} but the model expects {_h(exp.parent_ret)} "
                f"(semantics.PARENT_RET_OFFSET)")
    if obs.return_pc is None:
        if obs.trap is None and not (obs.budget and obs.steps >= obs.budget):
            return "the run never returned to the parent"
        if obs.trap is not None and obs.trap.pc != exp.parent_ret and _in_parent(case, obs.trap.pc):
            # the parent stub holds nothing but its call and the return sentinel: control that
            # stops anywhere else in it came back to the wrong address
            return f"returned into the parent at {_h(obs.trap.pc)} want {_h(exp.parent_ret)} ({obs.trap.kind} there)"
        return None
    if obs.return_pc != exp.parent_ret:
        return f"returned to {_h(obs.return_pc)} want the parent at {_h(exp.parent_ret)}"
    return None


@_invariant("I-RETURN-VALUE")
def _return_value(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The parent receives a0 (and, for BPF-program targets whose BPF callers read R0, a5) as the
    model says: the body's result on the RESTORE_REGS path; the saved retval slots with CALL_ORIG
    (the original's a0/a5, or the short-circuiting fmod_ret program's a0 and R0); for struct_ops
    the fentry program's R0 extended per BTF. Broken by 2f1b0d3d7331 (a0 = raw R0 instead of
    sext.w), 7112cd26e606 (only one of a0/a5 saved) and fd2e08128944 (struct_ops returns
    truncated by sext.w instead of the BTF size)."""
    exp = _ran(expected, obs)
    if exp is None or not _returned(obs):
        return None
    a0, a5 = obs.final_reg("a0"), obs.final_reg("a5")
    if exp.a0 is not None and a0 != exp.a0:
        return f"parent got a0={_h(a0)} want {_h(exp.a0)}"
    if exp.a5 is not None and a5 != exp.a5:
        return f"parent got a5={_h(a5)} want {_h(exp.a5)}"
    return None


@_invariant("I-BODY-RUNS")
def _body_runs(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The traced body runs exactly once (fentry-only, or CALL_ORIG without a non-zero fmod_ret) or
    not at all (a non-zero fmod_ret, struct_ops), and its store side effect happens exactly as
    often. Broken by 25ad10658dc1's predecessor on t0 sleds (fentry-only returned to the parent
    and skipped the body), and by CALL_ORIG without SKIP_FRAME after 8f3e00af8e52 (body twice);
    the modify_return selftest checks the side-effect count."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    n = obs.body_runs
    if n > exp.body_runs or (n < exp.body_runs and _returned(obs)):
        return f"body ran {n} times want {exp.body_runs}"
    if exp.store is not None or case.function.body.store is not None:
        addr = case.function.values[case.function.body.store.slot] if case.function.body.store else 0
        stores = [w for w in obs.writes if w.addr == addr and w.size == 8]
        want = exp.body_runs
        if len(stores) > want or (len(stores) < want and _returned(obs)):
            return f"the body's store to {_h(addr)} happened {len(stores)} times want {want}"
        if exp.store is not None and stores and stores[0].value != exp.store[1]:
            return f"the body's store wrote {_h(stores[0].value)} want {_h(exp.store[1])}"
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
        if len(got) > len(want_values) or (len(got) < len(want_values) and _returned(obs)):
            return f"the body's {place[1]}-byte store to {_h(place[0])} happened {len(got)} times want {len(want_values)}"
        for g, w in zip(got, want_values, strict=False):
            if g != w:
                return f"the body's {place[1]}-byte store to {_h(place[0])} wrote {_h(g)} want {_h(w)}"
    return None


@_invariant("I-NO-RECURSION")
def _no_recursion(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The trampoline is never re-entered from itself: calling the original at the patched sled
    (func+0) instead of the body enters the trampoline again, deeper on the stack, without end.
    Detected as a repeated trampoline host call made at a lower sp than its first occurrence.
    Introduced by 47c9214dcbea (orig_call += 8 only with ORIG_STACK, which riscv refuses), fixed
    by 8f3e00af8e52 ("Kernel stack overflow")."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    first: dict[tuple[str, int], Event] = {}
    for ev in obs.events:
        if ev.kind not in TRAMPOLINE_EVENT_KINDS:
            continue
        key = (ev.kind, ev.link)
        seen = first.get(key)
        if seen is None:
            first[key] = ev
        elif ev.sp < seen.sp:
            return f"trampoline re-entered: {_name(ev)} again at sp={_h(ev.sp)} below sp={_h(seen.sp)}"
    return None


# ---------------------------------------------------------------------------------------------
# what the programs and the body see


@_invariant("I-ARGS-SEEN")
def _args_seen(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Every program sees ctx[i] equal to the i-th 8-byte argument slot: a0..a7, then the caller's
    stack words at the entry sp. Broken before 6801b0aef79d for more than 8 slots (refused then;
    copied from FP+16.. since), and latent for struct_ops with more than 8 slots (one frame, but
    the copy still reads FP+16..: SEMANTICS 3.3)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev, want in _prog_pairs(exp, obs):
        if want.ctx is None:
            continue
        got = tuple(ev.ctx[: exp.nr_slots])
        if got != want.ctx:
            return f"link {ev.link} saw ctx{_first_diff(got, want.ctx)}"
    return None


@_invariant("I-ARGS-PASSED")
def _args_passed(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The body receives the caller's arguments unchanged: a0..a7 for the first eight slots and the
    stack words at its sp for the rest, even after programs clobbered every caller-saved register.
    Broken by the stack-argument copy of 6801b0aef79d if offsets are wrong, and by any
    RESTORE_REGS/restore_args slip; SEMANTICS 5.5."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    values = case.function.values
    nreg = min(len(values), 8)
    for k, entry in enumerate(obs.body_entries):
        regs = tuple(entry.regs[:nreg])
        if regs != values[:nreg]:
            return f"body entry {k} got a{_first_diff(regs, values[:nreg])}"
        stack = tuple(entry.stack[: len(values) - nreg])
        if stack != values[nreg:]:
            return f"body entry {k} got stack arg{_first_diff(stack, values[nreg:])}"
    return None


@_invariant("I-NARGS")
def _nargs(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """ctx[-1] (bpf_get_func_arg_cnt) equals the number of 8-byte argument slots, a 16-byte struct
    counting two (tracing_struct: nregs 4 for ({2,3}, 1, 4)). Tied to the slot counting of
    6801b0aef79d. From 7.x ctx[-1] is the ``func_meta`` word and the count is its low 8 bits
    (``& 0xFF``, as the helpers read it); the other bits are I-SESSION-COOKIE's and I-IS-RETURN's,
    and any bit above the cookie index but below IS_RETURN must be clear."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev, want in _prog_pairs(exp, obs):
        if want.nregs is None or ev.nregs is None:
            if want.nregs is not None:
                return f"link {ev.link}: ctx[-1] unreadable, want {want.nregs}"
            continue
        if not exp.func_meta:
            if ev.nregs != want.nregs:
                return f"link {ev.link} saw ctx[-1]={ev.nregs} want {want.nregs}"
            continue
        if ev.nregs & 0xFF != want.nregs:
            return f"link {ev.link} saw func_meta={_h(ev.nregs)}: {ev.nregs & 0xFF} slots want {want.nregs}"
        stray = ev.nregs & ~((1 << IS_RETURN_SHIFT) | (0xFF << COOKIE_INDEX_SHIFT) | 0xFF) & MASK64
        if stray:
            return f"link {ev.link} saw func_meta={_h(ev.nregs)}: stray bits {_h(stray)}"
    return None


@_invariant("I-IP-ARG")
def _ip_arg(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """With IP_ARG, ctx[-2] (bpf_get_func_ip) is the traced function's symbol address — not the
    patch site, not func+8 (get_func_ip_test). The ``li t1, func_addr`` is variable-length, so a
    sizing/emit disagreement on it is the 9f1e16fb1fc9 class of bug."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev, want in _prog_pairs(exp, obs):
        if want.ip is not None and ev.ip != want.ip:
            return f"link {ev.link} saw ctx[-2]={_h(ev.ip)} want {_h(want.ip)}"
    return None


@_invariant("I-RETVAL-SEEN")
def _retval_seen(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """fmod_ret programs see ctx[slots] == 0 (the slot is cleared first) and fexit programs see the
    original's a0, or the short-circuiting fmod_ret program's a0 (fexit_test: 2, 5, 15, 34, 65,
    111). The slot is where both a0 and a5 are saved since 7112cd26e606."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    n = exp.nr_slots
    for ev, want in _prog_pairs(exp, obs):
        if want.retval is None:
            continue
        got = ev.ctx[n] if len(ev.ctx) > n else None
        if got != want.retval:
            return f"link {ev.link} ({case.links[ev.link].kind}) saw ret={_h(got)} want {_h(want.retval)}"
    return None


@_invariant("I-ORDER")
def _order(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Host calls come in the order fentry programs -> fmod_ret programs (stopping at the first
    non-zero) -> the original -> fexit programs, with ``__bpf_tramp_enter(im)`` first and
    ``__bpf_tramp_exit(im)`` last, exactly once each and only with CALL_ORIG (SEMANTICS 5.7).
    The fmod_ret branch patching and the CALL_ORIG block ordering (8f3e00af8e52's move) are
    where this breaks."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    got = [(ev.kind, ev.link) for ev in obs.events]
    want = [(ev.kind, ev.link) for ev in exp.events]
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"host call {i} was {g[0]}(link {g[1]}) want {w[0]}(link {w[1]})"
    if len(got) > len(want):
        return f"extra host call {got[len(want)][0]}(link {got[len(want)][1]}) after the expected {len(want)}"
    if len(got) < len(want) and _returned(obs):
        return f"missing host call {want[len(got)][0]}(link {want[len(got)][1]})"
    for oev, wev in zip(obs.events, exp.events, strict=False):
        if wev.kind in ("tramp_enter", "tramp_exit") and oev.a0 != wev.a0:
            return f"{oev.kind} got a0={_h(oev.a0)} want im={_h(wev.a0)}"
    return None


@_invariant("I-PROG-PROTOCOL")
def _prog_protocol(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Per program: ``enter(prog, &run_ctx)`` before and ``exit(prog, start, &run_ctx)`` after, paired
    even when enter returns 0 (then the program is skipped and start 0 is passed); start is what
    enter returned (1 = no stats, >= 2 a time); run_ctx.cookie equals the link's cookie while the
    program runs. Broken by 10541b374aa0's predecessor (a stale s1 passed as start on the skip
    path)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    kinds = ("prog_enter", "prog", "prog_exit")
    for i in range(len(case.links)):
        got = [ev for ev in obs.events if ev.link == i and ev.kind in kinds]
        want = [ev for ev in exp.events if ev.link == i and ev.kind in kinds]
        run_ctx: int | None = None
        for g, w in zip(got, want, strict=False):
            if g.kind != w.kind:
                return f"link {i}: {g.kind} where {w.kind} was due"
            if w.a0 is not None and g.a0 != w.a0:
                return f"link {i}: {g.kind} got prog={_h(g.a0)} want {_h(w.a0)}"
            if g.kind == "prog_enter":
                run_ctx = g.a1
            elif g.kind == "prog" and w.cookie is not None and g.cookie != w.cookie:
                return f"link {i}: the program saw cookie={_h(g.cookie)} want {_h(w.cookie)}"
            elif g.kind == "prog_exit":
                if w.a1 is not None and g.a1 != w.a1:
                    return f"link {i}: exit got start={_h(g.a1)} want {_h(w.a1)}"
                if run_ctx is not None and g.a2 != run_ctx:
                    return f"link {i}: exit got run_ctx={_h(g.a2)} but enter had {_h(run_ctx)}"
        if len(got) != len(want) and (len(got) > len(want) or _returned(obs)):
            return f"link {i}: {len(got)} enter/prog/exit calls want {len(want)}"
    return None


# ---------------------------------------------------------------------------------------------
# machine state


@_invariant("I-CALLEE-SAVED")
def _callee_saved(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """At the return to the parent s0-s11, gp and tp hold exactly what the parent planted
    (``semantics.PLANTED``): the trampoline saves and restores s1 (the start time) and fp, and
    nothing else may change. Broken when the original is entered past its prologue (the 16-byte
    skip on an 8-byte sled, fixed by 25ad10658dc1: the body's ``sd s0`` is skipped but its
    ``ld s0`` runs)."""
    exp = _ran(expected, obs)
    if exp is None or not _returned(obs):
        return None
    for reg, want in PLANTED.items():
        got = obs.final_reg(reg)
        if got != want:
            return f"{reg}={_h(got)} at the return, planted {_h(want)}"
    return None


@_invariant("I-SP")
def _sp(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The stack is balanced — sp at the return equals the sp of the parent's call, and the body on
    the RESTORE_REGS path is entered with that same sp — and sp is 16-byte aligned at every call
    made. Broken by 1732ebc4a261's predecessor (struct_ops given the two-frame epilogue) and by
    skipping the body's prologue (25ad10658dc1)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev in obs.events:
        if ev.sp % 16:
            return f"sp={_h(ev.sp)} not 16-byte aligned at {_name(ev)}"
    if exp.restore_regs and not exp.call_orig:
        for entry in obs.body_entries:
            if entry.sp != obs.entry_sp:
                return f"body entered with sp={_h(entry.sp)} want the parent's {_h(obs.entry_sp)}"
    if _returned(obs) and obs.final_reg("sp") != obs.entry_sp:
        return f"sp={_h(obs.final_reg('sp'))} at the return want {_h(obs.entry_sp)}"
    return None


@_invariant("I-PARENT-RA")
def _parent_ra(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The parent's return address survives every redirect: ra equals it when control reaches the
    parent, and the body entered on the RESTORE_REGS path holds it in ra. Broken by 6724a76cff85's
    era change (a 16-byte sled's parent ra lost by a redirect not returning to ip+12) and by the
    pre-25ad10658dc1 trampoline on t0 sleds (parent ra from an unwritten [sp-8])."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    if exp.restore_regs and not exp.call_orig:
        for entry in obs.body_entries:
            if entry.ra != exp.parent_ret:
                return f"body entered with ra={_h(entry.ra)} want the parent's {_h(exp.parent_ret)}"
    if _returned(obs) and obs.final_reg("ra") != exp.parent_ret:
        return f"ra={_h(obs.final_reg('ra'))} at the return want {_h(exp.parent_ret)}"
    return None


@_invariant("I-NO-FAULT")
def _no_fault(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The run raises no fault: no fetch from outside code, no misaligned or unmapped access, no
    illegal instruction. Broken by 1732ebc4a261's predecessor (struct_ops crash with epc = t0) and
    9f1e16fb1fc9's (an image overflowing its allocation)."""
    exp = _ran(expected, obs)
    if exp is None or obs.trap is None or obs.trap.kind in BUDGET_TRAPS:
        return None
    where = f" addr={_h(obs.trap.addr)}" if obs.trap.addr is not None else ""
    detail = f" ({obs.trap.detail})" if obs.trap.detail else ""
    return f"{obs.trap.kind} at pc={_h(obs.trap.pc)}{where}{detail}"


@_invariant("I-TERMINATES")
def _terminates(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The run reaches the parent within the instruction budget. Infinite recursion through the
    sled (47c9214dcbea) or a loop through a stale branch ends here when it does not fault first."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    if obs.trap is not None and obs.trap.kind in BUDGET_TRAPS:
        return f"stopped by the {obs.trap.kind} after {obs.steps} steps at pc={_h(obs.trap.pc)}"
    if obs.budget and obs.steps >= obs.budget and obs.return_pc is None:
        return f"used the whole budget of {obs.budget} steps"
    return None


@_invariant("I-STACK-BOUNDS")
def _stack_bounds(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Between the parent's call and its return nothing is written at or above the entry sp (the
    caller's frame, its outgoing stack arguments, the canaries) nor below the stack region, and
    the data region receives only the body's own store. Broken by entering the body past its
    prologue (25ad10658dc1: the body's frame lands in the caller's) and by wrong stack-argument
    offsets (6801b0aef79d)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
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
        return f"{w.size}-byte write to {_h(w.addr)} from pc={_h(w.pc)} outside [{_h(lo)}, entry sp {_h(hi)})"
    return None


@_invariant("I-UNWIND")
def _unwind(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """At every host call the trampoline makes, the fp chain reads trampoline -> traced function ->
    parent: [fp-8] is the return into the traced function (func + sled entry bytes; ip+12 for the
    16-byte detour), the next level is the parent's return; a directly called struct_ops
    trampoline shows the parent's return only. 25ad10658dc1 v2 added the 16-byte parent frame
    ("otherwise we will miss one layer when unwinding"); before it the layout could not be walked."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    n = len(exp.frames)
    for ev in obs.events:
        if ev.kind not in TRAMPOLINE_EVENT_KINDS:
            continue
        got = tuple(ev.frames[:n])
        if got != exp.frames:
            return f"at {_name(ev)} the unwinder saw {_hs(got)} want {_hs(exp.frames)}"
    return None


# ---------------------------------------------------------------------------------------------
# JIT, patching and refusals


@_invariant("I-SIZE")
def _size(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The emitted trampoline is never longer than the size pass said. The size pass has no image
    address, so every address-dependent ``li`` must be sized at its longest; 9f1e16fb1fc9 fixed a
    sizing pass that used another ``im`` than the emit pass and overflowed the image."""
    if not isinstance(expected, (Expected, Refusal)):
        return None
    if obs.sized_len is not None and obs.emitted_len is not None and obs.emitted_len > obs.sized_len:
        return f"emitted {obs.emitted_len} bytes but sized {obs.sized_len}"
    return None


@_invariant("I-POKE")
def _poke(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Every text poke behaves per its mechanism (DESIGN §3): a verifying mechanism refuses a wrong
    old sequence (bpf_arch_text_poke -EFAULT, ftrace_modify_call -EINVAL) and leaves the site
    alone; every accepted poke leaves exactly the reference bytes, so patch/unpatch round-trips to
    the post-init sled byte for byte. The encodings changed in 25ad10658dc1 (16-byte ra detour ->
    8-byte t0 call) and the old/new kinds were separated by ae4a3160d19c."""
    if not isinstance(expected, Expected):
        return None
    for p in obs.pokes:
        if p.op.startswith(WRONG_OLD_PREFIX) and p.mechanism in VERIFYING_POKES:
            want = VERIFYING_POKES[p.mechanism]
            if p.rc != want:
                return f"{p.op} via {p.mechanism} returned {p.rc} want -{want}"
        elif p.rc not in (0, ERANGE) and OUT_OF_REACH_MARK not in p.op:
            return f"{p.op} via {p.mechanism} failed with {p.rc}"
        if p.site != p.reference:
            return f"{p.op} via {p.mechanism} left {p.site.hex()} want {p.reference.hex()}"
    return None


@_invariant("I-REACH")
def _reach(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Calls the JIT emits and bpf_arch_text_poke accept targets only within auipc+jalr reach,
    [-2^31-2^11, 2^31-2^11) from the pc, and refuse the rest with -ERANGE — never a silently
    truncated offset, never a spurious -ERANGE for a target in reach (SEMANTICS 2.3; the +0x800
    rounding of bit 11 is where off-by-one splits hide). ftrace's own patch does not check reach,
    so out-of-reach ftrace layouts are invalid cases rather than judged."""
    if isinstance(expected, Refusal):
        if expected.errno == ERANGE and obs.refused != ERANGE:
            got = "accepted it" if obs.refused is None else f"refused with {obs.refused}"
            return f"{expected.reason}: {got}, want -ERANGE"
        return None
    if not isinstance(expected, Expected):
        return None
    if obs.refused == ERANGE and ERANGE not in expected.allowed_refusals:
        return f"refused -ERANGE ({obs.refused_reason or 'no reason'}) though every call is in reach"
    for p in obs.pokes:
        if OUT_OF_REACH_MARK in p.op and p.rc != ERANGE:
            return f"{p.op} via {p.mechanism} returned {p.rc} want -ERANGE"
        if OUT_OF_REACH_MARK not in p.op and p.rc == ERANGE and ERANGE not in expected.allowed_refusals:
            return f"{p.op} via {p.mechanism} gave -ERANGE for a target in reach"
    return None


@_invariant("I-SLED-CONSISTENT")
def _sled_consistent(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The sled, the patch size and the trampoline's skip agree: the body is only ever entered at
    func + the sled's entry bytes (8 for the t0 schemes, 16 for the ra detour), the address the
    scenario laid the body at. 25ad10658dc1 fixed a 16-byte skip against an 8-byte sled (the seed
    bug: the original entered past its prologue); 6724a76cff85 shrank the sled."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    if obs.body_addr and obs.body_addr != exp.body_addr:
        return f"the scenario laid the body at {_h(obs.body_addr)} but the sled puts it at {_h(exp.body_addr)}"
    for k, entry in enumerate(obs.body_entries):
        if entry.pc != exp.body_addr:
            return f"body entry {k} at pc={_h(entry.pc)} want {_h(exp.body_addr)} (func+{exp.body_addr - case.layout.func})"
    for pc in obs.foreign_entries:
        return (f"control entered the function at pc={_h(pc)} (func{pc - case.layout.func:+d}); "
                f"only the body at {_h(exp.body_addr)} (func+{exp.body_addr - case.layout.func}) may be entered")
    return None


@_invariant("I-TORN")
def _torn(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Every state a task can execute while a patch is in flight (between the patcher's word writes,
    at every interruption point its concurrency model allows) lands where a consistent old or new
    sled would. A two-word patch without stop_machine under preemption can pair an old auipc with
    a new jalr: the bug 8547649981e6 closed by making FUNCTION_TRACER depend on !PREEMPTION.
    Judged on refused requests too: ftrace patches the sled whether or not a BPF trampoline can
    attach (an era without direct calls still patches sleds to ftrace_caller)."""
    if isinstance(expected, (Invalid, Unspecified)):
        return None
    for t in obs.torn:
        if t.reachable and t.landed not in t.allowed:
            return f"{t.description}: landed at {_h(t.landed)}, allowed {_hs(t.allowed)}"
    return None


@_invariant("I-TEARDOWN")
def _teardown(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """After the image is retired while the original runs (ip_after_call poked into a jump to
    ip_epilogue), returning from the original skips every fexit program — they may be freed — and
    still calls ``__bpf_tramp_exit(im)`` to drop the image reference (SEMANTICS 3.8). The poke
    must hit the executing RO copy (2382a405c581)."""
    exp = _ran(expected, obs)
    if exp is None or not exp.teardown:
        return None
    entered: dict[int, int] = {}
    for ev in obs.events:
        if ev.link >= 0 and case.links[ev.link].kind == "fexit":
            return f"{_name(ev)} ran after the teardown poke"
        if ev.link >= 0 and ev.kind == "prog_enter" and case.links[ev.link].kind == "fsession":
            entered[ev.link] = entered.get(ev.link, 0) + 1
            if entered[ev.link] > 1:
                return f"session program (link {ev.link}) entered its fexit run after the teardown"
    if _returned(obs) and not any(ev.kind == "tramp_exit" for ev in obs.events):
        return "__bpf_tramp_exit was not called after the teardown poke"
    return None


@_invariant("I-REJECT")
def _reject(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """Illegal requests are refused with the kernel's errno and nothing is emitted or run: -ENOTSUPP
    for ORIG_STACK/SHARE_IPMODIFY, more than 12 arguments or more slots than the JIT handles
    (8 before 6801b0aef79d), kernel functions without direct calls; -E2BIG for more than 38 links
    or an image larger than a page (9f1e16fb1fc9 added the overflow WARN/-E2BIG). Legal requests
    are not refused. (-ERANGE is I-REACH's.)"""
    if isinstance(expected, Refusal):
        if expected.errno == ERANGE:
            return None
        if obs.refused != expected.errno:
            got = "accepted" if obs.refused is None else f"refused with {obs.refused}"
            return f"{got}, want -{expected.errno} ({expected.reason})"
        if obs.events or obs.body_entries:
            return f"refused with -{obs.refused} but ran {len(obs.events)} host calls"
        return None
    if not isinstance(expected, Expected):
        return None
    page = caps.page_size
    if obs.refused is None:
        if obs.sized_len is not None and obs.sized_len > page:
            return f"sized {obs.sized_len} bytes > page ({page}) but not refused with -E2BIG"
        return None
    if obs.refused == ERANGE or obs.refused in expected.allowed_refusals:
        return None
    if obs.refused == E2BIG and obs.sized_len is not None:
        if obs.sized_len > page:
            return None
        if obs.emitted_len is not None and obs.emitted_len > obs.sized_len:
            return None  # the overflow check fired: I-SIZE reports the cause
    reason = f" ({obs.refused_reason})" if obs.refused_reason else ""
    return f"refused a legal request with -{obs.refused}{reason}"


# ---------------------------------------------------------------------------------------------
# 7.x: session programs and the tail-call count


@_invariant("I-SESSION-COOKIE")
def _session_cookie(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """A session program that calls ``bpf_session_cookie()`` gets a cookie slot of its own, zeroed
    before the fentry phase, and the same slot in both phases: its fentry run reads 0 there (it
    then writes a token, ``semantics.session_token``), its fexit run reads its own token back. The
    slot is ctx[-index] with the index in bits 8-15 of ``func_meta`` (ctx[-1]); a slot shared with
    another program, with the argument/ip/meta words, or not zeroed shows as a wrong read
    (7.x ``invoke_bpf``'s ``cur_cookie``, ``bpf_fsession_cookie_cnt``)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev, want in _prog_pairs(exp, obs):
        if want.session_cookie is None:
            continue
        phase = "fexit" if want.is_return else "fentry"
        index = None if ev.nregs is None else (ev.nregs >> COOKIE_INDEX_SHIFT) & 0xFF
        if index is not None and index < 2:
            return f"link {ev.link} ({phase} run): cookie index {index} is ctx[-{index}], not a cookie slot"
        if ev.session_cookie != want.session_cookie:
            return (f"link {ev.link} ({phase} run) read its cookie at ctx[-{index}] = {_h(ev.session_cookie)} "
                    f"want {_h(want.session_cookie)}")
    return None


@_invariant("I-IS-RETURN")
def _is_return(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """A session program's ``bpf_session_is_return()`` (bit 63 of ``func_meta``, ctx[-1]) is false
    in its fentry run and true in its fexit run: the JIT stores the word with IS_RETURN set after
    the original returned and before the fexit phase (7.x)."""
    exp = _ran(expected, obs)
    if exp is None:
        return None
    for ev, want in _prog_pairs(exp, obs):
        if want.is_return is None or ev.nregs is None:
            continue
        got = bool(ev.nregs >> IS_RETURN_SHIFT & 1)
        if got != want.is_return:
            phase = "fexit" if want.is_return else "fentry"
            return f"link {ev.link} ({phase} run) saw func_meta={_h(ev.nregs)}: is_return {got} want {want.is_return}"
    return None


@_invariant("I-TAIL-CALL-COUNT")
def _tail_call_count(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
    """The trampoline of a tail-call-reachable BPF program (``BPF_TRAMP_F_TAIL_CALL_CTX``) keeps the
    tail-call count (a6) across itself: the original is entered with the count its caller passed
    (saved on entry, reloaded before the call), and the caller gets back the count the original
    left (stored after the call, restored on exit), or its own when the original did not run.
    Programs clobber a6 (a C-ABI temporary), so without this the count is lost and tail calls
    through a traced subprogram are unbounded: the class x86 fixed as its "tailcall hierarchy"
    (7.3 riscv: 7.2 reset the count in every subprogram instead)."""
    exp = _ran(expected, obs)
    if exp is None or exp.body_a6 is None:
        return None
    for k, entry in enumerate(obs.body_entries):
        if len(entry.regs) > 6 and entry.regs[6] != exp.body_a6:
            return f"body entry {k} got a6={_h(entry.regs[6])} want the caller's count {_h(exp.body_a6)}"
    if exp.a6 is not None and _returned(obs):
        a6 = obs.final_reg("a6")
        if a6 != exp.a6:
            return f"parent got a6={_h(a6)} want {_h(exp.a6)}"
    return None


ALL: tuple[Invariant, ...] = tuple(_REGISTRY)
BY_NAME: dict[str, Invariant] = {inv.name: inv for inv in ALL}

#: The names of DESIGN §6, in its order (stable).
NAMES: tuple[str, ...] = (
    "I-RETURN-TARGET", "I-RETURN-VALUE", "I-BODY-RUNS", "I-NO-RECURSION", "I-ARGS-SEEN", "I-ARGS-PASSED",
    "I-NARGS", "I-IP-ARG", "I-RETVAL-SEEN", "I-ORDER", "I-PROG-PROTOCOL", "I-CALLEE-SAVED", "I-SP",
    "I-PARENT-RA", "I-NO-FAULT", "I-TERMINATES", "I-STACK-BOUNDS", "I-UNWIND", "I-SIZE", "I-POKE",
    "I-REACH", "I-SLED-CONSISTENT", "I-TORN", "I-TEARDOWN", "I-REJECT",
    # issue 11 (7.x): after DESIGN §6's list
    "I-SESSION-COOKIE", "I-IS-RETURN", "I-TAIL-CALL-COUNT",
)
assert tuple(inv.name for inv in ALL) == NAMES, "invariants out of DESIGN §6 order"


def check_all(case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> tuple[Violation, ...]:
    """Every violation, in DESIGN §6 order. Invalid and Unspecified expectations judge nothing."""
    out = (inv.check(case, caps, expected, observed) for inv in ALL)
    return tuple(v for v in out if v is not None)


# ---------------------------------------------------------------------------------------------
# the pseudo-invariant: no run to judge, because the implementation itself raised

#: The implementation crashed on this case: its JIT, patcher or poke (an era, the kernel
#: adapter, a plugin) raised an exception while the case was sized, emitted, patched, run or
#: poked — e.g. the encoder's ``EncodingError`` on an immediate the kernel would silently
#: truncate. Judged by the oracle (``fuzz.oracle.judge``), not by ``check_all``: there is no
#: observation. Exceptions of the harness itself are not this finding; they stop the tool.
IMPL_CRASH = "I-IMPL-CRASH"


def impl_crash(exc_type: str, call: str, detail: str, where: str = "") -> Violation:
    """The I-IMPL-CRASH violation: ``EncodingError in jit.emit: <message> (at encode.py:57)``."""
    at = f" (at {where})" if where else ""
    return Violation(IMPL_CRASH, f"{exc_type} in {call}: {detail}{at}")


def crash_exception(message: str) -> str | None:
    """The exception type a violation line names (``str(violation)``, ``I-IMPL-CRASH: ValueError in
    ...``), None for any other line. Minimisation keeps it: a smaller case must crash the same way."""
    prefix = f"{IMPL_CRASH}: "
    if not message.startswith(prefix):
        return None
    head = message[len(prefix):].split(" in ", 1)[0]
    return head if head and " " not in head else None
