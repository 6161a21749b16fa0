"""UnicornState: the guest state of the unicorn engine — its memory map, memory and registers.

Why a class of its own: ``UnicornEngine`` (emu/engine/unicorn_engine.py) runs code, and the part
that keeps unicorn's memory map, its translated code and the engine's block counts consistent when
memory changes is the subtle half; it lives here, the run and its hooks there.

Unicorn 2.1.4 quirks handled here (each has a unit test):
- After a run that ends in a fault or passes through a host call (a PC write from a hook),
  `uc_mem_write` no longer invalidates stale translations of the code it overwrites; so `write`
  drops the translations itself whenever it touches a page code has run from.
- One `uc_mem_write` spanning two separately mapped regions leaves stale translated code in the
  second; so a write that touches a page code has run from goes page by page.

Memory and registers are reached through libunicorn directly (preallocated ctypes buffers), and
the mapped regions are mirrored in Python (`uc_mem_regions` costs ~2.5 us per region through
ctypes, and a long-lived engine holds hundreds).
"""

from __future__ import annotations

import bisect
import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import unicorn
from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, UC_PROT_ALL, UC_PROT_READ, UC_PROT_WRITE
from unicorn import unicorn_const as ucc
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0
from unicorn.unicorn_py3 import unicorn as _binding
from unicorn.unicorn_py3.unicorn import uclib

from sledfuzz.emu.engine.base import MASK64, PAGE_SIZE, EngineError, HostFn
from sledfuzz.emu.engine.unicorn_stops import insn_len

_unicorn: Any = unicorn  # the binding's own annotations are partial; keep mypy out of them
_uc_hook_h: Any = getattr(_binding, "uc_hook_h")  # noqa: B009 - not in the binding's __all__

#: Bytes of host code unicorn may keep translated (its default is 1 GiB, which a long run fills
#: page by page: RSS grew without bound). When full, unicorn drops every translation and starts
#: over, which costs a re-translation of the few blocks in use; see docs/results.md (Memory).
TCG_BUFFER_SIZE = 32 << 20
_READ_BUF = 4096
_CTL_REMOVE_CACHE = (ucc.UC_CTL_IO_WRITE << 30) | (2 << 26) | ucc.UC_CTL_TB_REMOVE_CACHE


@dataclass(frozen=True)
class _Batch:
    ids: Any
    vals: Any
    ptrs: Any
    n: int
    keep: list[int] | None  # positions of non-x0 registers, None when there is no x0


