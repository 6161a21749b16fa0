"""The model/emu contract: the kernel facts and the scenario's promises that both sides rely on.

One home for every value the model reasons with and the emulator must produce the same way: the
``BPF_TRAMP_F_*`` flags, the errno values, the kernel's limits, what the parent stub plants and
where it returns. ``model/`` and ``emu/`` both import from here; neither restates a value. Its
companion ``model.core_stage`` (the request ``kernel/bpf/trampoline.c`` hands the arch JIT) is
contract too.

Memory roles the model reasons about (the scenario lays them out so):

* the parent stub's call returns to ``layout.parent + PARENT_RET_OFFSET`` (the run's sentinel);
  before the call it plants exactly ``PLANTED`` in s0-s11, gp, tp (I-CALLEE-SAVED);
* every host-call target the JIT may call (``__bpf_prog_enter/exit``, ``__bpf_tramp_enter/exit``,
  program code, helpers) lies in ``[layout.hosts, layout.hosts + HOSTS_SPAN)``;
* the trampoline image occupies at most one page (``PAGE_SIZE``) at ``layout.image``; the stack and
  the data region are the case's (``model.case.STACK_SIZE``, ``DATA_SIZE``);
* for a BPF-program target the parent stub calls with ``a6 = TCC_PLANTED`` (the caller's tail-call
  count) and the target's body starts with ``addi a6, zero, TCC_INIT`` (its prologue's TCC init);
* a session program that calls ``bpf_session_cookie`` reads its cookie (ctx[-index], index from
  bits ``COOKIE_INDEX_SHIFT``.. of ctx[-1]) and, in its fentry run (IS_RETURN clear), writes
  ``session_token(link)`` there; the value it read is the event's ``session_cookie``.

"""

from __future__ import annotations

from typing import Literal

# ---------------------------------------------------------------------------------------------
# BPF_TRAMP_F_* (include/linux/bpf.h, SEMANTICS 3.1)

F_RESTORE_REGS = 0x1
F_CALL_ORIG = 0x2
F_SKIP_FRAME = 0x4
F_IP_ARG = 0x8
F_RET_FENTRY_RET = 0x10
F_ORIG_STACK = 0x20
F_SHARE_IPMODIFY = 0x40
F_TAIL_CALL_CTX = 0x80
F_INDIRECT = 0x100

FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (F_RESTORE_REGS, "RESTORE_REGS"),
    (F_CALL_ORIG, "CALL_ORIG"),
    (F_SKIP_FRAME, "SKIP_FRAME"),
    (F_IP_ARG, "IP_ARG"),
    (F_RET_FENTRY_RET, "RET_FENTRY_RET"),
    (F_ORIG_STACK, "ORIG_STACK"),
    (F_SHARE_IPMODIFY, "SHARE_IPMODIFY"),
    (F_TAIL_CALL_CTX, "TAIL_CALL_CTX"),
    (F_INDIRECT, "INDIRECT"),
)

#: The flags the RV64 JIT answers with -ENOTSUPP in every era (``arch_prepare_bpf_trampoline``).
RISCV_REFUSED_FLAGS = F_ORIG_STACK | F_SHARE_IPMODIFY


def flag_names(flags: int) -> str:
    """``CALL_ORIG|SKIP_FRAME`` style rendering for reports."""
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in FLAG_NAMES)
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or "0"


# ---------------------------------------------------------------------------------------------
# errno values (positive; the kernel returns them negated)

EPERM = 1  # ftrace: patch_insn_write failed
E2BIG = 7
EFAULT = 14
EINVAL = 22
EFBIG = 27  # arch_prepare_bpf_trampoline before 26ef208c209a: sized image larger than the page
ERANGE = 34
ENOTSUPP = 524

# ---------------------------------------------------------------------------------------------
# limits

#: BPF_MAX_TRAMP_LINKS: the core refuses more (weighted) links with -E2BIG before any JIT runs.
MAX_TRAMP_LINKS = 38
#: MAX_BPF_FUNC_ARGS: the JIT refuses a traced function with more arguments (-ENOTSUPP).
MAX_BPF_FUNC_ARGS = 12
#: MAX_BPF_FUNC_REG_ARGS: a BPF program (or subprog) takes R1-R5 = a0-a4 only. A bpf_prog target
#: with more slots is not a kernel state: the body at func+8 starts with ``addi a6, zero, 33``.
BPF_PROG_MAX_SLOTS = 5
#: RV_MAX_REG_ARGS: the argument slots a struct_ops member is judged with. More would be a latent
#: JIT hazard (``store_args`` loads stack slots at the two-frame offset ``fp + 16``, but a
#: struct_ops trampoline is called directly: its caller's stack words start at ``fp + 0``), which
#: no struct_ops member of any tree reaches; such cases are Invalid (docs/invariants.md).
STRUCT_OPS_MAX_SLOTS = 8


def arg_slots(size: int) -> int:
    """The 8-byte argument slots an argument of ``size`` bytes takes: round_up(size, 8) / 8 (a
    16-byte struct takes two), as btf_distill_func_proto counts them."""
    return (size + 7) // 8

#: A trampoline image is one page; a larger sized image is -E2BIG.
PAGE_SIZE = 4096

# ---------------------------------------------------------------------------------------------
# what the scenario plants and where the parent returns

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

#: The tail-call count the parent stub hands a BPF-program target in a6 (any value the body's own
#: init does not produce), and the body's init value (MAX_TAIL_CALL_CNT).
TCC_PLANTED = 0x7CC0_0000_0000_0011
TCC_INIT = 33

#: include/linux/bpf.h (7.x): ctx[-1] is ``func_meta``: the argument slot count in bits 0-7 (what
#: ``bpf_get_func_arg_cnt`` reads, ``& 0xFF``), a session program's cookie index in bits 8-15,
#: IS_RETURN in bit 63 during the fexit phase.
COOKIE_INDEX_SHIFT = 8
IS_RETURN_SHIFT = 63


def session_token(link: int) -> int:
    """What the session program of ``link`` writes into its cookie in its fentry run."""
    return 0x5E55_1000_0000_0000 + link


# ---------------------------------------------------------------------------------------------
# link kinds (the core stage over them: model.core_stage)

LinkKind = Literal["fentry", "fmod_ret", "fexit", "fsession"]
KIND_ORDER: tuple[LinkKind, ...] = ("fentry", "fmod_ret", "fexit")
