"""The engine's memory across cases: exactly this case's regions, and nothing an earlier case left.

One engine runs case after case. Rewriting code throws away unicorn's translations, so a region
identical to the previous case's is not rewritten; everything else a previous case left behind
(the host's regions it does not lay again, the guest's stray writes) is zeroed, and pages this
case does not use are unmapped. So a run never depends on the history of the engine
(``bench/fresh_vs_shared.py`` checks it against a fresh engine per case).
"""

from __future__ import annotations

from collections.abc import Sequence

from sledfuzz.emu.engine import Engine
from sledfuzz.emu.scenario.memory_map import HOST_PAGES, Region
from sledfuzz.model.observation import Write


def _pages(addr: int, size: int) -> range:
    return range(addr >> 12, (addr + size + 0xFFF) >> 12)


class AddressSpace:
    """The mapped pages of one engine, the regions written for the previous case (its shadow) and
    the guest's writes outside them (strays), to be zeroed next time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._mapped: set[int] = set()
        self._shadow: dict[int, bytes] = {}  # code/data regions as written for the previous case
        self._stray: list[tuple[int, int]] = []  # guest writes outside every region: zero them next time
        self._map(*HOST_PAGES)

    def write(self, addr: int, data: bytes) -> None:
        """engine.write (the engine drops stale translations itself, also across mapped regions)."""
        self.engine.write(addr, data)

    def forget(self, addr: int) -> None:
        """The region at ``addr`` no longer holds what was laid there (a teardown poke rewrote it):
        rewrite it next time."""
        self._shadow.pop(addr, None)

    def _map(self, addr: int, size: int) -> None:
        lo, hi = addr >> 12, (addr + size + 0xFFF) >> 12
        missing = [p for p in range(lo, hi) if p not in self._mapped]
        if missing:
            self.engine.map(missing[0] << 12, (missing[-1] + 1 - missing[0]) << 12)
            self._mapped.update(range(missing[0], missing[-1] + 1))

    def reset(self) -> None:
        """Start over from an empty address space (after a run that ended in an exception, whose
        guest writes were never collected)."""
        self.engine.unmap_all()
        self._mapped.clear()
        self._shadow.clear()
        self._stray.clear()
        self._map(*HOST_PAGES)

    def lay(self, regions: Sequence[Region], volatile: frozenset[int]) -> None:
        """Unmap what this case does not use, then make memory hold exactly ``regions``."""
        self._unmap_unused(regions)
        self._install(regions, volatile)

    def _unmap_unused(self, regions: Sequence[Region]) -> None:
        """Unmap every page an earlier case mapped that this case does not use, so the address
        space is exactly a new engine's plus this case's regions: an access there faults as it
        would on a fresh engine (a runaway recursion, 47c9214dcbea, walks sp down to the first
        unmapped byte; a wild jump or load must not find an earlier case's memory). It also keeps
        the engine's memory bounded over long runs.
        """
        used = {p for a, d in regions for p in _pages(a, len(d))}
        used.update(_pages(*HOST_PAGES))
        stale = sorted(self._mapped - used)
        if not stale:
            return
        run_lo = prev = stale[0]
        for p in [*stale[1:], None]:
            if p is not None and p == prev + 1:
                prev = p
                continue
            self.engine.unmap(run_lo << 12, (prev + 1 - run_lo) << 12)
            if p is not None:
                run_lo = prev = p
        self._mapped.difference_update(stale)
        # Shadowed regions and stray writes that lost a page: zero what is left of them now (on
        # the pages still mapped) and forget them; the rest is handled by _install as before.
        gone = set(stale)
        for addr, old in list(self._shadow.items()):
            if not gone.isdisjoint(_pages(addr, len(old))):
                del self._shadow[addr]
                self._zero_mapped(addr, len(old))
        strays, self._stray = self._stray, []
        for addr, size in strays:
            if gone.isdisjoint(_pages(addr, size)):
                self._stray.append((addr, size))
            else:
                self._zero_mapped(addr, size)

    def _zero_mapped(self, addr: int, size: int) -> None:
        """Zero the part of [addr, addr+size) that lies on mapped pages."""
        pos, end = addr, addr + size
        while pos < end:
            nxt = min((pos | 0xFFF) + 1, end)
            if pos >> 12 in self._mapped:
                self.write(pos, bytes(nxt - pos))
            pos = nxt

    def _install(self, regions: Sequence[Region], volatile: frozenset[int]) -> None:
        """Make memory hold exactly ``regions``, and zeros wherever an earlier case left bytes.

        Invariant: afterwards every byte a previous case wrote (the host or the guest) is either
        rewritten by this case or zero, so a run depends only on its own case. A region identical
        to last time is not rewritten (that would drop unicorn's translated code) unless it is
        ``volatile`` (the guest may have changed it) or something overlapping it was zeroed.
        """
        new = dict(regions)
        zeroed: list[tuple[int, int]] = []
        for addr, old in self._shadow.items():
            cur = new.get(addr)
            if cur == old or (cur is not None and len(cur) >= len(old)):
                continue
            self.write(addr, bytes(len(old)))
            zeroed.append((addr, addr + len(old)))
        for addr, size in self._stray:
            self.write(addr, bytes(size))
            zeroed.append((addr, addr + size))
        self._stray = []
        shadow = self._shadow
        for addr, data in regions:
            self._map(addr, len(data))
            if addr in volatile:
                self.engine.write(addr, data)  # data, not code: no translations to drop
            elif shadow.get(addr) != data or any(lo < addr + len(data) and addr < hi for lo, hi in zeroed):
                self.write(addr, data)
        self._shadow = new

    def after_run(self, writes: tuple[Write, ...], volatile: frozenset[int]) -> None:
        """Forget the regions the guest wrote into; remember stray writes, to zero them next time."""
        if not writes:
            return
        spans = [(a, a + len(d)) for a, d in self._shadow.items()]
        for w in writes:
            hit = False
            for lo, hi in spans:
                if lo < w.addr + w.size and w.addr < hi:
                    hit = True
                    if lo not in volatile and lo in self._shadow:
                        # the guest wrote into code or ops memory: the region is no longer what the
                        # shadow says, and if the next case lays nothing there it must be zeroed
                        self._stray.append((lo, len(self._shadow.pop(lo))))
            if not hit:
                self._stray.append((w.addr, w.size))