class UnicornState:
    """One `Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)`, its memory and registers (see module doc)."""

    def __init__(self) -> None:
        self._uc: Any = _unicorn.Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
        # Before anything initialises the CPU: a bounded translation buffer (module doc, RSS).
        self._uc.ctl_set_tcg_buffer_size(TCG_BUFFER_SIZE)
        self._uch: Any = self._uc._uch
        self._u64 = ctypes.c_uint64()
        self._u64_ref = ctypes.byref(self._u64)
        self._u64_chars = ctypes.cast(ctypes.pointer(self._u64), ctypes.POINTER(ctypes.c_char))
        self._rbuf = ctypes.create_string_buffer(_READ_BUF)  # reused by short reads
        self._rview = memoryview(self._rbuf).cast("B")
        self._batches: dict[tuple[int, ...], _Batch] = {}
        self._host: dict[int, HostFn] = {}
        self._host_pages: set[int] = set()
        self._host_dirty = False  # a host-call address may have lost its c.ret
        self._sentinel: int | None = None
        # Instruction count per translated block, dropped page-wise when memory is rewritten.
        self._ninsn: dict[tuple[int, int], int] = {}
        self._ninsn_pages: dict[int, set[tuple[int, int]]] = {}
        self._code_pages: set[int] = set()  # pages that may hold translated blocks
        # Python block hook: the blocks entered by the current run, and how many are merged.
        self._blocks: list[tuple[int, int]] = []
        self._blocks_merged = 0
        self._regions: list[tuple[int, int]] = []  # mapped [begin, end), sorted: unicorn's, mirrored
        self._cfuncs: dict[int, Any] = {}  # hook handle -> its ctypes callback (kept alive)
        self._bh: Any = None  # the native block hook's state (blockhook.c), None: the Python hook
        self._bh_ptr = 0
        self._bh_lib: Any = None
        #: During a native host call: x0-x31 as read when it began (``blockhook.c`` writes the
        #: registers marked in ``_xdirty`` back when the Python callback returns); None otherwise.
        self._xregs: Any = None
        self._xdirty = 0
        #: The CPU as created: ``reset_cpu`` restores it (x, f and CSRs; nothing survives a run).
        self._pristine = self._uc.context_save()

    def _raw_hook(self, kind: int, cfunc: Any, begin: int = 1, end: int = 0, user_data: int | None = None) -> int:
        """uc_hook_add with a ctypes callback of ours (the binding's hook_add adds three Python
        frames to every call); returns the handle."""
        h = _uc_hook_h()
        err = uclib.uc_hook_add(self._uch, ctypes.byref(h), kind, ctypes.cast(cfunc, ctypes.c_void_p),
                                ctypes.c_void_p(user_data), ctypes.c_uint64(begin), ctypes.c_uint64(end))
        if err != 0:
            raise EngineError(f"uc_hook_add({kind:#x}) failed: {_unicorn.UcError(err)}")
        self._cfuncs[h.value] = cfunc
        return int(h.value)

    def _remove_cache(self, lo: int, hi: int) -> None:
        """uc_ctl(UC_CTL_TB_REMOVE_CACHE) straight through ctypes (the binding's
        ctl_remove_cache adds ~3 us of Python per call; writes to code pages call this)."""
        err = uclib.uc_ctl(self._uch, _CTL_REMOVE_CACHE, ctypes.c_uint64(lo), ctypes.c_uint64(hi))
        if err != 0:
            raise _unicorn.UcError(err)

    def _raw_hook_del(self, h: int) -> None:
        uclib.uc_hook_del(self._uch, _uc_hook_h(h))
        self._cfuncs.pop(h, None)

    # ---- memory -------------------------------------------------------------------------------

    def map(self, base: int, size: int, *, executable: bool = True) -> None:
        """Map [base, base+size) rounded out to pages. Pages already mapped keep their contents;
        `executable=False` (an extension) maps new pages without execute permission, so a jump
        there stops as "fetch_prot"."""
        if size <= 0:
            return
        lo = base & ~(PAGE_SIZE - 1)
        hi = (base + size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        perms = UC_PROT_ALL if executable else UC_PROT_READ | UC_PROT_WRITE
        regions = self._regions
        i = max(bisect.bisect_right(regions, (lo, 1 << 65)) - 1, 0)
        cur = lo
        gaps: list[tuple[int, int]] = []
        while i < len(regions) and cur < hi:
            rb, rend = regions[i]
            if rb >= hi:
                break
            if rend > cur:
                if rb > cur:
                    gaps.append((cur, rb))
                cur = rend
            i += 1
        if cur < hi:
            gaps.append((cur, hi))
        for b, e in gaps:
            self._uc.mem_map(b, e - b, perms)
            bisect.insort(regions, (b, e))
        if gaps and self._host_pages.intersection(range(lo >> 12, hi >> 12)):
            self._host_dirty = True

    def unmap(self, base: int, size: int) -> None:
        """Unmap the mapped pages of [base, base+size) (rounded out to pages); what the engine
        knows about code there is dropped with them."""
        if size <= 0:
            return
        lo = base & ~(PAGE_SIZE - 1)
        hi = (base + size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        regions = self._regions
        i = max(bisect.bisect_right(regions, (lo, 1 << 65)) - 1, 0)
        cut: list[tuple[int, int]] = []
        while i < len(regions) and regions[i][0] < hi:
            rb, rend = regions[i]
            b, e = max(rb, lo), min(rend, hi)
            if b < e:
                cut.append((b, e))
                del regions[i]
                for keep in ((rb, b), (e, rend)):
                    if keep[0] < keep[1]:
                        bisect.insort(regions, keep)
                        i += 1
                continue
            i += 1
        for b, e in cut:
            self._touched(b, e - b)  # drop translations and block counts while the pages exist
            self._uc.mem_unmap(b, e - b)
            self._code_pages.difference_update(range(b >> 12, e >> 12))
            if self._host_pages.intersection(range(b >> 12, e >> 12)):
                self._host_dirty = True

    def reset_cpu(self) -> None:
        """Every CPU register back to the engine's first state (uc_context_restore)."""
        self._uc.context_restore(self._pristine)

    def unmap_all(self) -> None:
        for rb, re_, _ in list(self._uc.mem_regions()):
            self._uc.mem_unmap(rb, re_ + 1 - rb)
        self._regions.clear()
        self._uc.ctl_flush_tb()
        self._code_pages.clear()
        self._ninsn.clear()
        self._ninsn_pages.clear()
        if self._bh is not None:
            self._bh_lib.bh_clear(self._bh_ptr)
        self._host_dirty = True
        self._sentinel = None

    def write(self, addr: int, data: bytes) -> None:
        n = len(data)
        if n == 0:
            return
        first, last = addr >> 12, (addr + n - 1) >> 12
        if last != first and not self._code_pages.isdisjoint(range(first, last + 1)):
            # Page by page: one uc_mem_write across two mapped regions keeps stale code (module doc).
            data = bytes(data)
            pos, end = addr, addr + n
            while pos < end:
                nxt = min((pos | (PAGE_SIZE - 1)) + 1, end)
                self.write(pos, data[pos - addr : nxt - addr])
                pos = nxt
            return
        if uclib.uc_mem_write(self._uch, addr, bytes(data), n) != 0:
            raise EngineError(f"write of {n} bytes at {addr:#x}: not mapped")
        self._touched(addr, n)

    def read(self, addr: int, size: int) -> bytes:
        if size <= _READ_BUF:
            if uclib.uc_mem_read(self._uch, addr, self._rbuf, size) != 0:
                raise EngineError(f"read of {size} bytes at {addr:#x}: not mapped")
            return self._rview[:size].tobytes()
        buf = ctypes.create_string_buffer(size)
        if uclib.uc_mem_read(self._uch, addr, buf, size) != 0:
            raise EngineError(f"read of {size} bytes at {addr:#x}: not mapped")
        return buf.raw

    def read_u64(self, addr: int) -> int:
        if uclib.uc_mem_read(self._uch, addr, self._u64_chars, 8) != 0:
            raise EngineError(f"read of 8 bytes at {addr:#x}: not mapped")
        return self._u64.value

    def write_u64(self, addr: int, v: int) -> None:
        self.write(addr, (v & MASK64).to_bytes(8, "little"))

    def _touched(self, addr: int, n: int) -> None:
        """Forget what we (and unicorn's block cache) know about code in the written pages.

        Native hook: every block it counted lies on a page of ``_code_pages`` (it lists them in
        ``pages``, merged here and after each run), so a write elsewhere has nothing to drop. The
        pages of the blocks the *running* run entered count too (a host call's write)."""
        first, last = addr >> 12, (addr + n - 1) >> 12
        self._merge_code_pages()
        code = self._code_pages
        if first in code or (last != first and not code.isdisjoint(range(first, last + 1))):
            self._remove_cache(addr, addr + n)
            if self._bh is not None:
                self._bh_lib.bh_drop_range(self._bh_ptr, addr, addr + n)
        hosts = self._host_pages
        if first in hosts or (last != first and not hosts.isdisjoint(range(first, last + 1))):
            self._host_dirty = True
        if self._bh is not None:
            return
        pages = self._ninsn_pages
        for page in range(first, last + 1):
            keys = pages.pop(page, None)
            if keys:
                for k in keys:
                    self._ninsn.pop(k, None)

    def _merge_code_pages(self) -> None:
        """The pages of the blocks entered since the last merge become code pages (native hook:
        the pages it listed; Python hook: the blocks it recorded)."""
        bh = self._bh
        if bh is not None:
            if bh.npages:
                self._code_pages.update(bh.pages[: bh.npages])
                bh.npages = 0
            return
        blocks = self._blocks
        if len(blocks) > self._blocks_merged:
            cp = self._code_pages
            for a, sz in blocks[self._blocks_merged :]:
                cp.add(a >> 12)
                cp.add((a + sz + 3) >> 12)
            self._blocks_merged = len(blocks)

    # ---- registers ----------------------------------------------------------------------------

    def reg(self, r: int) -> int:
        if r == 0:
            return 0
        if not 0 < r < 32:
            raise EngineError(f"no x-register {r}")
        x = self._xregs
        if x is not None:
            return int(x[r])  # a Python int already; int() for the type checker
        uclib.uc_reg_read(self._uch, UC_RISCV_REG_X0 + r, self._u64_ref)
        return self._u64.value

    def set_reg(self, r: int, v: int) -> None:
        if r == 0:
            return
        if not 0 < r < 32:
            raise EngineError(f"no x-register {r}")
        x = self._xregs
        if x is not None:
            x[r] = v & MASK64
            self._xdirty |= 1 << r
            return
        self._u64.value = v & MASK64
        uclib.uc_reg_write(self._uch, UC_RISCV_REG_X0 + r, self._u64_ref)

    def get_pc(self) -> int:
        uclib.uc_reg_read(self._uch, UC_RISCV_REG_PC, self._u64_ref)
        return self._u64.value

    def _set_pc(self, v: int) -> None:
        self._u64.value = v
        uclib.uc_reg_write(self._uch, UC_RISCV_REG_PC, self._u64_ref)

    def _batch(self, rs: tuple[int, ...]) -> _Batch:
        """ctypes arrays for a batch over x-registers rs (x0 dropped), built once per register list:
        the scenario resets the same registers every run."""
        b = self._batches.get(rs)
        if b is None:
            for r in rs:
                if not 0 <= r < 32:
                    raise EngineError(f"no x-register {r}")
            keep = [i for i, r in enumerate(rs) if r != 0]
            n = len(keep)
            ids = (ctypes.c_int * n)(*(UC_RISCV_REG_X0 + rs[i] for i in keep))
            vals = (ctypes.c_uint64 * n)()
            base = ctypes.addressof(vals)
            ptrs = (ctypes.c_void_p * n)(*range(base, base + 8 * n, 8))
            b = _Batch(ids, vals, ptrs, n, None if n == len(rs) else keep)
            self._batches[rs] = b
        return b

    def regs(self, rs: Sequence[int]) -> list[int]:
        x = self._xregs
        if x is not None:
            if all(0 <= r < 32 for r in rs):
                return [x[r] for r in rs]  # x0 is 0 in the snapshot
            return [self.reg(r) for r in rs]  # raises for the bad one
        rs = tuple(rs)
        b = self._batch(rs)
        if b.n:
            uclib.uc_reg_read_batch(self._uch, b.ids, b.ptrs, b.n)
        if b.keep is None:
            return list(b.vals)
        out = [0] * len(rs)
        for i, v in zip(b.keep, b.vals, strict=True):
            out[i] = v
        return out

    def set_regs(self, pairs: Sequence[tuple[int, int]]) -> None:
        if self._xregs is not None:
            for r, v in pairs:
                self.set_reg(r, v)
            return
        b = self._batch(tuple(r for r, _ in pairs))
        if b.n == 0:
            return
        # ctypes integer arrays store values modulo 2**64.
        if b.keep is None:
            b.vals[:] = [v for _, v in pairs]
        else:
            b.vals[:] = [pairs[i][1] for i in b.keep]
        uclib.uc_reg_write_batch(self._uch, b.ids, b.ptrs, b.n)

    # ---- code in memory ------------------------------------------------------------------------

    def _word_at(self, addr: int) -> int | None:
        try:
            b = self.read(addr, 2)
            return int.from_bytes(self.read(addr, 4) if insn_len(b[0]) == 4 else b, "little")
        except EngineError:
            return None

    def _amo_addr(self, word: int) -> int | None:
        """The effective address of a misaligned A-extension access (address in rs1)."""
        if word & 0x7F != 0x2F:
            return None
        return self.reg((word >> 15) & 31)

    def _block_insns(self, addr: int, size: int) -> int:
        key = (addr, size)
        n = self._ninsn.get(key)
        if n is None:
            n = 1 if addr in self._host else self._count_range(addr, addr + size)
            self._ninsn[key] = n
            for page in range(addr >> 12, ((addr + max(size, 1) - 1) >> 12) + 1):
                self._ninsn_pages.setdefault(page, set()).add(key)
        return n

    def _count_range(self, lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        try:
            code = self.read(lo, hi - lo)
        except EngineError:
            return 0
        i = n = 0
        while i < len(code):
            i += insn_len(code[i])
            n += 1
        return n
