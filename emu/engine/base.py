"""The engine interface: what the scenario needs from an RV64 emulator, and nothing more.

An engine executes guest code in a persistent address space, turns every way a run can end into
one `StopKind` (never an uncaught emulator exception, never a silently skipped instruction), logs
the guest's stores, and lets Python stand in for callees at fixed addresses (host calls, DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

StopKind = Literal[
    "sentinel",
    "budget",
    "fetch_unmapped",
    "read_unmapped",
    "write_unmapped",
    "fetch_prot",
    "misaligned",
    "illegal_insn",
    "host_error",
]

#: RISC-V trap causes (privileged spec, ``mcause``) and the stop each is, for every engine: what
#: unicorn's interrupt hook delivers and what Spike leaves in mcause.
TRAP_CAUSE_STOP: dict[int, tuple[StopKind, str]] = {
    0: ("misaligned", "instruction address misaligned"),
    1: ("fetch_unmapped", "instruction access fault"),
    2: ("illegal_insn", "illegal instruction"),
    3: ("illegal_insn", "breakpoint (ebreak)"),
    4: ("misaligned", "load address misaligned"),
    5: ("read_unmapped", "load access fault"),
    6: ("misaligned", "store/AMO address misaligned"),
    7: ("write_unmapped", "store/AMO access fault"),
    8: ("illegal_insn", "environment call (ecall) from U-mode"),
    9: ("illegal_insn", "environment call (ecall) from S-mode"),
    11: ("illegal_insn", "environment call (ecall) from M-mode"),
    12: ("fetch_unmapped", "instruction page fault"),
    13: ("read_unmapped", "load page fault"),
    15: ("write_unmapped", "store/AMO page fault"),
}

PAGE_SIZE = 0x1000
MASK64 = (1 << 64) - 1


class EngineError(Exception):
    """The host side misused the engine (e.g. read or wrote unmapped memory from Python)."""


class HostStop(Exception):
    """Raised by a host call to end the run with stop="host_error" and detail=reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MemWrite:
    """One guest store: `value` is the stored bytes as a little-endian unsigned integer."""

    addr: int
    size: int
    value: int
    pc: int


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    `pc` is the sentinel, the next instruction (budget), the faulting instruction (faults; for
    fetch faults the unfetchable target) or the host-call address (host_error). `steps` counts
    completed instructions; a host call counts as one instruction (it stands for a callee's `ret`).
    """

    stop: StopKind
    pc: int
    fault_addr: int | None
    steps: int
    writes: tuple[MemWrite, ...]
    detail: str = ""
    #: Transfers of control across the watched region (``Engine.watch``), in order: (start, end)
    #: of the block control came from (0, 0 for the run's first block) and the pc it went to.
    crossings: tuple[tuple[int, int, int], ...] = ()


HostFn = Callable[["Engine"], "int | None"]
#: An observer: fn(engine, addr) when execution reaches addr; it never redirects control.
ObserverFn = Callable[["Engine", int], None]
#: A tracer: fn(engine, pc, size) before every instruction (``Engine.set_tracer``).
TracerFn = Callable[["Engine", int, int], None]


class Engine(Protocol):
    """A reusable RV64GC machine. Mappings and host calls persist across runs; registers and memory
    are whatever the caller last left there (the caller resets what a run may have changed)."""

    def map(self, base: int, size: int) -> None:
        """Map [base, base+size) rounded out to pages, read/write/execute; already-mapped parts are
        left as they are (idempotent)."""
        ...

    def unmap_all(self) -> None: ...

    def unmap(self, base: int, size: int) -> None:
        """Unmap [base, base+size) rounded out to pages (pages not mapped are skipped)."""
        ...

    def watch(self, span: tuple[int, int] | None) -> None:
        """Record every transfer of control into or out of [lo, hi) in ``RunResult.crossings``
        (from the next run on; None: stop recording)."""
        ...

    def reset_cpu(self) -> None:
        """Put every CPU register (x, f, CSRs) back to what a new engine starts with."""
        ...

    def write(self, addr: int, data: bytes) -> None: ...

    def read(self, addr: int, size: int) -> bytes: ...

    def read_u64(self, addr: int) -> int: ...

    def write_u64(self, addr: int, v: int) -> None: ...

    def reg(self, r: int) -> int:
        """x-register r (0..31); x0 reads 0."""
        ...

    def set_reg(self, r: int, v: int) -> None:
        """Set x-register r (0..31) to v mod 2**64; writes to x0 are ignored."""
        ...

    def get_pc(self) -> int: ...

    def regs(self, rs: Sequence[int]) -> list[int]: ...

    def set_regs(self, pairs: Sequence[tuple[int, int]]) -> None: ...

    def add_host_call(self, addr: int, fn: HostFn) -> None:
        """When execution reaches addr, run fn(engine); an int result goes to a0; continue at ra.
        fn may raise HostStop(reason) to end the run (stop="host_error")."""
        ...

    def clear_host_calls(self) -> None: ...

    def add_observer(self, addr: int, fn: ObserverFn) -> None:
        """Call fn(engine, addr) each time execution reaches addr, before that instruction runs,
        without redirecting control (replaces an earlier observer at addr; persists across runs)."""
        ...

    def remove_observer(self, addr: int) -> None: ...

    def run(
        self,
        pc: int,
        sentinel: int,
        budget: int,
        log_writes_outside: tuple[tuple[int, int], ...] | None = None,
    ) -> RunResult:
        """Execute from pc until pc == sentinel, `budget` instructions, a fault or a HostStop.
        Guest stores are logged in order except those whose address lies in one of the
        [lo, hi) ranges of `log_writes_outside` (None: log all)."""
        ...

    def set_tracer(self, fn: TracerFn | None) -> None:
        """Call fn(engine, pc, size) before every instruction from now on (None: stop); slow, for
        showing one run (``sledfuzz explain``)."""
        ...
