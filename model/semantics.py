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

The facts both sides share (flags, errnos, limits, planted values, memory roles) and the core
stage live in ``model.contract``; the returned types in ``model.expectation``.
"""

from __future__ import annotations

from sledfuzz.model.caps import STRUCT_OPS_SLED, Capabilities, SledLayout
from sledfuzz.model.case import MASK64, Case, Layout
from sledfuzz.model.contract import (
    BPF_PROG_MAX_SLOTS,
    EINVAL,
    ENOTSUPP,
    ERANGE,
    F_CALL_ORIG,
    F_TAIL_CALL_CTX,
    HOSTS_SPAN,
    PARENT_RET_OFFSET,
    STRUCT_OPS_MAX_SLOTS,
    flag_names,
)
from sledfuzz.model.core_stage import CoreRefusal, core_stage
from sledfuzz.model.expectation import Expectation, Expected, ExpectedEvent, Invalid, Refusal, Unspecified
from sledfuzz.model.expected_run import expected_run
from sledfuzz.model.flags import classify_flags, strict_problem
from sledfuzz.model.values import body_result

#: auipc+jalr reach (SEMANTICS 2.3): offsets in [REACH_LO, REACH_HI) are reachable.
REACH_LO = -(1 << 31) - (1 << 11)
REACH_HI = (1 << 31) - (1 << 11)


def parent_return(layout: Layout) -> int:
    """Where the parent's call returns (the scenario's sentinel)."""
    return (layout.parent + PARENT_RET_OFFSET) & MASK64


def _signed(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def in_reach(offset: int) -> bool:
    """Whether a pc-relative offset fits auipc+jalr (``in_auipc_jalr_range``)."""
    return REACH_LO <= offset < REACH_HI


def expect(
    case: Case, caps: Capabilities, *, strict_flags: bool = False, parent_ret: int | None = None
) -> Expectation:
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
        sled = STRUCT_OPS_SLED
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
    return expected_run(case, caps, sled, flags, pret, allowed)


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


def _strict(
    case: Case, caps: Capabilities, sled: SledLayout, flags: int, pret: int, allowed: frozenset[int]
) -> Expected | Refusal:
    problem = strict_problem(case, flags)
    if problem is not None:
        return Refusal(EINVAL, f"strict flags: {problem}")
    return expected_run(case, caps, sled, flags, pret, allowed)
