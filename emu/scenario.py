"""The scenario runner: one case on one implementation, executed, as an Observation (DESIGN §1, §7).

Memory image of a run (all addresses from the case's layout, except the two fixed host pages):

* ``parent + 0x800 - len``: the parent's call (``auipc ra; jalr ra``, or ``li t6; jalr ra`` when out
  of reach) to the traced function (struct_ops: to the trampoline image); its return address
  ``parent + PARENT_RET_OFFSET`` is the sentinel. What the parent plants before the call (s0-s11,
  gp, tp, a0-a7, the stack arguments at sp+0.., canaries above them) is written by the host
  before the run starts at that call: same state, no guest stores to filter out of the log.
* ``[func - pre, func + entry)``: the patched sled (kernel functions: the patcher's bytes after
  init and patch, the CALL_OPS literal pointing to an ops object whose direct-call field is the
  image; BPF programs: the JIT prologue nops poked NOP->CALL by the JIT's ``text_poke``), then the
  body: the compiled mini-language body (BPF programs: after ``addi a6, zero, 33``).
* ``layout.ftrace_caller`` (CALL_OPS sleds only): ``ld t1,-16(t0); beqz; ld t1,DIRECT(t1); beqz;
  jr t1; jr t0`` (SEMANTICS 1.3: the ops pointer from the literal at func-8, its direct call).
* ``layout.image``: the JIT's image, sized then emitted at that address.
* ``layout.hosts + 64*role``: one thunk per host role (prog enter/exit, tramp enter/exit, the
  body's helper, each program). A thunk loads the per-case scramble values into a3-a7, t0-t5 and
  jumps to ``HOST_FIXED + 4*role``, where the engine's host call runs: Python records the Event
  and sets a0 (return), a1, a2 (and a5 for a program), then returns to ra. So each host call
  scrambles every caller-saved register deterministically from the case seed (t6 ends holding
  ``HOST_FIXED``) at the cost of three register writes in Python.

Per worker there is one ``Scenario`` per engine: host calls are registered once, memory is
rewritten only where it differs from the previous case (rewriting code throws away unicorn's
translations), and nothing else survives a case: everything a previous case left behind is zeroed,
pages this case does not use are unmapped, every CPU register is reset, the body observer sits only
at this case's body, and the caches are per implementation object. So a run never depends on the
history of the engine (``bench/fresh_vs_shared.py`` checks it against a fresh engine per case, and
findings are re-judged on a fresh engine before they are reported: ``fuzz.fresh``).

The stack and the data region start each run with the case's fill pattern (``fill_pattern``:
non-zero words from the case seed), not zeros, so an implementation that reads a slot it never
wrote (a missing clear) reads a value that shows. The whole traced function is watched
(``Engine.watch``): every entry from outside at a pc other than its start, its body or a call's
return address is an ``Observation.foreign_entries`` pc (I-SLED-CONSISTENT).
"""

from __future__ import annotations

import functools
import itertools
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.bodygen import compile_body
from emu.elf.image import ElfError
from emu.elf.placement import place
from emu.engine import Engine, EngineError, HostStop, RunResult, get_engine
from emu.impls.api import (
    ENOTSUPP,
    ArgModel,
    FuncModel,
    Image,
    Implementation,
    LinkReq,
    PokeKind,
    PokeResult,
    Refused,
    TrampRequest,
)
from emu.rv64 import encode as E
from emu.rv64.offsets import in_auipc_jalr_range, sign_extend
from emu.rv64.regs import A0, A1, A2, A5, A6, RA, S0, SP, T0, T1, T6, ZERO
from model.caps import Capabilities, SledLayout
from model.case import DATA_SIZE, MASK64, STACK_SIZE, Case, Layout
from model.core import E2BIG, CoreRefusal, core_stage
from model.observation import FINAL_REGS, BodyEntry, Event, EventKind, Observation, PokeCheck, TornState, Trap, Write

__all__ = [
    "CANARY",
    "DEFAULT_BUDGET",
    "HOST_FIXED",
    "LayoutError",
    "Scenario",
    "host_addr",
    "run_case",
    "scenario_for",
]

DEFAULT_BUDGET = 20_000

