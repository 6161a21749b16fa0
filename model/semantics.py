"""The reference semantics: what one patched call MUST do (DESIGN §1-§4, SEMANTICS 3 and 5).

``expect(case, caps)`` answers, without any emulator, one of:

* ``Invalid``     — the case is outside what the implementation declares (unsupported target or
  sled, or an ftrace layout out of auipc/jalr reach: ftrace patches without a range check, so such
  a layout is not a kernel state worth judging);
* ``Refusal``     — the implementation must refuse with this errno and emit/run nothing;
* ``Unspecified`` — raw flags the kernel core never generates and the JIT does not refuse; they are
  not judged unless asked (``strict_flags``), in which case the documented strict expectation
  (``Unspecified.strict``) is returned instead;
* ``Expected``    — the ordered host calls with what each must see, how often the traced body runs
  and with which argument slots, what the parent gets back in a0/a5, where control returns, the
  unwind chain at every host call of the trampoline, and the refusals that are still acceptable.

Scenario contract (the emulator side must follow these, they are part of the model):

* the parent stub's call returns to ``parent_return(layout) = layout.parent + PARENT_RET_OFFSET``
  (``expect(..., parent_ret=X)`` overrides it, e.g. with ``Observation.parent_ret``);
* the parent stub plants exactly ``PLANTED`` in s0-s11, gp, tp before the call (I-CALLEE-SAVED);
* every host-call target the JIT may call (``__bpf_prog_enter/exit``, ``__bpf_tramp_enter/exit``,
  program code, helpers) lies in ``[layout.hosts, layout.hosts + HOSTS_SPAN)``;
* the trampoline image occupies at most one page (``caps.page_size``) at ``layout.image``;
* for a BPF-program target the parent stub calls with ``a6 = TCC_PLANTED`` (the caller's tail-call
  count) and the target's body starts with ``addi a6, zero, TCC_INIT`` (its prologue's TCC init);
* a session program that calls ``bpf_session_cookie`` reads its cookie (ctx[-index], index from
  bits 8-15 of ctx[-1]) and, in its fentry run (IS_RETURN clear), writes ``session_token(link)``
  there; the value it read is the event's ``session_cookie``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from model.caps import Capabilities, SledLayout
from model.case import MASK64, BodyStore, Case, Layout
from model.core import (
    E2BIG,
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
    CoreRefusal,
    classify_flags,
    core_stage,
    derive_flags,
    flag_names,
)
from model.observation import EventKind

# errno values (positive; the kernel returns them negated)
EFAULT = 14
EINVAL = 22
ERANGE = 34
ENOTSUPP = 524
__all__ = [
    "BPF_PROG_MAX_SLOTS",
    "COOKIE_INDEX_SHIFT",
    "E2BIG",
    "EFAULT",
    "EINVAL",
    "ENOTSUPP",
    "ERANGE",
    "HOSTS_SPAN",
    "IS_RETURN_SHIFT",
    "PARENT_RET_OFFSET",
    "PLANTED",
    "REACH_HI",
    "REACH_LO",
    "STRUCT_OPS_MAX_SLOTS",
    "TCC_INIT",
    "TCC_PLANTED",
    "TRAMPOLINE_EVENT_KINDS",
    "Expected",
    "ExpectedEvent",
    "Invalid",
    "Refusal",
    "Unspecified",
    "Verdict",
    "body_result",
    "expect",
    "in_reach",
    "parent_return",
    "prog_a0",
    "return_into",
    "session_token",
    "sext",
    "strict_problem",
    "struct_ops_a0",
    "with_parent_ret",
]

#: auipc+jalr reach (SEMANTICS 2.3): offsets in [REACH_LO, REACH_HI) are reachable.
REACH_LO = -(1 << 31) - (1 << 11)
REACH_HI = (1 << 31) - (1 << 11)

#: MAX_BPF_FUNC_REG_ARGS: a BPF program (or subprog) takes R1-R5 = a0-a4 only. A bpf_prog target
#: with more slots is not a kernel state: the body at func+8 starts with ``addi a6, zero, 33``.
BPF_PROG_MAX_SLOTS = 5

#: RV_MAX_REG_ARGS: the argument slots a struct_ops member is judged with. More would be a latent
#: JIT hazard (``store_args`` loads stack slots at the two-frame offset ``fp + 16``, but a
#: struct_ops trampoline is called directly: its caller's stack words start at ``fp + 0``), which
#: no struct_ops member of any tree reaches; such cases are Invalid (docs/invariants.md).
STRUCT_OPS_MAX_SLOTS = 8

#: The parent stub's call returns to ``layout.parent + PARENT_RET_OFFSET`` (room for planting).
PARENT_RET_OFFSET = 0x800

#: Host-call targets live in ``[layout.hosts, layout.hosts + HOSTS_SPAN)``.
HOSTS_SPAN = 0x1000

#: Values the parent stub plants in the callee-saved registers before its call; at the return to
#: the parent they must be unchanged (I-CALLEE-SAVED). Distinct, non-address 64-bit patterns.
PLANTED: dict[str, int] = {
    name: 0x5EC0_0000_0000_0000 + (i + 1) * 0x0101_0101_0101
    for i, name in enumerate(("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "gp", "tp"))
}


#: include/linux/bpf.h (7.x): ctx[-1] is ``func_meta``: the argument slot count in bits 0-7 (what
#: ``bpf_get_func_arg_cnt`` reads, ``& 0xFF``), a session program's cookie index in bits 8-15,
#: IS_RETURN in bit 63 during the fexit phase.
COOKIE_INDEX_SHIFT = 8
IS_RETURN_SHIFT = 63

#: The tail-call count the parent stub hands a BPF-program target in a6 (any value the body's own
#: init does not produce), and the body's init value (MAX_TAIL_CALL_CNT).
TCC_PLANTED = 0x7CC0_0000_0000_0011
TCC_INIT = 33


def session_token(link: int) -> int:
    """What the session program of ``link`` writes into its cookie in its fentry run."""
    return 0x5E55_1000_0000_0000 + link


def parent_return(layout: Layout) -> int:
    """Where the parent's call returns (the scenario's sentinel)."""
    return (layout.parent + PARENT_RET_OFFSET) & MASK64


def sext(value: int, size: int) -> int:
    """Sign-extend the low ``size`` bytes of ``value`` to an unsigned 64-bit pattern."""
    bits = 8 * size
    v = value & ((1 << bits) - 1)
    if v >> (bits - 1):
        v -= 1 << bits
    return v & MASK64


def _signed(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def in_reach(offset: int) -> bool:
    """Whether a pc-relative offset fits auipc+jalr (``in_auipc_jalr_range``)."""
    return REACH_LO <= offset < REACH_HI


def prog_a0(r0: int, caps: Capabilities) -> int:
    """The a0 a program must hand a C caller for its R0: sext.w(R0), the RISC-V rule that 32-bit
    values are held sign-extended (2f1b0d3d7331). This is the contract in every era: an era whose
    programs leave R0 raw in a0 (``caps.ret_convention == "raw"``, the environment the scenario
    reproduces) passes a wrong a0 on and declares 2f1b0d3d7331; the fmod_ret test is judged on
    this value too (SEMANTICS 3.7)."""
    del caps
    return sext(r0, 4)


def struct_ops_a0(r0: int, ret_size: int, ret_signed: bool, caps: Capabilities) -> int:
    """a0 a struct_ops trampoline returns for the fentry prog's R0 (SEMANTICS 3.7, step 14 of 3.4).

    ``btf`` follows fd2e08128944 as read in the 6.12 tree (``sign_extend``): 1- and 2-byte values
    are sign-extended when BTF says signed and passed through unchanged (``mv``, no zero-extension)
    otherwise; 4-byte values are always ``sext.w`` whatever the signedness; 8 bytes are ``mv``.
    This is what correct means in every era: before fd2e08128944 a0 was the slot the program
    itself stored (its own, sext.w'd, a0), which truncates a u64/pointer return — a known bug
    those eras declare, not a different contract.
    """
    del caps  # correct is per BTF in every era; eras before fd2e08128944 declare that bug
    r0 &= MASK64
    if ret_size in (1, 2):
        return sext(r0, ret_size) if ret_signed else r0
    if ret_size == 4:
        return sext(r0, 4)
    return r0


def body_result(case: Case) -> int:
    """The traced body's a0: ``k + sum(c_i * slot_i)`` mod 2^64, sext.w'd when ``ret32``; for a
    compiled function, the a0 its untraced run returned (measured, carried by the case)."""
    if case.function.compiled is not None:
        return case.function.compiled.ret & MASK64
    fn = case.function
    ret = fn.body.k + sum(c * v for c, v in zip(fn.body.coeffs, fn.values, strict=False))
    ret &= MASK64
    return sext(ret, 4) if fn.body.ret32 else ret


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Invalid:
    """Not a valid case for these capabilities: nothing is judged."""

    reason: str


@dataclass(frozen=True)
class Refusal:
    """The implementation must refuse with ``errno`` (positive) and run nothing."""

    errno: int
    reason: str


@dataclass(frozen=True)
class ExpectedEvent:
    """One host call the trampoline (or the body's helper) must make, with what it must see.

    ``None`` means "not judged". ``link`` is the index into ``case.links`` (-1 for none).
    For ``prog_enter``: a0 = prog, a1 = &run_ctx (judged as equal to prog_exit's a2), returns
    the link's ``enter``. For ``prog``: ``ctx`` the argument slots, ``nregs`` ctx[-1], ``ip``
    ctx[-2], ``retval`` ctx[slots], ``cookie`` the run_ctx cookie; returns R0. For
    ``prog_exit``: a0 = prog, a1 = start (the enter value; 0 when enter returned 0).
    A session program's run: ``is_return`` the IS_RETURN bit it must see, ``session_cookie`` what
    it must read from its cookie (0 in the fentry run, its token in the fexit run; None: no cookie).
    """

    kind: EventKind
    link: int = -1
    a0: int | None = None
    a1: int | None = None
    ctx: tuple[int, ...] | None = None
    nregs: int | None = None
    ip: int | None = None
    retval: int | None = None
    cookie: int | None = None
    returns: int | None = None
    is_return: bool | None = None
    session_cookie: int | None = None


#: Host-call kinds made from the trampoline's own frame (judged by I-UNWIND, I-SP).
TRAMPOLINE_EVENT_KINDS: frozenset[str] = frozenset({"tramp_enter", "tramp_exit", "prog_enter", "prog", "prog_exit"})


@dataclass(frozen=True)
class Expected:
    """What a correct implementation does with this case (see the module docstring).

    ``a0``/``a5`` None: not judged (a5 only for bpf_prog targets, DESIGN §6; a struct_ops slot
    the skipped fentry never wrote is stack garbage). ``a5_model`` is the modelled a5 anyway,
    for reports. ``frames`` is the prefix the fp-chain walk must give at every trampoline host
    call. ``teardown`` is True when the teardown poke takes effect (the original ran).
    ``store`` is the body's side effect (address, value) when the body runs; ``body_stores``
    are a compiled body's stores (each made once per run, ``body_runs`` times in all).
    ``func_meta``: ctx[-1] is 7.x's ``func_meta`` word (I-NARGS judges its low 8 bits).
    ``body_a6``/``a6``: the tail-call count the body must be entered with and the parent must get
    back (7.3, TAIL_CALL_CTX on a BPF-program target; None: not judged).
    """

    flags: int
    events: tuple[ExpectedEvent, ...]
    body_runs: int
    body_args: tuple[int, ...]
    body_addr: int
    a0: int | None
    a5: int | None
    parent_ret: int
    frames: tuple[int, ...]
    allowed_refusals: frozenset[int] = frozenset()
    returns_to: Literal["parent"] = "parent"
    teardown: bool = False
    store: tuple[int, int] | None = None
    body_stores: tuple[BodyStore, ...] = ()
    short_circuit: int | None = None
    nr_slots: int = 0
    call_orig: bool = False
    restore_regs: bool = False
    a5_model: int | None = None
    notes: tuple[str, ...] = field(default=())
    func_meta: bool = False
    body_a6: int | None = None
    a6: int | None = None

    def prog_event(self, link: int, nth: int = 0) -> ExpectedEvent | None:
        """The ``nth`` expected ``prog`` event of one link (a session program has two: its fentry
        and its fexit run); None when the program must be skipped."""
        for ev in self.events:
            if ev.kind == "prog" and ev.link == link:
                if nth == 0:
                    return ev
                nth -= 1
        return None


@dataclass(frozen=True)
class Unspecified:
    """Raw flags outside what the core generates and the JIT does not refuse.

    ``strict`` is the documented strict expectation (``--strict-flags``): the natural semantics
    for a well-formed combination, else ``Refusal(EINVAL)`` (docs/invariants.md lists the rules).
    """

    reason: str
    strict: Expected | Refusal


Verdict = Expected | Refusal | Unspecified | Invalid


# ---------------------------------------------------------------------------------------------
# expect()


def expect(
    case: Case, caps: Capabilities, *, strict_flags: bool = False, parent_ret: int | None = None
) -> Verdict:
    """What must happen when ``case`` runs on an implementation declaring ``caps``.

    Order of the checks follows the kernel: target/sled validity, the generic core (link count),
    the JIT's own refusals (flags, argument count, slots), reach (-ERANGE), then the flag class.
    """
    pret = parent_return(case.layout) if parent_ret is None else parent_ret & MASK64

    # -- validity ---------------------------------------------------------------------------
    if case.target not in caps.targets:
        return Invalid(f"target {case.target} not supported by {caps.name}")
    sled = caps.sled_for(case.target, case.sled)
    if sled is None:
        if case.target != "struct_ops" or caps.sleds_for("struct_ops"):
            return Invalid(f"sled {case.sled} not declared for {case.target} by {caps.name}")
        sled = SledLayout("struct_ops", 1, 0, 4, "t0")  # no sled: called directly
    layout = case.layout
    if not caps.fsession and any(link.kind == "fsession" for link in case.links):
        return Invalid(f"fsession programs cannot be attached on {caps.name} (7.x, bpf_jit_supports_fsession)")
    if case.target == "bpf_prog" and case.function.nr_slots > BPF_PROG_MAX_SLOTS:
        return Invalid(
            f"a BPF program takes at most {BPF_PROG_MAX_SLOTS} argument registers (MAX_BPF_FUNC_REG_ARGS), "
            f"got {case.function.nr_slots} slots; its body starts with the TCC init that sets a6"
        )
    unreachable = _unreachable(case)
    if unreachable is not None:
        return Invalid(unreachable)
    if case.target == "kernel_function":
        if sled.call_ops:
            off = _signed(layout.ftrace_caller - layout.func)
            if not in_reach(off):
                return Invalid(f"ftrace_caller at {off:+#x} from the sled: out of auipc reach")
        else:
            off = _signed(layout.image - (layout.func + _auipc_offset(sled)))
            if not in_reach(off):
                return Invalid(f"image at {off:+#x} from the sled: ftrace does not check reach")

    # -- nothing attached -------------------------------------------------------------------
    if not case.links and case.target != "struct_ops":
        return _unattached(case, sled, pret)

    # -- core stage (trampoline.c) -----------------------------------------------------------
    core = core_stage(case)
    if isinstance(core, CoreRefusal):
        return Refusal(core.errno, core.reason)
    flags = core.flags
    # the link count is checked (bpf_trampoline_link_prog) before register_fentry asks ftrace
    if case.target == "kernel_function" and not caps.kernel_direct_calls:
        return Refusal(ENOTSUPP, "kernel functions need ftrace direct calls (v6.8+), register_fentry refuses")

    # -- JIT refusals -------------------------------------------------------------------------
    if flags & caps.refused_flags:
        return Refusal(ENOTSUPP, f"flags {flag_names(flags & caps.refused_flags)} are not supported")
    fn = case.function
    if len(fn.args) > caps.max_args:
        return Refusal(ENOTSUPP, f"{len(fn.args)} arguments > MAX_BPF_FUNC_ARGS ({caps.max_args})")
    if fn.nr_slots > caps.max_arg_slots:
        return Refusal(ENOTSUPP, f"{fn.nr_slots} argument slots > {caps.max_arg_slots}")

    # -- reach ---------------------------------------------------------------------------------
    reach = _reach(case, caps, sled, flags)
    if isinstance(reach, Refusal):
        return reach
    allowed = frozenset({ERANGE}) if reach else frozenset()

    # -- flags class ---------------------------------------------------------------------------
    cls = classify_flags(case)
    if cls == "unspecified" or (cls == "refused" and not flags & caps.refused_flags):
        strict = _strict(case, caps, sled, flags, pret, allowed)
        if strict_flags:
            return strict
        return Unspecified(f"flags {flag_names(flags)} are never generated by the core for these links", strict)
    return _expected(case, caps, sled, flags, pret, allowed)


def _unreachable(case: Case) -> str | None:
    """Why no kernel hands the JIT this request, or None (docs/invariants.md, "Unreachable
    requests"): the verifier and the core never produce it, whatever the JIT would do."""
    if case.target == "bpf_prog" and any(link.kind == "fmod_ret" for link in case.links):
        return "fmod_ret on a BPF program: bpf_check_attach_target refuses it (can't modify return codes of BPF programs)"
    if case.target != "bpf_prog" and case.flags is not None and case.flags & F_TAIL_CALL_CTX:
        return "TAIL_CALL_CTX is set by check_attach_btf_id only for a tail-call-reachable BPF program target"
    if case.target == "struct_ops" and case.function.nr_slots > STRUCT_OPS_MAX_SLOTS:
        return (f"a struct_ops member with {case.function.nr_slots} argument slots (> {STRUCT_OPS_MAX_SLOTS}): "
                "none exists, and store_args would read its stack words at the two-frame offset")
    return None


def _unattached(case: Case, sled: SledLayout, pret: int) -> Expected:
    """No links: the core unregisters an empty trampoline (bpf_trampoline_update with nothing
    linked), so no JIT runs and nothing can be refused; the sled stays as initialised (nops, or
    v6.16's auipc + nop) and the function runs once, as if untraced."""
    fn = case.function
    store = None
    if fn.body.store is not None:
        store = (fn.values[fn.body.store.slot], fn.body.store.value & MASK64)
    a5 = fn.body.a5 & MASK64
    return Expected(
        flags=0,
        events=(ExpectedEvent("helper"),) if fn.body.calls_helper else (),
        body_runs=1,
        body_args=fn.values,
        body_addr=(case.layout.func + sled.body_offset) & MASK64,
        a0=body_result(case),
        a5=a5 if case.target == "bpf_prog" else None,
        parent_ret=pret,
        frames=(),
        store=store,
        body_stores=fn.compiled.stores if fn.compiled is not None else (),
        nr_slots=fn.nr_slots,
        a5_model=a5,
        notes=("no links: nothing attached, the function runs untraced",),
    )


def _auipc_offset(sled: SledLayout) -> int:
    """Where the sled's auipc sits relative to the symbol (ra detour: after ``sd ra,-8(sp)``)."""
    return 4 if sled.scheme == "ra_detour" else 0


def return_into(case: Case, sled: SledLayout) -> int:
    """The return address into the traced function a patched sled leaves for the trampoline.

    t0 schemes: t0 = func + entry bytes (the body). Ra detour: ra = ip+12, the ``ld ra`` before
    the body.
    """
    off = sled.entry_bytes - 4 if sled.scheme == "ra_detour" else sled.entry_bytes
    return (case.layout.func + off) & MASK64


def _reach(case: Case, caps: Capabilities, sled: SledLayout, flags: int) -> Refusal | bool:
    """-ERANGE rules: a definite refusal, or True when only some image pcs are in reach."""
    layout = case.layout
    if case.target == "bpf_prog":
        off = _signed(layout.image - (layout.func + _auipc_offset(sled)))
        if not in_reach(off):
            return Refusal(ERANGE, f"bpf_arch_text_poke: image at {off:+#x} from the site is out of reach")
    lo_pc, hi_pc = layout.image, layout.image + caps.page_size - 4
    targets: list[tuple[str, int, int]] = []
    if case.links or flags & F_CALL_ORIG:
        targets.append(("host calls", layout.hosts, layout.hosts + HOSTS_SPAN - 4))
    if flags & F_CALL_ORIG and case.target != "struct_ops":
        body = (layout.func + sled.body_offset) & MASK64
        targets.append(("the original", body, body))
    partial = False
    for what, t_lo, t_hi in targets:
        lo = _signed(t_lo - hi_pc)
        hi = _signed(t_hi - lo_pc)
        if hi < REACH_LO or lo >= REACH_HI:
            return Refusal(ERANGE, f"emit_call: {what} at {lo:+#x}..{hi:+#x} from the image is out of reach")
        if not (in_reach(lo) and in_reach(hi)):
            partial = True
    return partial


def _expected(
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


_KNOWN_BITS = F_RESTORE_REGS | F_CALL_ORIG | F_SKIP_FRAME | F_IP_ARG | F_RET_FENTRY_RET | F_TAIL_CALL_CTX | F_INDIRECT


def strict_problem(case: Case, flags: int) -> str | None:
    """Why a raw flag set is malformed under the strict rules (None: well-formed).

    Rules (docs/invariants.md): no unknown bits; struct_ops takes exactly INDIRECT plus
    RET_FENTRY_RET iff the member returns a value; an entry-attached trampoline takes exactly one
    of RESTORE_REGS and CALL_ORIG, CALL_ORIG iff SKIP_FRAME, no INDIRECT, no RET_FENTRY_RET;
    fexit/fmod_ret links need CALL_ORIG; a link asking for the func ip needs IP_ARG.
    """
    if flags & ~_KNOWN_BITS:
        return f"unknown bits {flags & ~_KNOWN_BITS:#x}"
    if case.target == "struct_ops":
        want = derive_flags(case)
        return None if flags == want else f"struct_ops takes exactly {flag_names(want)}"
    if flags & F_INDIRECT:
        return "INDIRECT on an entry-attached trampoline"
    if flags & F_RET_FENTRY_RET:
        return "RET_FENTRY_RET outside struct_ops"
    if bool(flags & F_CALL_ORIG) != bool(flags & F_SKIP_FRAME):
        return "CALL_ORIG without SKIP_FRAME runs the body twice" if flags & F_CALL_ORIG else "SKIP_FRAME without CALL_ORIG"
    if bool(flags & F_RESTORE_REGS) == bool(flags & F_CALL_ORIG):
        return "exactly one of RESTORE_REGS and CALL_ORIG is needed"
    if any(link.kind != "fentry" for link in case.links) and not flags & F_CALL_ORIG:
        return "fexit/fmod_ret links without CALL_ORIG"
    if any(link.wants_ip for link in case.links) and not flags & F_IP_ARG:
        return "a link uses bpf_get_func_ip but IP_ARG is clear"
    return None


def _strict(
    case: Case, caps: Capabilities, sled: SledLayout, flags: int, pret: int, allowed: frozenset[int]
) -> Expected | Refusal:
    problem = strict_problem(case, flags)
    if problem is not None:
        return Refusal(EINVAL, f"strict flags: {problem}")
    return _expected(case, caps, sled, flags, pret, allowed)


def with_parent_ret(expected: Expected, parent_ret: int) -> Expected:
    """The same expectation for a scenario whose parent returns elsewhere (frames follow)."""
    frames = (*expected.frames[:-1], parent_ret & MASK64)
    return replace(expected, parent_ret=parent_ret & MASK64, frames=frames)

