"""Invariants on the JIT's image, the patches and the refusals: sizes, pokes, reach, the sled's
consistency, torn patch states, the teardown poke, and refusals with the kernel's errno."""

from __future__ import annotations

from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import Case
from sledfuzz.model.contract import E2BIG, EFAULT, EINVAL, ERANGE
from sledfuzz.model.expectation import Expectation, Expected, Invalid, Refusal, Unspecified
from sledfuzz.model.invariants.base import (
    Invariant,
    caps_invariant,
    event_name,
    expectation_invariant,
    fmt,
    fmt_all,
    returned,
    run_invariant,
)
from sledfuzz.model.observation import Observation

#: Poke mechanisms that compare the old bytes first, and the errno they answer a mismatch with
#: (DESIGN §3). ``ftrace_make_call``/``ftrace_make_nop`` do not verify.
VERIFYING_POKES: dict[str, int] = {"bpf_arch_text_poke": EFAULT, "ftrace_modify_call": EINVAL}

#: PokeCheck.op prefixes with a defined outcome: a wrong old kind/bytes must be refused by a
#: verifying mechanism, an out-of-reach target must give -ERANGE.
WRONG_OLD_PREFIX = "wrong_old"
OUT_OF_REACH_MARK = "out_of_reach"


@expectation_invariant("I-SIZE")
def size(case: Case, expected: Expectation, obs: Observation) -> str | None:
    """The emitted trampoline is never longer than the size pass said. The size pass has no image
    address, so every address-dependent ``li`` must be sized at its longest; 9f1e16fb1fc9 fixed a
    sizing pass that used another ``im`` than the emit pass and overflowed the image."""
    if not isinstance(expected, (Expected, Refusal)):
        return None
    if obs.sized_len is not None and obs.emitted_len is not None and obs.emitted_len > obs.sized_len:
        return f"emitted {obs.emitted_len} bytes but sized {obs.sized_len}"
    return None


@expectation_invariant("I-POKE")
def poke(case: Case, expected: Expectation, obs: Observation) -> str | None:
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


@expectation_invariant("I-REACH")
def reach(case: Case, expected: Expectation, obs: Observation) -> str | None:
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


@run_invariant("I-SLED-CONSISTENT")
def sled_consistent(case: Case, exp: Expected, obs: Observation) -> str | None:
    """The sled, the patch size and the trampoline's skip agree: the body is only ever entered at
    func + the sled's entry bytes (8 for the t0 schemes, 16 for the ra detour), the address the
    scenario laid the body at. 25ad10658dc1 fixed a 16-byte skip against an 8-byte sled (the seed
    bug: the original entered past its prologue); 6724a76cff85 shrank the sled."""
    if obs.body_addr and obs.body_addr != exp.body_addr:
        return f"the scenario laid the body at {fmt(obs.body_addr)} but the sled puts it at {fmt(exp.body_addr)}"
    for k, entry in enumerate(obs.body_entries):
        if entry.pc != exp.body_addr:
            off = exp.body_addr - case.layout.func
            return f"body entry {k} at pc={fmt(entry.pc)} want {fmt(exp.body_addr)} (func+{off})"
    for pc in obs.foreign_entries:
        return (f"control entered the function at pc={fmt(pc)} (func{pc - case.layout.func:+d}); "
                f"only the body at {fmt(exp.body_addr)} (func+{exp.body_addr - case.layout.func}) may be entered")
    return None


@expectation_invariant("I-TORN")
def torn(case: Case, expected: Expectation, obs: Observation) -> str | None:
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
            return f"{t.description}: landed at {fmt(t.landed)}, allowed {fmt_all(t.allowed)}"
    return None


@run_invariant("I-TEARDOWN")
def teardown(case: Case, exp: Expected, obs: Observation) -> str | None:
    """After the image is retired while the original runs (ip_after_call poked into a jump to
    ip_epilogue), returning from the original skips every fexit program — they may be freed — and
    still calls ``__bpf_tramp_exit(im)`` to drop the image reference (SEMANTICS 3.8). The poke
    must hit the executing RO copy (2382a405c581)."""
    if not exp.teardown:
        return None
    entered: dict[int, int] = {}
    for ev in obs.events:
        if ev.link >= 0 and case.links[ev.link].kind == "fexit":
            return f"{event_name(ev)} ran after the teardown poke"
        if ev.link >= 0 and ev.kind == "prog_enter" and case.links[ev.link].kind == "fsession":
            entered[ev.link] = entered.get(ev.link, 0) + 1
            if entered[ev.link] > 1:
                return f"session program (link {ev.link}) entered its fexit run after the teardown"
    if returned(obs) and not any(ev.kind == "tramp_exit" for ev in obs.events):
        return "__bpf_tramp_exit was not called after the teardown poke"
    return None


@caps_invariant("I-REJECT")
def reject(case: Case, caps: Capabilities, expected: Expectation, obs: Observation) -> str | None:
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


#: This module's invariants, in DESIGN §6 order.
INVARIANTS: tuple[Invariant, ...] = (size, poke, reach, sled_consistent, torn, teardown, reject)
