"""Capabilities: what an implementation declares about itself (DESIGN §3), as plain data.

The model judges a case against these declarations: a case outside them is not valid for the
implementation (a sled it does not support), or must be refused (more slots than it accepts).
Known bugs are part of the declaration so that an era can be judged as "violates exactly these".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sledfuzz.model.contract import MAX_BPF_FUNC_ARGS, PAGE_SIZE, RISCV_REFUSED_FLAGS

TargetKind = Literal["kernel_function", "bpf_prog", "struct_ops"]
TARGET_KINDS: tuple[TargetKind, ...] = ("kernel_function", "bpf_prog", "struct_ops")

#: How a patched sled enters the trampoline (SEMANTICS 1.2, 2.1, 2.2).
#: ``t0``: ``auipc; jalr t0`` — t0 = func+8 (return into the body), ra = parent.
#: ``ra_detour``: ``sd ra,-8(sp); auipc; jalr ra; ld ra,-8(sp)`` — ra = ip+12, parent ra at [sp-8].
#: ``direct``: no sled at all; the trampoline is called like a function (struct_ops): ra = caller.
EntryScheme = Literal["t0", "ra_detour", "direct"]

#: How a program's a0 relates to its BPF R0 (a5), and how struct_ops returns are extended.
#: ``raw``: a0 = R0 (before 2f1b0d3d7331); ``sext32``: a0 = sext.w(R0) (2f1b0d3d7331);
#: ``btf``: as sext32 for programs, struct_ops return extended per BTF size/sign (fd2e08128944).
RetConvention = Literal["raw", "sext32", "btf"]


@dataclass(frozen=True)
class SledLayout:
    """One sled layout: ``-fpatchable-function-entry=n,m`` with 2- or 4-byte nops.

    For BPF-program targets the "sled" is the JIT prologue's nops (then ``addi a6,zero,33``).
    ``n`` counts nops in total, ``m`` of them before the symbol; the entry part is ``n - m`` nops.
    """

    target: TargetKind
    n: int
    m: int
    nop_width: Literal[2, 4]
    scheme: EntryScheme
    call_ops: bool = False

    @property
    def entry_bytes(self) -> int:
        """Bytes of nops at (and after) the symbol address."""
        return (self.n - self.m) * self.nop_width

    @property
    def pre_bytes(self) -> int:
        """Bytes of nops before the symbol (the CALL_OPS literal lives there)."""
        return self.m * self.nop_width

    @property
    def body_offset(self) -> int:
        """Where the traced body starts, relative to the symbol."""
        return self.entry_bytes

    @property
    def key(self) -> str:
        """Stable short name used in case JSON (``8,4/c``: n=8, m=4, compressed nops)."""
        width = "c" if self.nop_width == 2 else "w"
        return f"{self.n},{self.m}/{width}"


#: struct_ops has no sled: the trampoline is called through a function pointer. Every
#: implementation declares (or, declaring none, is judged with) this nominal layout, so that a case
#: can name it; its body offset is meaningless.
STRUCT_OPS_SLED = SledLayout("struct_ops", 1, 0, 4, "direct")


@dataclass(frozen=True)
class KnownBug:
    """A bug an era carries on purpose (SEMANTICS 4): the fixing commit and what it breaks."""

    commit: str
    invariants: frozenset[str]
    summary: str


@dataclass(frozen=True)
class Capabilities:
    """What an implementation declares (DESIGN §3).

    ``max_arg_slots`` is 8 before 6801b0aef79d and 24 after (12 args, structs of 2 slots);
    ``refused_flags`` is the mask the JIT answers with -ENOTSUPP. ``fsession``: session programs
    can be attached (7.x); ``tail_call_ctx``: the trampoline of a tail-call-reachable BPF program
    keeps the tail-call count (a6) across itself (7.3, ``BPF_TRAMP_F_TAIL_CALL_CTX``).
    """

    name: str
    targets: frozenset[TargetKind]
    sleds: tuple[SledLayout, ...]
    max_args: int = MAX_BPF_FUNC_ARGS
    max_arg_slots: int = 24
    kernel_direct_calls: bool = True
    refused_flags: int = RISCV_REFUSED_FLAGS
    ret_convention: RetConvention = "btf"
    known_bugs: tuple[KnownBug, ...] = field(default=())
    page_size: int = PAGE_SIZE
    fsession: bool = False
    tail_call_ctx: bool = False

    def sled_for(self, target: TargetKind, key: str) -> SledLayout | None:
        """The declared layout for ``target`` with ``key``, or None if unsupported."""
        for sled in self.sleds:
            if sled.target == target and sled.key == key:
                return sled
        return None

    def sleds_for(self, target: TargetKind) -> tuple[SledLayout, ...]:
        """All declared layouts for one target kind."""
        return tuple(s for s in self.sleds if s.target == target)

    @property
    def known_invariants(self) -> frozenset[str]:
        """Every invariant some declared bug is allowed to violate."""
        out: set[str] = set()
        for bug in self.known_bugs:
            out |= bug.invariants
        return frozenset(out)
