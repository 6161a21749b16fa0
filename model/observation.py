"""What one run of a case on an implementation produced (filled by ``emu.scenario``).

Everything the invariants judge is here, as frozen data: the host-call events with the stack and
frame state at each call, the body's entries, the registers at the return to the parent, the
guest's memory writes, how the run stopped, and the JIT's sized and emitted lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["tramp_enter", "tramp_exit", "prog_enter", "prog", "prog_exit", "helper"]

#: Registers reported at the return to the parent, in this order.
FINAL_REGS: tuple[str, ...] = (
    "a0", "a5", "ra", "sp", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "gp", "tp",
    "a6",  # the tail-call count of a BPF-program target (7.3, I-TAIL-CALL-COUNT)
)


@dataclass(frozen=True)
class Event:
    """One host call made by the trampoline (or the body's helper call).

    ``link`` is the index into ``case.links`` of the program concerned (-1 when none).
    For ``prog`` events ``ctx`` holds ctx[0..slots] (the args plus ctx[slots], the return value
    slot), ``nregs`` ctx[-1] and ``ip`` ctx[-2]. ``cookie`` is the run_ctx cookie at the call.
    ``frames`` are the return addresses found walking the fp chain ([fp-8], then [[fp-16]-8]...).
    ``session_cookie``: for a session program that uses its cookie, the word at ctx[-index]
    (index from bits 8-15 of ctx[-1]) when it was called; None when it has none or it is unreadable.
    """

    kind: EventKind
    link: int
    a0: int
    a1: int
    a2: int
    sp: int
    fp: int
    ra: int
    ctx: tuple[int, ...] = ()
    nregs: int | None = None
    ip: int | None = None
    cookie: int | None = None
    returned: int | None = None
    frames: tuple[int, ...] = ()
    session_cookie: int | None = None


@dataclass(frozen=True)
class BodyEntry:
    """Registers and stack arguments when execution reached the traced body's first insn."""

    regs: tuple[int, ...]  # a0..a7
    stack: tuple[int, ...]  # stack argument words at sp+0, sp+8, ... (slots beyond 8)
    sp: int
    ra: int
    pc: int


@dataclass(frozen=True)
class Write:
    """One guest store (address, size in bytes, value, pc of the store)."""

    addr: int
    size: int
    value: int
    pc: int


@dataclass(frozen=True)
class Trap:
    """Why a run did not return to the parent: fault class, pc, and the faulting address."""

    kind: str
    pc: int
    addr: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class PokeCheck:
    """One text-poke experiment on the patched site (I-POKE).

    ``op`` names it (e.g. ``unpatch``, ``wrong_old``, ``call->call``); ``rc`` is what the mechanism
    returned (0 or a positive errno); ``site`` the bytes afterwards; ``reference`` the bytes the
    site must hold for the op to be a byte-exact round trip (post-init sled, or the unchanged site).
    """

    op: str
    mechanism: str
    rc: int
    site: bytes
    reference: bytes


@dataclass(frozen=True)
class TornState:
    """One intermediate sled state a task may execute while a patch is in flight (I-TORN).

    ``landed`` is the pc control reached after executing the mixed sled; ``allowed`` are the
    targets a consistent old or new sled would reach.
    """

    description: str
    reachable: bool
    landed: int | None
    allowed: tuple[int, ...]


@dataclass(frozen=True)
class Observation:
    """Everything one run produced. ``refused`` is the errno when the implementation refused."""

    refused: int | None = None
    refused_reason: str = ""
    sized_len: int | None = None
    emitted_len: int | None = None
    events: tuple[Event, ...] = ()
    body_entries: tuple[BodyEntry, ...] = ()
    #: pcs where control came into the traced function from outside other than its start, its
    #: body or a call's return address (the scenario watches the whole function; I-SLED-CONSISTENT)
    foreign_entries: tuple[int, ...] = ()
    final: tuple[int, ...] | None = None  # FINAL_REGS values at the return to the parent
    return_pc: int | None = None
    trap: Trap | None = None
    writes: tuple[Write, ...] = ()
    steps: int = 0
    budget: int = 0
    entry_sp: int = 0
    canaries_ok: bool = True
    pokes: tuple[PokeCheck, ...] = ()
    torn: tuple[TornState, ...] = ()
    parent_ret: int = 0  # where the parent's call must return (the scenario's sentinel)
    body_addr: int = 0  # the traced body's first instruction (func + sled entry bytes)
    image_addr: int | None = None
    ip_after_call: int | None = None
    ip_epilogue: int | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def body_runs(self) -> int:
        return len(self.body_entries)

    def final_reg(self, name: str) -> int | None:
        if self.final is None:
            return None
        return self.final[FINAL_REGS.index(name)]
