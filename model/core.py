"""The generic trampoline core (DESIGN §4): what ``kernel/bpf/trampoline.c`` decides before any JIT.

Every implementation goes through this stage identically: the flags are derived from the links
(unless the case is in raw-flags mode), the link count is capped, and the links are grouped by
kind in link order, which is how the kernel hands them to ``arch_prepare_bpf_trampoline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from model.case import Case, Link, LinkKind

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

MAX_TRAMP_LINKS = 38  # BPF_MAX_TRAMP_LINKS
E2BIG = 7

KIND_ORDER: tuple[LinkKind, ...] = ("fentry", "fmod_ret", "fexit")


def link_weight(link: Link) -> int:
    """What one link counts toward BPF_MAX_TRAMP_LINKS: a session program is a node on the fentry
    list and one on the fexit list, and ``bpf_trampoline_add_prog`` counts it twice (7.x)."""
    return 2 if link.kind == "fsession" else 1

FlagClass = Literal["generated", "refused", "unspecified"]


def flag_names(flags: int) -> str:
    """``CALL_ORIG|SKIP_FRAME`` style rendering for reports."""
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in FLAG_NAMES)
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or "0"


def derive_flags(case: Case) -> int:
    """The flags trampoline.c derives from the links (SEMANTICS 3.1)."""
    if case.target == "struct_ops":
        flags = F_INDIRECT
        if case.function.ret_size > 0:
            flags |= F_RET_FENTRY_RET
        return flags
    kinds = {link.kind for link in case.links}
    # a session program has a node on the fexit list: the core calls the original for it
    flags = F_CALL_ORIG | F_SKIP_FRAME if kinds & {"fexit", "fmod_ret", "fsession"} else F_RESTORE_REGS
    if any(link.wants_ip for link in case.links):
        flags |= F_IP_ARG
    return flags


def effective_flags(case: Case) -> int:
    """The flags the JIT receives: derived, or the raw ones in raw-flags mode."""
    return derive_flags(case) if case.flags is None else case.flags


def classify_flags(case: Case) -> FlagClass:
    """Whether the JIT's flags are ones the core generates, must be refused, or are unspecified.

    Generated: the derived set, optionally with TAIL_CALL_CTX (set for tail-call reachable
    targets), or SHARE_IPMODIFY (with ORIG_STACK|SKIP_FRAME when CALL_ORIG) which riscv refuses.
    """
    flags = effective_flags(case)
    base = derive_flags(case)
    if flags & (F_ORIG_STACK | F_SHARE_IPMODIFY):
        return "refused"
    if case.target == "struct_ops":
        return "generated" if flags == base else "unspecified"
    if flags in (base, base | F_TAIL_CALL_CTX):
        return "generated"
    return "unspecified"


@dataclass(frozen=True)
class CoreResult:
    """What the core hands the JIT: grouped links (fentry, fmod_ret, fexit) and the flags.

    ``order`` maps each grouped position back to the index in ``case.links``. With session
    programs the fentry, fsession and fexit links keep their link order (fmod_ret last), so that
    both phases (fentry + fsession, fexit + fsession) are in link order, as on the kernel's lists.
    """

    flags: int
    grouped: tuple[Link, ...]
    order: tuple[int, ...]


@dataclass(frozen=True)
class CoreRefusal:
    errno: int
    reason: str


def core_stage(case: Case) -> CoreResult | CoreRefusal:
    """Apply the core's checks and grouping. A JIT is only consulted on a CoreResult."""
    weight = sum(link_weight(link) for link in case.links)
    if weight > MAX_TRAMP_LINKS:
        what = f"{len(case.links)} links" if weight == len(case.links) else f"{len(case.links)} links weighing {weight}"
        return CoreRefusal(E2BIG, f"{what} > BPF_MAX_TRAMP_LINKS ({MAX_TRAMP_LINKS})")
    order: list[int] = []
    if any(link.kind == "fsession" for link in case.links):
        order.extend(i for i, link in enumerate(case.links) if link.kind != "fmod_ret")
        order.extend(i for i, link in enumerate(case.links) if link.kind == "fmod_ret")
    else:
        for kind in KIND_ORDER:
            order.extend(i for i, link in enumerate(case.links) if link.kind == kind)
    return CoreResult(
        flags=effective_flags(case),
        grouped=tuple(case.links[i] for i in order),
        order=tuple(order),
    )