#: Where the parent's call returns, relative to ``layout.parent`` (model.semantics.PARENT_RET_OFFSET;
#: emu may not import model.semantics, the oracle checks they agree).
PARENT_RET_OFFSET = 0x800
#: Host-call targets stay inside ``[hosts, hosts + HOSTS_SPAN)`` (model.semantics.HOSTS_SPAN).
HOSTS_SPAN = 0x1000
#: Values the parent plants (model.semantics.PLANTED, restated here for the import rule).
PLANTED: dict[str, int] = {
    name: 0x5EC0_0000_0000_0000 + (i + 1) * 0x0101_0101_0101
    for i, name in enumerate(("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "gp", "tp"))
}

#: A BPF-program target's caller's tail-call count, planted in a6 (model.semantics.TCC_PLANTED).
TCC_PLANTED = 0x7CC0_0000_0000_0011
#: func_meta (ctx[-1], 7.x): cookie index in bits 8-15, IS_RETURN in bit 63 (model.semantics).
COOKIE_INDEX_SHIFT = 8
IS_RETURN_SHIFT = 63


def session_token(link: int) -> int:
    """What a session program writes into its cookie in its fentry run (model.semantics.session_token)."""
    return 0x5E55_1000_0000_0000 + link


#: The fixed page whose addresses the engine intercepts (a ``lui``-reachable user-space address no
#: kernel-like layout uses), and the scramble table the thunks load from (the page after it).
HOST_FIXED = 0x7FF0_0000
SCRAMBLE_TABLE = HOST_FIXED + 0x1000
THUNK_STRIDE = 64

ROLE_PROG_ENTER = 0
ROLE_PROG_EXIT = 1
ROLE_TRAMP_ENTER = 2
ROLE_TRAMP_EXIT = 3
ROLE_HELPER = 4
ROLE_PROG0 = 5
MAX_PROGS = 38  # BPF_MAX_TRAMP_LINKS: the core refuses more before any JIT runs
N_ROLES = ROLE_PROG0 + MAX_PROGS

#: The ops object (v6.16 CALL_OPS) lives in the hosts region after the thunks.
OPS_OFFSET = 0xF00
OPS_DIRECT_CALL = 0x10

#: Stack: the parent's sp at its call, and the canary words above its stack arguments.
ENTRY_SP_OFFSET = STACK_SIZE - 0x100
CANARY = 0xCA9A_71E5_0000_0000
N_CANARIES = 8
MAX_FRAMES = 3
#: Bytes of stack _frames reads at once from the first frame record up.
_FRAME_WINDOW = 512
_U64X2 = struct.Struct("<QQ").unpack_from

_X = {name: i for i, name in enumerate(
    ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7",
     "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"))}
_FINAL_X = tuple(_X[n] for n in FINAL_REGS)
_THUNK_SCRAMBLED = tuple(_X[n] for n in ("a3", "a4", "a5", "a6", "a7", "t0", "t1", "t2", "t3", "t4", "t5"))
_ARG_X = tuple(range(A0, A0 + 8))
_BODY_X = (*_ARG_X, SP, RA)
_HOST_X = (A0, A1, A2, SP, S0, RA)
_TCC_INIT = E.addi(_X["a6"], ZERO, 33).to_bytes(4, "little")  # addi a6, zero, 33
_SENTINEL_INSN = E.ebreak().to_bytes(4, "little")

# Scramble values: a fixed pseudo-random table; a case picks rows from its seed.
_RNG = random.Random(0x5C4A_3B1E)
_ROWS = 256
_SCRAMBLE: tuple[tuple[int, ...], ...] = tuple(tuple(_RNG.getrandbits(64) for _ in range(16)) for _ in range(_ROWS))


#: Per-case constants, computed once: the thunks' scramble table per row, the planted registers,
#: the canary words, the zeroed data region.
_SCRAMBLE_BYTES: tuple[bytes, ...] = tuple(
    b"".join(v.to_bytes(8, "little") for v in row[: len(_THUNK_SCRAMBLED)]) for row in _SCRAMBLE
)
_PLANTED_REGS: tuple[tuple[int, int], ...] = tuple((_X[name], v) for name, v in PLANTED.items())
_CANARY_BYTES = b"".join(((CANARY + i) & MASK64).to_bytes(8, "little") for i in range(N_CANARIES))
#: Bytes of the per-case fill pattern (repeated over the stack and the data region).
_FILL_PERIOD = 64


@functools.cache
def _row_regs(ri: int, nv: int) -> tuple[tuple[int, int], ...]:
    """Scramble row ri's values for the argument registers the case leaves unset (a_nv..a7) and
    the temporaries t0-t6."""
    row = _SCRAMBLE[ri]
    return (*((A0 + i, row[i]) for i in range(nv, 8)), *((r, row[8 + k]) for k, r in enumerate((T0, T1, 7, 28, 29, 30, T6))))


def fill_pattern(seed: int) -> bytes:
    """The case's fill: ``_FILL_PERIOD`` bytes of non-zero 64-bit words derived from its seed.

    Memory an implementation might read before writing it (the stack below the entry sp, where
    the trampoline's slots live, and the data region) starts each run with this instead of zeros,
    so a missing clear (a skipped fmod_ret program's return slot) reads a value that shows.
    """
    rng = random.Random(seed ^ 0xF111_9A77)
    return b"".join((rng.getrandbits(64) | 1 << 63 | 1).to_bytes(8, "little") for _ in range(_FILL_PERIOD // 8))


def _filled(pattern: bytes, size: int) -> bytes:
    return (pattern * (size // len(pattern) + 1))[:size]


def _stack_image(stack_args: tuple[int, ...], pattern: bytes) -> bytes:
    """The stack region at the parent's call: the fill pattern, with the stack arguments at the
    entry sp and the canaries above them."""
    above = b"".join(v.to_bytes(8, "little") for v in stack_args) + _CANARY_BYTES
    return _filled(pattern, ENTRY_SP_OFFSET) + above + _filled(pattern, STACK_SIZE - ENTRY_SP_OFFSET - len(above))


class LayoutError(ValueError):
    """The case's regions overlap (or hit the fixed host pages): no run can be built."""


def host_addr(layout: Layout, role: int) -> int:
    """Address the JIT calls for a host role (a thunk in the hosts region)."""
    return (layout.hosts + THUNK_STRIDE * role) & MASK64


def _words(*ws: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in ws)


def _thunk(role: int) -> bytes:
    """lui t6, TABLE; ld a3..t5 from it; lui t6, HOST_FIXED; jalr zero, 4*role(t6)."""
    ws = [E.lui(T6, SCRAMBLE_TABLE >> 12)]
    ws += [E.ld(reg, T6, 8 * n) for n, reg in enumerate(_THUNK_SCRAMBLED)]
    ws += [E.lui(T6, HOST_FIXED >> 12), E.jalr(ZERO, T6, 4 * role)]
    code = _words(*ws)
    return code + _SENTINEL_INSN * ((THUNK_STRIDE - len(code)) // 4)


_HOSTS_BLOB = b"".join(_thunk(r) for r in range(N_ROLES))
assert len(_HOSTS_BLOB) <= OPS_OFFSET


def _ftrace_caller_stub() -> bytes:
    """The CALL_OPS fast path of ftrace_caller (SEMANTICS 1.3): literal -> ops -> direct call."""
    return _words(
        E.ld(T1, T0, -16),
        E.beq(T1, ZERO, 16),
        E.ld(T1, T1, OPS_DIRECT_CALL),
        E.beq(T1, ZERO, 8),  # the nop ops: no direct call, back into the body
        E.jalr(ZERO, T1, 0),
        E.jalr(ZERO, T0, 0),
    )


_FTRACE_CALLER = _ftrace_caller_stub()


def _call_seq(at_end: int, target: int) -> tuple[int, bytes]:
    """A call to ``target`` whose return address is ``at_end``: (start address, bytes)."""
    off = target - (at_end - 8)
    if in_auipc_jalr_range(off):
        hi = ((off + 0x800) >> 12) & 0xFFFFF
        return at_end - 8, _words(E.auipc(RA, hi), E.jalr(RA, RA, sign_extend(off, 12)))
    from emu.rv64.emitter import Emitter

    e = Emitter(rvc=False)
    e.emit_imm(T6, target)
    e.emit(E.jalr(RA, T6, 0))
    return at_end - e.pos, e.code


@functools.cache
def _u64s(n: int) -> Callable[[bytes], tuple[int, ...]]:
    """Unpacker for n little-endian u64 words (one per ctx size)."""
    return struct.Struct(f"<{n}Q").unpack


def _sext32(v: int) -> int:
    v &= 0xFFFFFFFF
    return (v - (1 << 32) if v >> 31 else v) & MASK64


@dataclass(frozen=True)
class _Built:
    """The case-independent part of a run that depends only on (impl, request, layout): cached."""

    sized: int | Refused
    image: Image | Refused | None


class _OwnedCache:
    """A bounded memo of pure results per owning object (a JIT, a patcher): an entry is a hit only
    for the very object that produced it (an id() alone is reused once an object is freed, and a
    different implementation must never get another's image or poke result)."""

    def __init__(self, limit: int = 512) -> None:  # keys hold layout addresses: bounded memory (docs/results.md)
        self._entries: dict[tuple[int, Any], tuple[object, Any]] = {}
        self._limit = limit

    def get(self, owner: object, key: Any) -> Any:
        hit = self._entries.get((id(owner), key))
        return hit[1] if hit is not None and hit[0] is owner else None

    def put(self, owner: object, key: Any, value: Any) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(id(owner), key)] = (owner, value)


class _Run:
    """Mutable per-run state the host calls fill (kept small: one object, plain lists)."""

    __slots__ = (
        "calls",
        "case",
        "entries",
        "events",
        "image",
        "impl",
        "last_run_ctx",
        "prog_index",
        "ret_raw",
        "row",
        "slots",
        "stack_hi",
        "stack_lo",
        "teardown_done",
        "teardown_pokes",
    )

    def __init__(self, case: Case, impl: Implementation, image: Image | None, row: int) -> None:
        self.case = case
        self.impl = impl
        self.image = image
        self.row = row
        self.calls = 0
        self.events: list[Event] = []
        self.entries: list[BodyEntry] = []
        self.last_run_ctx: int | None = None
        self.slots = case.function.nr_slots
        lay = case.layout
        self.prog_index = {lay.prog_addr(i): i for i in range(len(case.links))}
        self.ret_raw = impl.caps.ret_convention == "raw"
        self.stack_lo = lay.stack
        self.stack_hi = lay.stack + STACK_SIZE
        self.teardown_done = False
        self.teardown_pokes: list[PokeCheck] = []


class Scenario:
    """One engine with its host calls, mappings and caches; runs cases one after another.

    Not thread-safe; make one per worker (``scenario_for`` keeps one per engine).
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine: Engine = engine if engine is not None else get_engine()
        self._mapped: set[int] = set()
        self._shadow: dict[int, bytes] = {}  # code/data regions as written for the previous case
        self._stray: list[tuple[int, int]] = []  # guest writes outside every region: zero them next time
        self._run: _Run | None = None
        self._body_hook_addr: int | None = None
        self._built = _OwnedCache()
        self._pokes = _OwnedCache()
        self._torn = _OwnedCache()
        self.timing: dict[str, float] = {"jit": 0.0, "setup": 0.0, "run": 0.0, "collect": 0.0}
        eng = self.engine
        self._map(HOST_FIXED, 0x2000)
        for role in range(N_ROLES):
            eng.add_host_call(HOST_FIXED + 4 * role, self._host_fn(role))

    # ---- memory ------------------------------------------------------------------------------

    def _write(self, addr: int, data: bytes) -> None:
        """engine.write (the engine drops stale translations itself, also across mapped regions)."""
        self.engine.write(addr, data)

    def _map(self, addr: int, size: int) -> None:
        lo, hi = addr >> 12, (addr + size + 0xFFF) >> 12
        missing = [p for p in range(lo, hi) if p not in self._mapped]
        if missing:
            self.engine.map(missing[0] << 12, (missing[-1] + 1 - missing[0]) << 12)
            self._mapped.update(range(missing[0], missing[-1] + 1))

    def _unmap_unused(self, regions: list[tuple[int, bytes]]) -> None:
        """Unmap every page an earlier case mapped that this case does not use, so the address
        space is exactly a new engine's plus this case's regions: an access there faults as it
        would on a fresh engine (a runaway recursion, 47c9214dcbea, walks sp down to the first
        unmapped byte; a wild jump or load must not find an earlier case's memory). It also keeps
        the engine's memory bounded over long runs.
        """
        used = {p for a, d in regions for p in range(a >> 12, (a + len(d) + 0xFFF) >> 12)}
        used.update(range(HOST_FIXED >> 12, (HOST_FIXED + 0x2000) >> 12))
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
            if not gone.isdisjoint(range(addr >> 12, (addr + len(old) + 0xFFF) >> 12)):
                del self._shadow[addr]
                self._zero_mapped(addr, len(old))
        strays, self._stray = self._stray, []
        for addr, size in strays:
            if gone.isdisjoint(range(addr >> 12, (addr + size + 0xFFF) >> 12)):
                self._stray.append((addr, size))
            else:
                self._zero_mapped(addr, size)

    def _zero_mapped(self, addr: int, size: int) -> None:
        """Zero the part of [addr, addr+size) that lies on mapped pages."""
        pos, end = addr, addr + size
        while pos < end:
            nxt = min((pos | 0xFFF) + 1, end)
            if pos >> 12 in self._mapped:
                self._write(pos, bytes(nxt - pos))
            pos = nxt

    def reset(self) -> None:
        """Start over from an empty address space (after a run that ended in an exception, whose
        guest writes were never collected)."""
        self.engine.unmap_all()
        self._mapped.clear()
        self._shadow.clear()
        self._stray.clear()
        self._map(HOST_FIXED, 0x2000)

    def _install(self, regions: list[tuple[int, bytes]], volatile: frozenset[int]) -> None:
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
            self._write(addr, bytes(len(old)))
            zeroed.append((addr, addr + len(old)))
        for addr, size in self._stray:
            self._write(addr, bytes(size))
            zeroed.append((addr, addr + size))
        self._stray = []
        shadow = self._shadow
        for addr, data in regions:
            self._map(addr, len(data))
            if addr in volatile:
                self.engine.write(addr, data)  # data, not code: no translations to drop
            elif shadow.get(addr) != data or any(lo < addr + len(data) and addr < hi for lo, hi in zeroed):
                self._write(addr, data)
        self._shadow = new

    def _after_run(self, writes: tuple[Write, ...], volatile: frozenset[int]) -> None:
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

    # ---- host calls ----------------------------------------------------------------------------

    def _host_fn(self, role: int) -> Callable[[Engine], int | None]:
        def fn(eng: Engine) -> int | None:
            run = self._run
            if run is None:
                raise HostStop("host call outside a run")
            return self._host(eng, run, role)

        return fn

    def _frames(self, eng: Engine, fp: int, run: _Run) -> tuple[int, ...]:
        """Return addresses along the fp chain: [fp-8], then [[fp-16]-8], ... inside the stack.

        One read of the stack from the first frame record up (frames lie above it, usually within
        a few hundred bytes); a record outside that window is read on its own.
        """
        lo, hi = run.stack_lo, run.stack_hi
        if not (lo + 16 <= fp <= hi) or fp & 7:
            return ()
        base = fp - 16
        win = eng.read(base, min(hi - base, _FRAME_WINDOW))
        end = len(win) - 16
        out: list[int] = []
        for _ in range(MAX_FRAMES):
            if not (lo + 16 <= fp <= hi) or fp & 7:
                break
            off = fp - 16 - base
            if 0 <= off <= end:
                fp, ret = _U64X2(win, off)
            else:
                fp, ret = _U64X2(eng.read(fp - 16, 16), 0)
            out.append(ret)
        return tuple(out)

    def _host(self, eng: Engine, run: _Run, role: int) -> int | None:
        a0, a1, a2, sp, fp, ra = eng.regs(_HOST_X)
        row = _SCRAMBLE[(run.row + run.calls) % _ROWS]
        run.calls += 1
        case = run.case
        frames = self._frames(eng, fp, run)
        kind: EventKind
        link = -1
        ctx: tuple[int, ...] = ()
        nregs: int | None = None
        ip: int | None = None
        cookie: int | None = None
        ret: int = row[0]
        if role == ROLE_PROG_ENTER:
            kind = "prog_enter"
            link = run.prog_index.get(a0, -1)
            ret = case.links[link].enter if link >= 0 else 1
            run.last_run_ctx = a1
        elif role == ROLE_PROG_EXIT:
            kind = "prog_exit"
            link = run.prog_index.get(a0, -1)
            cookie = _try_u64(eng, a2)
        elif role == ROLE_TRAMP_ENTER:
            kind = "tramp_enter"
        elif role == ROLE_TRAMP_EXIT:
            kind = "tramp_exit"
        elif role == ROLE_HELPER:
            kind = "helper"
        else:
            kind = "prog"
            link = role - ROLE_PROG0
            if link >= len(case.links):
                raise HostStop(f"call to the program stub of link {link}; the case has {len(case.links)} links")
            n = run.slots
            vals = _u64s(n + 3)(eng.read((a0 - 16) & MASK64, 8 * (n + 3)))
            ip, nregs, ctx = vals[0], vals[1], vals[2:]
            if run.last_run_ctx is not None:
                cookie = _try_u64(eng, run.last_run_ctx)
            session = self._session_cookie(eng, run, link, a0, nregs) if case.links[link].session_cookie else None
            r0 = case.links[link].r0
            ret = r0 if run.ret_raw else _sext32(r0)
            eng.set_reg(A5, r0)
            eng.set_reg(A1, row[1])
            eng.set_reg(A2, row[2])
            run.events.append(Event(kind, link, a0, a1, a2, sp, fp, ra, ctx, nregs, ip, cookie, ret, frames, session))
            return ret
        eng.set_reg(A1, row[1])
        eng.set_reg(A2, row[2])
        run.events.append(Event(kind, link, a0, a1, a2, sp, fp, ra, ctx, nregs, ip, cookie, ret, frames))
        return ret

    def _session_cookie(self, eng: Engine, run: _Run, link: int, ctx: int, meta: int) -> int | None:
        """A session program's ``bpf_session_cookie()``: read ctx[-index] (index in bits 8-15 of
        func_meta) and, in the fentry run (IS_RETURN clear), write the link's token there. A slot
        outside the stack is not touched (the invariants report the index)."""
        index = (meta >> COOKIE_INDEX_SHIFT) & 0xFF
        addr = (ctx - 8 * index) & MASK64
        if not (run.stack_lo <= addr and addr + 8 <= run.stack_hi) or addr & 7:
            return None
        seen = int.from_bytes(eng.read(addr, 8), "little")
        if not meta >> IS_RETURN_SHIFT & 1:
            eng.write(addr, session_token(link).to_bytes(8, "little"))
        return seen

    def _on_body(self, eng: Engine, addr: int) -> None:
        run = self._run
        if run is None:
            return
        vals = eng.regs(_BODY_X)
        sp = vals[8]
        nstack = max(0, run.slots - 8)
        stack: tuple[int, ...] = ()
        if nstack:
            try:
                stack = _u64s(nstack)(eng.read(sp, 8 * nstack))
            except Exception:  # an sp the trampoline broke: the invariants see no stack args
                stack = ()
        run.entries.append(BodyEntry(tuple(vals[:8]), stack, sp, vals[9], addr))
        if run.case.teardown and not run.teardown_done:
            run.teardown_done = True
            self._teardown(run)

    def _teardown(self, run: _Run) -> None:
        """Retire the image while the original runs: ip_after_call NOP -> JUMP ip_epilogue."""
        img = run.image
        skips = getattr(img, "skips", ())
        if img is not None and img.ip_after_call is None and skips:
            self._detach_fexit(run, skips)
            return
        if img is None or img.ip_after_call is None or img.ip_epilogue is None:
            return
        eng = self.engine
        site = eng.read(img.ip_after_call, 8)
        res = run.impl.jit.text_poke(img.ip_after_call, site, "nop", "jump", 0, img.ip_epilogue)
        if res.rc == 0:
            self._write(img.ip_after_call, res.site[:8])
            self._shadow.pop(run.case.layout.image, None)
        else:
            run.teardown_pokes.append(PokeCheck("teardown", "bpf_arch_text_poke", res.rc, res.site, site))

    def _detach_fexit(self, run: _Run, skips: tuple[tuple[str, int, int], ...]) -> None:
        """7.x (no ip_after_call): the same outcome by detaching every fexit program while the
        original runs: the kernel patches each one's nop into a jump over its call
        (``arch_bpf_trampoline_skip``, docs/kernel.md)."""
        tramp_skip = getattr(run.impl.jit, "tramp_skip", None)
        if tramp_skip is None:
            return
        for kind, nop, target in skips:
            if kind not in ("fexit", "fsession"):  # a session program: both its nops (the first already ran)
                continue
            site = self.engine.read(nop, 8)
            res = tramp_skip(nop, site, target)
            if res.rc == 0:
                self._write(nop, res.site[:8])
                self._shadow.pop(run.case.layout.image, None)
            else:
                run.teardown_pokes.append(PokeCheck("teardown", "arch_bpf_trampoline_skip", res.rc, res.site, site))

    def _set_body_hook(self, addr: int | None) -> None:
        """An observer at the body's first instruction: records, never redirects control. None:
        no body (struct_ops) and no observer, so none is left where an earlier case's body was."""
        if addr == self._body_hook_addr:
            return
        if self._body_hook_addr is not None:
            self.engine.remove_observer(self._body_hook_addr)
            self._body_hook_addr = None
        if addr is not None:
            self.engine.add_observer(addr, self._on_body)
            self._body_hook_addr = addr

    def _foreign_entries(self, crossings: tuple[tuple[int, int, int], ...], func: int, body_addr: int,
                         function: tuple[int, int]) -> tuple[int, ...]:
        """The pcs where control came into the traced function from outside other than its start
        (the parent's call, the first entry), its body, or the return address of a call the
        function made (a block inside that ends in a call, then left). I-SLED-CONSISTENT."""
        lo, hi = function
        returns: set[int] = set()
        out: list[int] = []
        first = True
        for frm_lo, frm_hi, to in crossings:
            if lo <= to < hi:
                if not (to == body_addr or (first and to == func) or to in returns):
                    out.append(to)
                first = False
            elif frm_hi > frm_lo and self._ends_in_call(frm_lo, frm_hi):
                returns.add(frm_hi)
        return tuple(out)

    def _ends_in_call(self, lo: int, hi: int) -> bool:
        """Whether the block [lo, hi) ends in a call (jal/jalr with a link register, c.jalr)."""
        try:
            code = self.engine.read(lo, hi - lo)
        except EngineError:
            return False
        i, last = 0, 0
        while i < len(code):
            last = i
            i += 2 if code[i] & 3 != 3 else 4
        insn = code[last:]
        if len(insn) == 4:
            w = int.from_bytes(insn, "little")
            return w & 0x7F in (0x6F, 0x67) and (w >> 7) & 31 != 0
        if len(insn) == 2:
            h = int.from_bytes(insn, "little")
            return h & 0xF07F == 0x9002 and (h >> 7) & 31 != 0  # c.jalr rs1 (rs2 = 0)
        return False

    # ---- building ----------------------------------------------------------------------------

    def request(self, case: Case, grouped_order: tuple[int, ...], flags: int) -> TrampRequest:
        """The TrampRequest for a case: links in core order, host calls in the hosts region."""
        lay = case.layout
        fn = case.function
        model = FuncModel(
            args=tuple(ArgModel(a.size, a.is_struct, a.signed) for a in fn.args),
            ret_size=fn.ret_size,
            ret_signed=fn.ret_signed,
        )
        links = tuple(
            LinkReq(case.links[i].kind, lay.prog_addr(i), host_addr(lay, ROLE_PROG0 + i), case.links[i].cookie,
                    case.links[i].session_cookie)
            for i in grouped_order
        )
        return TrampRequest(
            model=model,
            links=links,
            flags=flags,
            func_addr=lay.func,
            im=lay.im,
            prog_enter=host_addr(lay, ROLE_PROG_ENTER),
            prog_exit=host_addr(lay, ROLE_PROG_EXIT),
            tramp_enter=host_addr(lay, ROLE_TRAMP_ENTER),
            tramp_exit=host_addr(lay, ROLE_TRAMP_EXIT),
        )

    def _jit(self, impl: Implementation, req: TrampRequest, image_addr: int, page: int) -> _Built:
        key = (req, image_addr, page)
        hit: _Built | None = self._built.get(impl.jit, key)
        if hit is not None:
            return hit
        sized = impl.jit.size(req)
        image: Image | Refused | None = None
        if not isinstance(sized, Refused) and sized <= page:
            image = impl.jit.emit(req, image_addr, sized)
        built = _Built(sized, image)
        self._built.put(impl.jit, key, built)
        return built

    def _bpf_poke(self, impl: Implementation, ip: int, site: bytes, old: PokeKind, new: PokeKind,
                  old_addr: int, new_addr: int) -> PokeResult:
        key = ("poke", ip, site, old, new, old_addr, new_addr)
        hit = self._pokes.get(impl.jit, key)
        if isinstance(hit, PokeResult):
            return hit
        res = impl.jit.text_poke(ip, site, old, new, old_addr, new_addr)
        self._pokes.put(impl.jit, key, res)
        return res

    # ---- the run -------------------------------------------------------------------------------

    def run(self, case: Case, impl: Implementation, budget: int = DEFAULT_BUDGET) -> Observation:
        """Build the memory image for (case, impl), run it, and report what happened."""
        t0 = time.perf_counter()
        lay = case.layout
        parent_ret = (lay.parent + PARENT_RET_OFFSET) & MASK64
        core = core_stage(case)
        if isinstance(core, CoreRefusal):
            return Observation(refused=core.errno, refused_reason=core.reason, parent_ret=parent_ret)
        caps = impl.caps
        sled = _sled_of(caps, case)
        if not case.links and case.target != "struct_ops":
            # Nothing attached: the core unregisters an empty trampoline, so the sled stays as
            # ftrace (or the BPF JIT) left it and the function simply runs.
            return self._run_image(case, impl, sled, None, None, budget, t0)
        if case.target == "kernel_function" and not caps.kernel_direct_calls:
            # No trampoline attaches, but ftrace still patches this sled (to ftrace_caller): its
            # in-flight states are judged all the same (I-TORN).
            return Observation(refused=ENOTSUPP, refused_reason="register_fentry: no ftrace direct calls",
                               parent_ret=parent_ret, torn=self._torn_states(case, impl, sled, lay.ftrace_caller))
        req = self.request(case, core.order, core.flags)
        built = self._jit(impl, req, lay.image, caps.page_size)
        t1 = time.perf_counter()
        self.timing["jit"] += t1 - t0
        if isinstance(built.sized, Refused):
            return Observation(refused=built.sized.errno, refused_reason=built.sized.reason, parent_ret=parent_ret)
        sized = built.sized
        if sized > caps.page_size:
            return Observation(refused=E2BIG, refused_reason=f"sized {sized} bytes > page {caps.page_size}",
                               sized_len=sized, parent_ret=parent_ret)
        image = built.image
        assert image is not None
        if isinstance(image, Refused):
            return Observation(refused=image.errno, refused_reason=image.reason, sized_len=sized, parent_ret=parent_ret)
        return self._run_image(case, impl, sled, image, sized, budget, t1)

    def _run_image(self, case: Case, impl: Implementation, sled: SledLayout, image: Image | None,
                   sized: int | None, budget: int, t1: float) -> Observation:
        """Lay out parent, sled (patched to ``image``, or as initialised when ``image`` is None:
        nothing attached), body, image and hosts; run; collect the Observation."""
        lay = case.layout
        parent_ret = (lay.parent + PARENT_RET_OFFSET) & MASK64
        body_addr = (lay.func + sled.entry_bytes) & MASK64 if case.target != "struct_ops" else 0
        regions: list[tuple[int, bytes]] = []
        post_init = b""
        patched = b""
        if image is None:
            post_init = patched = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
        elif case.target == "kernel_function":
            post_init = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
            patched = impl.patcher.patch(sled, lay.func, image.addr, lay.ftrace_caller)
            if sled.call_ops:
                ops = (lay.hosts + OPS_OFFSET) & MASK64
                patched = ops.to_bytes(8, "little") + patched[8:]
                regions.append((ops, bytes(OPS_DIRECT_CALL) + image.addr.to_bytes(8, "little")))
                regions.append((lay.ftrace_caller, _FTRACE_CALLER))
        elif case.target == "bpf_prog":
            post_init = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
            res = self._bpf_poke(impl, lay.func, post_init, "nop", "call", 0, image.addr)
            if res.rc:
                return Observation(refused=res.rc, refused_reason=f"bpf_arch_text_poke NOP->CALL: errno {res.rc}",
                                   sized_len=sized, emitted_len=image.used_len, parent_ret=parent_ret,
                                   image_addr=image.addr)
            patched = res.site
        helper = host_addr(lay, ROLE_HELPER)
        # the traced function's bytes (sled and generated body), watched for I-SLED-CONSISTENT;
        # not for a compiled function (its placement spans several regions)
        function: tuple[int, int] | None = None
        elf_writable: frozenset[int] = frozenset()
        if case.function.compiled is not None:
            try:
                placed = place(case.function.compiled, lay.func, patched, sled.pre_bytes)
            except ElfError as exc:
                raise LayoutError(str(exc)) from None
            regions.extend(placed.regions)
            elf_writable = placed.writable
        elif case.target == "kernel_function":
            body = compile_body(case.function.body, case.function.nr_slots, body_addr, helper)
            regions.append(((lay.func - sled.pre_bytes) & MASK64, patched + body))
        elif case.target == "bpf_prog":
            body = compile_body(case.function.body, case.function.nr_slots, body_addr + 4, helper)
            regions.append(((lay.func - sled.pre_bytes) & MASK64, patched + _TCC_INIT + body))
        if case.target != "struct_ops" and case.function.compiled is None:
            function = (regions[-1][0], regions[-1][0] + len(regions[-1][1]))
        if image is not None:
            regions.append((image.addr, image.code))
        regions.append((lay.hosts, _HOSTS_BLOB))
        call_target = image.addr if image is not None and case.target == "struct_ops" else lay.func
        start, call = _call_seq(parent_ret, call_target)
        regions.append((start, call + _SENTINEL_INSN))
        # data and stack: rewritten every time (the guest writes there), with the case's fill
        pattern = fill_pattern(case.seed)
        regions.append((lay.data, _filled(pattern, DATA_SIZE)))
        entry_sp = (lay.stack + ENTRY_SP_OFFSET) & MASK64
        values = case.function.values
        stack_args = values[8:]
        canary_at = entry_sp + 8 * len(stack_args)
        regions.append((lay.stack, _stack_image(stack_args, pattern)))
        _check_overlaps(regions)
        self._unmap_unused(regions)
        volatile = frozenset((lay.data, lay.stack)) | elf_writable
        self._install(regions, volatile)

        # registers as the parent leaves them at its call (every other register as on a new CPU)
        ri = ((case.seed * 0x9E3779B97F4A7C15) & MASK64) >> 56
        self.engine.write(SCRAMBLE_TABLE, _SCRAMBLE_BYTES[ri])
        nv = min(8, len(values))
        regs = [*_PLANTED_REGS, *[(A0 + i, values[i]) for i in range(nv)], *_row_regs(ri, nv), (SP, entry_sp)]
        if case.target == "bpf_prog":
            regs.append((A6, TCC_PLANTED))  # the caller's tail-call count (a BPF target has <= 5 slots)
        regs.append((RA, _SCRAMBLE[ri][15]))
        self.engine.reset_cpu()
        self.engine.set_regs(regs)
        self._set_body_hook(body_addr or None)
        self.engine.watch(function)
        run = _Run(case, impl, image, (case.seed ^ (case.seed >> 17)) % _ROWS)
        self._run = run
        t2 = time.perf_counter()
        self.timing["setup"] += t2 - t1
        try:
            res_run: RunResult = self.engine.run(start, parent_ret, budget, ((lay.stack, entry_sp),))
        finally:
            self._run = None
        t3 = time.perf_counter()
        self.timing["run"] += t3 - t2

        writes = tuple(Write(w.addr, w.size, w.value, w.pc) for w in res_run.writes)
        self._after_run(writes, volatile)
        foreign = self._foreign_entries(res_run.crossings, lay.func, body_addr, function) if function else ()
        trap: Trap | None = None
        final: tuple[int, ...] | None = None
        return_pc: int | None = None
        if res_run.stop == "sentinel":
            return_pc = res_run.pc
            final = tuple(self.engine.regs(_FINAL_X))
        else:
            trap = Trap(res_run.stop, res_run.pc, res_run.fault_addr, res_run.detail)
        canaries_ok = self.engine.read(canary_at, 8 * N_CANARIES) == _CANARY_BYTES
        if image is not None:
            pokes = tuple(run.teardown_pokes) + self._poke_checks(case, impl, sled, image.addr, post_init, patched)
            torn = self._torn_states(case, impl, sled, image.addr)
        else:
            pokes = ()
            torn = self._torn_states(case, impl, sled, lay.ftrace_caller)
        obs = Observation(
            refused=None,
            sized_len=sized,
            emitted_len=image.used_len if image is not None else None,
            events=tuple(run.events),
            body_entries=tuple(run.entries),
            foreign_entries=foreign,
            final=final,
            return_pc=return_pc,
            trap=trap,
            writes=writes,
            steps=res_run.steps,
            budget=budget,
            entry_sp=entry_sp,
            canaries_ok=canaries_ok,
            pokes=pokes,
            torn=torn,
            parent_ret=parent_ret,
            body_addr=body_addr,
            image_addr=image.addr if image is not None else None,
            ip_after_call=image.ip_after_call if image is not None else None,
            ip_epilogue=image.ip_epilogue if image is not None else None,
        )
        self.timing["collect"] += time.perf_counter() - t3
        return obs

    # ---- patching experiments (I-POKE, I-TORN), pure and cached --------------------------------

    def _poke_checks(self, case: Case, impl: Implementation, sled: SledLayout, image: int,
                     post_init: bytes, patched: bytes) -> tuple[PokeCheck, ...]:
        lay = case.layout
        key = ("checks", case.target, sled, lay.func, lay.ftrace_caller, image)
        hit = self._pokes.get(impl, key)
        if isinstance(hit, tuple):
            return hit
        out: list[PokeCheck] = []
        if case.target == "bpf_prog":
            mech = "bpf_arch_text_poke"
            jit = impl.jit
            r = jit.text_poke(lay.func, patched, "call", "nop", image, 0)
            out.append(PokeCheck("unpatch", mech, r.rc, r.site, post_init))
            r = jit.text_poke(lay.func, patched, "call", "call", image, image)
            out.append(PokeCheck("call->call", mech, r.rc, r.site, patched))
            r = jit.text_poke(lay.func, patched, "nop", "call", 0, image)
            out.append(PokeCheck("wrong_old nop->call on a call site", mech, r.rc, r.site, patched))

            def call_to(target: int) -> bytes | None:
                enc = jit.text_poke(lay.func, post_init, "nop", "call", 0, target)
                return None if enc.rc else enc.site

            for k, wrong in _one_word_olds(patched, call_to, image, sled.pre_bytes):
                r = jit.text_poke(lay.func, patched, "call", "call", wrong, image)
                out.append(PokeCheck(f"wrong_old call->call, old differs in word {k} only", mech, r.rc, r.site,
                                     patched))
            far = (lay.func + (1 << 31) + 0x1000) & MASK64
            r = jit.text_poke(lay.func, post_init, "nop", "call", 0, far)
            out.append(PokeCheck("out_of_reach nop->call", mech, r.rc, r.site, post_init))
        elif case.target == "kernel_function":
            p = impl.patcher
            un = p.unpatch(sled, lay.func, lay.ftrace_caller)
            out.append(PokeCheck("unpatch", "ftrace_make_nop", 0, un, p.init_sled(sled, lay.func, lay.ftrace_caller)))
            ft = getattr(p, "ftrace", p)
            modify = getattr(ft, "modify_call", None)
            if modify is not None:
                plain = p.patch(sled, lay.func, image, lay.ftrace_caller)
                # a site the mechanism must refuse, per what it compares (patchers.wrong_old_site)
                wrong_old = getattr(ft, "wrong_old_site", None)
                bad, wrong = wrong_old(sled, lay.func, plain, image, lay.ftrace_caller) if wrong_old else (plain, image)
                if (bad, wrong) != (plain, image):
                    r = modify(sled, lay.func, bad, wrong, image, lay.ftrace_caller)
                    out.append(PokeCheck("wrong_old modify_call", "ftrace_modify_call", r.rc, r.site, bad))
                # the whole call is compared (detour16: its auipc/jalr pair); the atomic scheme
                # (v6.16+) compares one word by design, which the check above covers
                olds = [] if getattr(ft, "scheme", None) == "atomic" else _one_word_olds(
                    plain, lambda t: p.patch(sled, lay.func, t, lay.ftrace_caller), image, sled.pre_bytes)
                for k, wrong in olds:
                    r = modify(sled, lay.func, plain, wrong, image, lay.ftrace_caller)
                    out.append(PokeCheck(f"wrong_old modify_call, old differs in word {k} only", "ftrace_modify_call",
                                         r.rc, r.site, plain))
                r = modify(sled, lay.func, plain, image, image, lay.ftrace_caller)
                # v6.16+ always re-points the jalr at ftrace_caller (the literal reaches the target)
                via = lay.ftrace_caller if getattr(ft, "scheme", None) == "atomic" else image
                out.append(PokeCheck("call->call", "ftrace_modify_call", r.rc, r.site,
                                     p.patch(sled, lay.func, via, lay.ftrace_caller)))
        checks = tuple(out)
        self._pokes.put(impl, key, checks)
        return checks

    def _torn_states(self, case: Case, impl: Implementation, sled: SledLayout, image: int) -> tuple[TornState, ...]:
        if case.target != "kernel_function":
            return ()
        ft = getattr(impl.patcher, "ftrace", None)
        if ft is None or not hasattr(ft, "concurrency"):
            return ()
        lay = case.layout
        key = (sled, lay.func, lay.ftrace_caller, image)
        hit: tuple[TornState, ...] | None = self._torn.get(ft, key)
        if hit is not None:
            return hit
        from emu.impls.torn import torn_states

        states = torn_states(ft, sled, lay.func, None, image, lay.ftrace_caller)
        states += torn_states(ft, sled, lay.func, image, None, lay.ftrace_caller)
        self._torn.put(ft, key, states)
        return states


#: Moves of a call target that change only the jalr word (small) or only the auipc word (a page).
_ONE_WORD_MOVES = (-0x10, 0x10, -0x100, 0x100, -0x1000, 0x1000, -0x2000, 0x2000)


def _one_word_olds(site: bytes, call_to: Callable[[int], bytes | None], target: int,
                   pre_bytes: int) -> list[tuple[int, int]]:
    """Wrong old targets for the poke experiments: for each instruction word of ``site`` (the call
    to ``target``), one target near it whose call, as the implementation itself encodes it
    (``call_to``; None when out of reach), differs from ``site`` in that word alone. A poke that
    compares only some words of the old sequence accepts one of them (I-POKE). Returns
    (word index from the function entry, wrong target) pairs."""
    found: dict[int, int] = {}
    words = range(0, len(site), 4)
    for move in _ONE_WORD_MOVES:
        wrong = (target + move) & MASK64
        enc = call_to(wrong)
        if enc is None or len(enc) != len(site):
            continue
        diff = [i for i in words if enc[i : i + 4] != site[i : i + 4]]
        if len(diff) == 1:
            found.setdefault((diff[0] - pre_bytes) // 4, wrong)
    return sorted(found.items())


def _try_u64(eng: Engine, addr: int) -> int | None:
    try:
        return eng.read_u64(addr)
    except EngineError:
        return None


def _sled_of(caps: Capabilities, case: Case) -> SledLayout:
    sled = caps.sled_for(case.target, case.sled)
    if sled is not None:
        return sled
    if case.target == "struct_ops":
        return SledLayout("struct_ops", 1, 0, 4, "direct")
    raise LayoutError(f"{caps.name} declares no {case.target} sled {case.sled} (an invalid case for it)")


def _check_overlaps(regions: list[tuple[int, bytes]]) -> None:
    spans = sorted((a, a + len(d)) for a, d in regions)
    spans.append((HOST_FIXED, HOST_FIXED + 0x2000))
    spans.sort()
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise LayoutError(f"regions [{lo1:#x}, {hi1:#x}) and [{lo2:#x}, {hi2:#x}) overlap")


_SCENARIOS: dict[int, tuple[Engine, Scenario]] = {}


def scenario_for(engine: Engine | None = None) -> Scenario:
    """The worker's Scenario for ``engine`` (None: the process-wide default engine)."""
    key = 0 if engine is None else id(engine)
    hit = _SCENARIOS.get(key)
    if hit is None:
        sc = Scenario(engine)
        _SCENARIOS[key] = (sc.engine, sc)
        return sc
    return hit[1]


def run_case(case: Case, impl: Implementation, *, engine: Engine | None = None,
             budget: int = DEFAULT_BUDGET, fresh: bool = False) -> Observation:
    """Run ``case`` on ``impl`` and return what happened (see the module docstring).

    ``fresh``: on a new engine with no history (not the worker's, and not kept afterwards): what
    a finding is re-judged on before it is reported (fuzz.fresh)."""
    if fresh:
        return Scenario(get_engine()).run(case, impl, budget)
    return scenario_for(engine).run(case, impl, budget)
