"""UnicornEngine: the default engine, one unicorn RV64GC instance reused across many runs.

Cost model (why it looks like this): a run is ~100 instructions, so per-run Python work and
unicorn's translation of new code dominate (generated cases rarely repeat code, so most blocks are
translated afresh: ~3 us per 5-instruction block bare, ~4.5 us with the block hook, ~9 us with
unicorn's instruction counter on as well, which instruments every instruction). Python runs only
at TB (basic block) entries (to count steps and enforce the budget), at logged stores, at host
calls and at faults; register and memory access goes straight to libunicorn through preallocated
ctypes buffers. With the native block hook (blockhook.c) Python runs at neither block entries nor,
for registers, inside host calls: the hook reads x1-x31 once per host call, the Python callback
reads and writes that snapshot, and the hook writes the changed registers back.

The budget: the block hook keeps a running count of the instructions of the blocks entered and
stops (before the block runs) at the first block that would overrun it; the rest of the budget is
then run with unicorn's exact counter (`emu_start(count=...)`) from there. Only runs that exhaust
their budget pay for the counter (and the translation cache is flushed around them, since cached
blocks carry no counting code).

Unicorn 2.1.4 quirks handled here (each has a unit test):
- With an interrupt hook installed, unicorn skips a trapping instruction and carries on unless
  the hook stops emulation; our hook always stops. The PC it reports is the trap's pc + 4.
- With the instruction counter on, an illegal instruction at a hooked address traps before the
  code hook runs; so a host-call address always holds a `c.ret`, rewritten before a run whenever
  something may have overwritten it.
- A translated block that spans the `until` address but was translated while another address was
  the exit does not stop there; when the sentinel changes, the blocks around it are dropped.
  (Memory and its quirks: ``emu.engine.unicorn_state``, which this class extends; how a run's end
  maps to a stop: ``emu.engine.unicorn_stops``.)

Hooks are registered with `uc_hook_add` directly (one ctypes callback straight into the bound
method, not the binding's three Python frames per call) and runs start with `uc_emu_start`.

Why one file over 400 lines: a run and the hooks that fill its state
(budget, traps, invalid accesses, logged stores, host calls, observers) share that state; memory
and registers are already in ``unicorn_state``, the stop tables in ``unicorn_stops``.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from typing import Any

import unicorn
from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_WRITE
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0
from unicorn.unicorn_py3.unicorn import (
    HOOK_CODE_CFUNC,
    HOOK_INTR_CFUNC,
    HOOK_MEM_ACCESS_CFUNC,
    HOOK_MEM_INVALID_CFUNC,
    uclib,
)

from sledfuzz.emu.engine import blockhook
from sledfuzz.emu.engine.base import (
    MASK64,
    TRAP_CAUSE_STOP,
    EngineError,
    HostFn,
    HostStop,
    MemWrite,
    ObserverFn,
    RunResult,
    StopKind,
    TracerFn,
)
from sledfuzz.emu.engine.unicorn_state import UnicornState
from sledfuzz.emu.engine.unicorn_stops import ERR_STOP, HOOK_INVALID, INVALID_ACCESS_STOP, complement

_unicorn: Any = unicorn  # the binding's own annotations are partial; keep mypy out of them
UcError: type[Exception] = _unicorn.UcError

#: Runs between two flushes of the translation cache. unicorn 2.1.4 keeps ~0.4 KB per
#: ``uc_emu_start`` in its translation-block structures (even re-running one cached block), freed
#: only when the cache is flushed: without this, RSS grows ~4 MB per 10,000 runs, without bound.
#: A flush costs one re-translation of the blocks still in use (under 1 % at this interval).
FLUSH_EVERY = 1000
_RA = 1
_A0 = 10
_C_RET = b"\x82\x80"  # c.jr ra


class UnicornEngine(UnicornState):
    """One `Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)` for the lifetime of the object (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._host_hooks: dict[int, int] = {}  # Python block hook: one code hook per address
        self._host_span: tuple[int, int, int] | None = None  # native: (lo, hi, handle) of the range hook
        self._log_key: tuple[tuple[int, int], ...] | bool | None = False  # False: no hooks yet
        self._log_hooks: list[int] = []
        # Per-run state, filled by the hooks.
        self._steps = 0  # instructions in the blocks entered so far (whole blocks)
        self._limit = 0  # the block hook stops at a block that would take _steps to this
        self._over = False  # the block hook stopped the run at the budget
        self._writes: list[tuple[int, int, int, int]] = []
        self._trap: tuple[int, int] | None = None  # (cause, pc of the trapping instruction)
        self._invalid: tuple[int, int, int] | None = None  # (access, addr, pc)
        self._host_stop: tuple[int, str] | None = None  # (host address, reason)
        self._watch: tuple[int, int] | None = None  # region whose crossings runs record
        self._runs = 0  # runs since the translation cache was last flushed (FLUSH_EVERY)
        self._bh_hosts_dirty = True
        self._regions: list[tuple[int, int]] = []  # mapped [begin, end), sorted: unicorn's, mirrored
        self._cfuncs: dict[int, Any] = {}  # hook handle -> its ctypes callback (kept alive)
        self._observers: dict[int, tuple[int, ObserverFn]] = {}  # addr -> (handle, fn)
        self._hook_exc: BaseException | None = None  # raised by a Python callback during a run
        self._bh: Any = None  # the native block hook's state (blockhook.c), None: the Python hook
        self._bh_ptr = 0
        self._bh_hosts_dirty = True
        lib = blockhook.load()
        if lib is not None:
            st = lib.bh_new(ctypes.cast(uclib.uc_mem_read, ctypes.c_void_p),
                            ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p))
            if st:
                self._bh = st.contents
                self._bh_ptr = ctypes.addressof(self._bh)
                self._bh_lib = lib
                self._bh_x = self._bh.xregs
                self._bh_fin = weakref.finalize(self, lib.bh_free, self._bh_ptr)
                self._block_hook_args: tuple[Any, int | None] = (ctypes.cast(lib.bh_block, ctypes.c_void_p), self._bh_ptr)
                self._host_cfunc = HOOK_CODE_CFUNC(self._on_host)
                lib.bh_set_host_cb(self._bh_ptr, ctypes.cast(self._host_cfunc, ctypes.c_void_p),
                                   ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p),
                                   ctypes.cast(uclib.uc_reg_write, ctypes.c_void_p),
                                   UC_RISCV_REG_X0 + _A0, UC_RISCV_REG_X0 + _RA, UC_RISCV_REG_PC)
        #: True when budget/step counting runs in the native block hook (blockhook.c), False when
        #: it fell back to the Python hook (`emu.engine.blockhook.why_not` says why).
        self.native_block_hook = self._bh is not None
        if self._bh is None:
            self._block_hook_args = (HOOK_CODE_CFUNC(self._on_block), None)
        self._block_hook = self._raw_hook(UC_HOOK_BLOCK, self._block_hook_args[0], user_data=self._block_hook_args[1])
        self._raw_hook(UC_HOOK_INTR, HOOK_INTR_CFUNC(self._on_intr))
        self._raw_hook(HOOK_INVALID, HOOK_MEM_INVALID_CFUNC(self._on_invalid))

    def _failed(self, exc: BaseException) -> None:
        """A Python callback raised: remember the first exception and stop (re-raised by run)."""
        if self._hook_exc is None:
            self._hook_exc = exc
        uclib.uc_emu_stop(self._uch)

    def watch(self, span: tuple[int, int] | None) -> None:
        """Record transfers of control into and out of [lo, hi) (RunResult.crossings)."""
        self._watch = span if span is not None and span[1] > span[0] else None
        if self._bh is not None:
            lo, hi = self._watch or (0, 0)
            self._bh.watch_lo, self._bh.watch_hi = lo, hi

    # ---- host calls ---------------------------------------------------------------------------

    def add_host_call(self, addr: int, fn: HostFn) -> None:
        """Register fn at addr (replacing an earlier one). The page is mapped if needed and addr
        holds a `c.ret` from the next run on (the hook fires before that instruction runs)."""
        if addr & 1:
            raise EngineError(f"host call address {addr:#x} is odd")
        if self._bh is None and addr not in self._host_hooks:
            self._host_hooks[addr] = self._raw_hook(UC_HOOK_CODE, HOOK_CODE_CFUNC(self._on_host), addr, addr)
        self._host[addr] = fn
        self._host_pages.add(addr >> 12)
        self._host_dirty = True
        self._bh_hosts_dirty = True  # synced by the next run: registering many costs one hook_add

    def clear_host_calls(self) -> None:
        for h in self._host_hooks.values():
            self._raw_hook_del(h)
        self._host_hooks.clear()
        self._host.clear()
        self._host_pages.clear()
        self._host_dirty = False
        self._bh_hosts_dirty = True
        if self._bh is not None:
            self._bh_sync_hosts()

    def _bh_sync_hosts(self) -> None:
        """Native hooks: hand the host-call addresses to blockhook.c (its block counts and its
        host filter) and keep one code hook over [lowest, highest] of them (one hook per address
        would make unicorn scan them all for every instruction it translates)."""
        hosts = sorted(self._host)
        if self._bh_lib.bh_set_hosts(self._bh_ptr, (ctypes.c_uint64 * len(hosts))(*hosts), len(hosts)):
            raise EngineError("native block hook: out of memory")
        self._bh_hosts_dirty = False
        span = (hosts[0], hosts[-1]) if hosts else None
        if span == (self._host_span[:2] if self._host_span else None):
            return
        if self._host_span is not None:
            self._raw_hook_del(self._host_span[2])
            self._host_span = None
        if span is not None:
            h = self._raw_hook(UC_HOOK_CODE, ctypes.cast(self._bh_lib.bh_host, ctypes.c_void_p), span[0], span[1],
                               user_data=self._bh_ptr)
            self._host_span = (span[0], span[1], h)

    def _place_host_rets(self) -> None:
        for addr in self._host:
            if uclib.uc_mem_write(self._uch, addr, _C_RET, 2) != 0:
                self.map(addr, 2)
                uclib.uc_mem_write(self._uch, addr, _C_RET, 2)
            self._touched(addr, 2)
        self._host_dirty = False

    # ---- observers ----------------------------------------------------------------------------

    def add_observer(self, addr: int, fn: ObserverFn) -> None:
        """Call fn(engine, addr) whenever execution reaches addr, before that instruction runs;
        control is not redirected (fn may read guest state and write memory, e.g. a poke).
        Replaces an earlier observer at addr; persists across runs until removed."""
        self.remove_observer(addr)
        cb = HOOK_CODE_CFUNC(self._observer_cb(fn))
        self._observers[addr] = (self._raw_hook(UC_HOOK_CODE, cb, addr, addr), fn)
        self._remove_cache(addr, addr + 4)  # blocks translated before the hook existed

    def remove_observer(self, addr: int) -> None:
        hit = self._observers.pop(addr, None)
        if hit is not None:
            self._raw_hook_del(hit[0])
            self._remove_cache(addr, addr + 4)

    def _observer_cb(self, fn: ObserverFn) -> Callable[[int, int, int, Any], None]:
        def cb(_uc: int, addr: int, _size: int, _ud: Any) -> None:
            try:
                fn(self, addr)
            except BaseException as e:  # re-raised by run()
                self._failed(e)

        return cb

    def set_tracer(self, fn: TracerFn | None) -> None:
        """Call fn(engine, pc, size) before every instruction from now on (None: stop). A Python
        call per instruction: for showing one run (``sledfuzz explain``), never for searching."""
        old: int | None = getattr(self, "_tracer", None)
        if old is not None:
            self._raw_hook_del(old)
            self._tracer = None
        if fn is not None:
            def cb(_uc: int, addr: int, size: int, _ud: Any) -> None:
                try:
                    fn(self, addr, size)
                except BaseException as e:  # re-raised by run()
                    self._failed(e)

            self._tracer = self._raw_hook(UC_HOOK_CODE, HOOK_CODE_CFUNC(cb))
        self._uc.ctl_flush_tb()  # blocks translated without (or with) the hook

    # ---- hooks (called from unicorn) ----------------------------------------------------------

    def _on_block(self, _uc: int, addr: int, size: int, _ud: Any) -> None:
        try:
            key = (addr, size)
            n = self._ninsn.get(key)
            if n is None:
                n = self._block_insns(addr, size)
            steps = self._steps + n
            if steps >= self._limit:
                # The block would use up the budget: stop before it runs (pc = addr) and let the
                # exact counter run the rest. Also at exactly the budget, since the next block may
                # start with a trapping instruction that no block hook reports before it traps.
                self._over = True
                uclib.uc_emu_stop(self._uch)
                return
            self._steps = steps
            self._blocks.append(key)
        except BaseException as e:  # re-raised by run()
            self._failed(e)

    def _on_intr(self, _uc: int, intno: int, _ud: Any) -> None:
        # unicorn 2.1.4 has already advanced pc by 4 past the trapping instruction.
        if self._trap is None:
            self._trap = (intno, (self.get_pc() - 4) & MASK64)
        uclib.uc_emu_stop(self._uch)

    def _on_invalid(self, _uc: int, access: int, addr: int, size: int, value: int, _ud: Any) -> bool:
        if self._invalid is None:
            self._invalid = (access, addr, self.get_pc())
        return False

    def _on_write(self, _uc: int, access: int, addr: int, size: int, value: int, _ud: Any) -> None:
        self._writes.append((addr, size, value & ((1 << (8 * size)) - 1), self.get_pc()))

    def _on_host(self, _uc: int, addr: int, size: int, _ud: Any) -> None:
        try:
            fn = self._host.get(addr)
            if fn is None:  # a hook left over by a re-registration race; behave like the c.ret
                self._set_pc(self.reg(_RA))
                return
            bh = self._bh
            if bh is not None:  # registers from blockhook.c's snapshot (see UnicornState._xregs)
                self._xregs = self._bh_x
                self._xdirty = 0
            try:
                ret = fn(self)
            except HostStop as e:
                self._host_stop = (addr, e.reason)
                uclib.uc_emu_stop(self._uch)
                return
            except EngineError as e:  # the callee looked at guest state that is not there
                self._host_stop = (addr, f"host call at {addr:#x}: {e}")
                uclib.uc_emu_stop(self._uch)
                return
            finally:
                if bh is not None:
                    self._xregs = None
                    bh.xdirty = self._xdirty
            if bh is not None:  # blockhook.c writes a0 and returns to ra (same steps as below)
                if ret is not None:
                    bh.host_ret = ret & MASK64
                    bh.host_ret_set = 1
                bh.host_done = 1
                return
            if ret is not None:
                self._u64.value = ret & MASK64
                uclib.uc_reg_write(self._uch, UC_RISCV_REG_X0 + _A0, self._u64_ref)
            # (a pc written with uc_reg_write_batch does not redirect a running emulation)
            uclib.uc_reg_read(self._uch, UC_RISCV_REG_X0 + _RA, self._u64_ref)
            uclib.uc_reg_write(self._uch, UC_RISCV_REG_PC, self._u64_ref)
        except BaseException as e:  # re-raised by run()
            self._failed(e)

    def _set_log_ranges(self, key: tuple[tuple[int, int], ...] | None) -> None:
        if key == self._log_key:
            return
        for h in self._log_hooks:
            self._raw_hook_del(h)
        self._log_hooks = []
        spans = [(0, MASK64)] if key is None else complement(key)
        for b, e in spans:
            self._log_hooks.append(self._raw_hook(UC_HOOK_MEM_WRITE, HOOK_MEM_ACCESS_CFUNC(self._on_write), b, e))
        self._log_key = key

    # ---- running ------------------------------------------------------------------------------

    def run(
        self,
        pc: int,
        sentinel: int,
        budget: int,
        log_writes_outside: tuple[tuple[int, int], ...] | None = None,
    ) -> RunResult:
        self._runs += 1
        if self._runs >= FLUSH_EVERY:
            self._runs = 0
            # unicorn 2.1.4 keeps every block a hook instrumented (16 bytes and a hash slot per
            # distinct block) until the hook is deleted: a new block hook frees that table
            # (bounded memory, docs/results.md)
            self._raw_hook_del(self._block_hook)
            self._block_hook = self._raw_hook(UC_HOOK_BLOCK, self._block_hook_args[0], user_data=self._block_hook_args[1])
            self._uc.ctl_flush_tb()  # bounded memory (FLUSH_EVERY); translations come back on use
        if self._host_dirty:
            self._place_host_rets()
        if sentinel != self._sentinel:
            # Drop blocks translated while another address was the exit (module doc).
            self._remove_cache(max(sentinel - 4, 0), min(sentinel + 4, MASK64))
            self._sentinel = sentinel
        self._set_log_ranges(log_writes_outside)
        bh = self._bh
        if bh is not None:
            if self._bh_hosts_dirty:
                self._bh_sync_hosts()
            bh.steps = 0
            bh.limit = min(max(budget, 0), MASK64)
            bh.over = 0
            bh.failed = 0
            bh.has_last = 0
            bh.nrun = 0
            bh.ncross = 0
            bh.epoch += 1
        else:
            self._blocks.clear()
            self._blocks_merged = 0
            self._steps = 0
            self._limit = budget
            self._over = False
        self._writes = []
        self._trap = None
        self._invalid = None
        self._host_stop = None
        if pc == sentinel:
            return RunResult("sentinel", pc, None, 0, ())
        if budget <= 0:  # count=0 would mean "unlimited" to unicorn
            self._set_pc(pc)
            return RunResult("budget", pc, None, 0, ())

        err = self._start(pc, sentinel, 0)
        if (self._over if bh is None else bh.over) and not err:
            err = self._finish_budget(sentinel, budget)
        if bh is not None and bh.failed:
            raise EngineError("native block hook: out of memory")
        writes = tuple(MemWrite(*w) for w in self._writes)

        stop: StopKind
        fault_addr: int | None = None
        detail = ""
        if self._host_stop is not None:
            stop, at, detail = "host_error", self._host_stop[0], self._host_stop[1]
        elif self._trap is not None:
            cause, at = self._trap
            stop, what = TRAP_CAUSE_STOP.get(cause, ("illegal_insn", "unexpected trap"))
            word = self._word_at(at)
            detail = f"trap cause {cause} ({what}) at {at:#x}, insn {word:#x}" if word is not None else what
            if stop == "misaligned" and word is not None:
                fault_addr = self._amo_addr(word)
        elif err:
            stop, detail = ERR_STOP.get(err, ("host_error", ""))
            if not detail or stop == "host_error":
                detail = detail or f"unicorn error {err}: {_unicorn.UcError(err)}"
            at = self.get_pc()
            if self._invalid is not None:
                access, fault_addr, ipc = self._invalid
                stop = INVALID_ACCESS_STOP.get(access, stop)
                at = fault_addr if stop in ("fetch_unmapped", "fetch_prot") else ipc
                if stop == "write_unmapped" and writes and (writes[-1].addr, writes[-1].pc) == (fault_addr, ipc):
                    writes = writes[:-1]  # unicorn reports the store before finding it unmapped
        else:
            at = self.get_pc()
            stop = "sentinel" if at == sentinel else "budget"
        steps = budget if stop == "budget" else self._count_steps(at)
        self._merge_code_pages()
        self._code_pages.add(at >> 12)  # a block that trapped before its hook ran is translated too
        return RunResult(stop, at, fault_addr, steps, writes, detail, self._crossings())

    def _crossings(self) -> tuple[tuple[int, int, int], ...]:
        """The watched region's crossings of the last run (native: recorded by blockhook.c;
        Python hook: derived from the blocks it recorded in order)."""
        span = self._watch
        if span is None:
            return ()
        lo, hi = span
        bh = self._bh
        if bh is not None:
            flat = bh.cross[: 3 * bh.ncross]
            return tuple((flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3))
        out: list[tuple[int, int, int]] = []
        prev: tuple[int, int] | None = None
        for a, n in self._blocks:
            was = prev is not None and lo <= prev[0] < hi
            if (lo <= a < hi) != was:
                out.append((prev[0], prev[0] + prev[1], a) if prev is not None else (0, 0, a))
            prev = (a, n)
        return tuple(out)

    def _finish_budget(self, sentinel: int, budget: int) -> int:
        """The block hook stopped at a block that would overrun the budget: run the rest of the
        budget with unicorn's exact instruction counter (the error code, 0 when none)."""
        bh = self._bh
        if bh is None:
            self._over = False
            left = budget - self._steps
        else:
            bh.over = 0
            left = budget - bh.steps
        if left <= 0:
            return 0
        # the counter enforces the budget now; the hook only records
        if bh is None:
            self._limit = 1 << 62
        else:
            bh.limit = 1 << 62
        uc = self._uc
        uc.ctl_flush_tb()  # cached blocks were translated without counting code
        try:
            return self._start(self.get_pc(), sentinel, left)
        finally:
            uc.ctl_flush_tb()  # unicorn drops its counter at the next count=0 start; be explicit

    def _start(self, pc: int, sentinel: int, count: int) -> int:
        """uc_emu_start; the error code (0: none). An exception a Python callback raised (ours or
        one added through the binding, e.g. a tracer) is raised here, as the binding would."""
        self._hook_exc = None
        self._uc._hook_exception = None
        err = int(uclib.uc_emu_start(self._uch, pc, sentinel, 0, count))
        exc = self._hook_exc or self._uc._hook_exception
        if exc is not None:
            self._hook_exc = self._uc._hook_exception = None
            raise exc
        return err

    def _count_steps(self, stop_pc: int) -> int:
        """Completed instructions: whole blocks entered, plus the part of the last one before
        stop_pc. Block sizes come from the translation, lengths from memory after the run (code
        the guest rewrote during the run may be miscounted; nothing here does that)."""
        bh = self._bh
        if bh is not None:
            if not bh.has_last:
                return 0
            addr, size = bh.last_addr, bh.last_size
            if addr not in self._host and addr <= stop_pc < addr + size:
                n = int(self._bh_lib.bh_count(self._bh_ptr, self._uch, addr, size))
                if n < 0:
                    raise EngineError("native block hook: out of memory")
                return int(bh.steps) - n + self._count_range(addr, stop_pc)
            return int(bh.steps)
        blocks = self._blocks
        if not blocks:
            return 0
        addr, size = blocks[-1]
        if addr not in self._host and addr <= stop_pc < addr + size:
            return self._steps - self._block_insns(addr, size) + self._count_range(addr, stop_pc)
        return self._steps
