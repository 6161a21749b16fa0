"""The core stage: the request ``kernel/bpf/trampoline.c`` hands the arch JIT (DESIGN §4).

Part of the model/emu contract, not of what is tested: sledfuzz tests the arch code
(arch/riscv), and both the model (its expectation) and the scenario (the request it hands the
JIT under test) take the core's request from here. A core refusal is therefore never a finding
(docs/architecture.md, "The core stage is contract").
"""

from __future__ import annotations

from dataclasses import dataclass

from sledfuzz.model.case import Case, Link
from sledfuzz.model.contract import (
    E2BIG,
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SKIP_FRAME,
    KIND_ORDER,
    MAX_TRAMP_LINKS,
)


def link_weight(link: Link) -> int:
    """What one link counts toward BPF_MAX_TRAMP_LINKS: a session program is a node on the fentry
    list and one on the fexit list, and ``bpf_trampoline_add_prog`` counts it twice (7.x)."""
    return 2 if link.kind == "fsession" else 1


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
    """The core refused before any JIT was asked (e.g. -E2BIG for too many links)."""

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
