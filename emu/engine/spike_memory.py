"""SpikeMemory: the Spike engine's guest memory — Sv57/48/39 page tables over one RAM device.

Why a class of its own: the scenario's addresses are kernel virtual addresses, so every guest page
the engine maps is backed by a physical page of one RAM device and reached through page tables
the engine writes itself (``emu.engine.spike_engine`` says why); keeping those tables, the host
side's reads and writes through them, and Spike's translation caches consistent is one job, kept
apart from running code. ``SpikeEngine`` extends this class and sets its fields up.
"""

from __future__ import annotations

from typing import Any

from sledfuzz.emu.engine.base import MASK64, PAGE_SIZE, EngineError, HostFn

RAM_BASE = 0x8000_0000
RAM_SIZE = 1 << 30  # Spike's mem_t allocates its pages on first touch
ROOT_PAGE = RAM_BASE + PAGE_SIZE
FIRST_FREE = RAM_BASE + 2 * PAGE_SIZE
CSR_SATP = 0x180
_PTE_V, _PTE_R, _PTE_W, _PTE_X, _PTE_A, _PTE_D = 1, 2, 4, 8, 64, 128
_LEAF_RW = _PTE_V | _PTE_R | _PTE_W | _PTE_A | _PTE_D


class SpikeMemory:
    """Page tables, host-side memory access and the TLB flush of one Spike hart (module doc)."""

    _mem: Any  # the RAM device (riscv.devices.mem_t)
    _proc: Any  # the hart (processor_t)
    _satp: int  # satp with the paging mode in use and the root table
    _levels: int  # page-table levels of that mode
    _va_top: int  # bits 63..va_top of a canonical address are all equal
    _pages: dict[int, int]  # guest page number -> physical page address
    _tables: dict[tuple[int, int], int]  # (level, va >> shift) -> physical table page
    _next_free: int
    _free: list[int]  # physical pages of unmapped guest pages, reused first
    _host: dict[int, HostFn]
    _host_dirty: bool

    # ---- address translation (ours, for the host side and the page tables) ----------------------

    def _zero_root(self) -> None:
        self._mem.store(ROOT_PAGE - RAM_BASE, bytes(PAGE_SIZE))

    def _alloc_page(self) -> int:
        if self._free:
            pa = self._free.pop()
            self._mem.store(pa - RAM_BASE, bytes(PAGE_SIZE))
            return pa
        pa = self._next_free
        if pa + PAGE_SIZE > RAM_BASE + RAM_SIZE:
            raise EngineError(f"spike engine: out of backing memory ({RAM_SIZE >> 20} MiB of mapped pages)")
        self._next_free = pa + PAGE_SIZE
        self._mem.store(pa - RAM_BASE, bytes(PAGE_SIZE))
        return pa

    def _canonical(self, va: int) -> bool:
        top = va >> self._va_top
        return top == 0 or top == (MASK64 >> self._va_top)

    def _map_page(self, vpn: int, executable: bool) -> None:
        va = vpn << 12
        table = ROOT_PAGE
        for level in range(self._levels - 1, 0, -1):
            shift = 12 + 9 * level
            key = (level, va >> shift)
            nxt = self._tables.get(key)
            idx = (va >> shift) & 0x1FF
            if nxt is None:
                nxt = self._alloc_page()
                self._tables[key] = nxt
                self._mem.store(table - RAM_BASE + 8 * idx, (((nxt >> 12) << 10) | _PTE_V).to_bytes(8, "little"))
            table = nxt
        pa = self._alloc_page()
        flags = _LEAF_RW | (_PTE_X if executable else 0)
        idx = (va >> 12) & 0x1FF
        self._mem.store(table - RAM_BASE + 8 * idx, (((pa >> 12) << 10) | flags).to_bytes(8, "little"))
        self._pages[vpn] = pa

    def _flush(self) -> None:
        """Drop Spike's TLBs, decoded-instruction cache and PTE cache (a satp change does)."""
        p = self._proc
        p.put_csr(CSR_SATP, 0)
        p.put_csr(CSR_SATP, self._satp)

    def _phys_chunks(self, addr: int, size: int) -> list[tuple[int, int, int]]:
        """(ram offset, position in the access, length) per page; EngineError when unmapped."""
        out: list[tuple[int, int, int]] = []
        pos = 0
        while pos < size:
            va = (addr + pos) & MASK64
            pa = self._pages.get(va >> 12)
            if pa is None:
                raise EngineError(f"spike engine: address {va:#x} is not mapped")
            n = min(PAGE_SIZE - (va & (PAGE_SIZE - 1)), size - pos)
            out.append((pa - RAM_BASE + (va & (PAGE_SIZE - 1)), pos, n))
            pos += n
        return out

    # ---- memory -------------------------------------------------------------------------------

    def map(self, base: int, size: int, *, executable: bool = True) -> None:
        """Map [base, base+size) rounded out to pages; pages already mapped keep their contents.
        `executable=False` (as UnicornEngine) maps new pages without execute permission."""
        if size <= 0:
            return
        lo = (base & MASK64) >> 12
        hi = ((base & MASK64) + size + PAGE_SIZE - 1) >> 12
        for vpn in range(lo, hi):
            if vpn in self._pages:
                continue
            if not self._canonical(vpn << 12):
                raise EngineError(f"spike engine: {vpn << 12:#x} is not a canonical Sv{12 + 9 * self._levels} "
                                  "address and cannot be mapped")
            self._map_page(vpn, executable)
            if any(a >> 12 == vpn for a in self._host):
                self._host_dirty = True

    def unmap(self, base: int, size: int) -> None:
        """Unmap the mapped pages of [base, base+size) (their physical pages are reused)."""
        if size <= 0:
            return
        lo = (base & MASK64) >> 12
        hi = ((base & MASK64) + size + PAGE_SIZE - 1) >> 12
        for vpn in range(lo, hi):
            pa = self._pages.pop(vpn, None)
            if pa is None:
                continue
            va = vpn << 12
            leaf = self._tables.get((1, va >> 21)) if self._levels > 1 else ROOT_PAGE
            if leaf is not None:
                self._mem.store(leaf - RAM_BASE + 8 * ((va >> 12) & 0x1FF), bytes(8))
            self._free.append(pa)
        self._flush()

    def unmap_all(self) -> None:
        self._zero_root()
        self._pages.clear()
        self._tables.clear()
        self._free.clear()
        self._next_free = FIRST_FREE
        self._host_dirty = True
        self._flush()

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        data = bytes(data)
        for off, pos, n in self._phys_chunks(addr, len(data)):
            self._mem.store(off, data[pos : pos + n])

    def read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        return b"".join(self._mem.load(off, n) for off, _pos, n in self._phys_chunks(addr, size))

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write_u64(self, addr: int, v: int) -> None:
        self.write(addr, (v & MASK64).to_bytes(8, "little"))
