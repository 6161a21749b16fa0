"""The host-call ABI and what a run records: host-call events, body entries, foreign entries.

Each host role (prog enter/exit, tramp enter/exit, the body's helper, each program) is a thunk in
the hosts region that ends at ``HOST_FIXED + 4*role`` (``memory_map``), where the engine runs
the role's Python function: it records an ``Event`` (arguments, the fp chain, for a program its
ctx, func_meta, ip, cookie and session cookie) and sets a0 (return), a1, a2 (and a5 for a
program) from the case, then the engine returns to ra. An observer at the body's first
instruction records each ``BodyEntry``; after the run the engine's crossings into the watched
traced function give its foreign entries (I-SLED-CONSISTENT).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from sledfuzz.emu.engine import Engine, EngineError, HostStop
from sledfuzz.emu.impls.api import Image, Implementation
from sledfuzz.emu.rv64.regs import A0, A1, A2, A5, RA, S0, SP
from sledfuzz.emu.scenario.memory_map import (
    HOST_FIXED,
    N_ROLES,
    ROLE_HELPER,
    ROLE_PROG0,
    ROLE_PROG_ENTER,
    ROLE_PROG_EXIT,
    ROLE_TRAMP_ENTER,
    ROLE_TRAMP_EXIT,
    SCRAMBLE,
    SCRAMBLE_ROWS,
)
from sledfuzz.model.case import MASK64, STACK_SIZE, Case
from sledfuzz.model.contract import COOKIE_INDEX_SHIFT, IS_RETURN_SHIFT, session_token
from sledfuzz.model.observation import BodyEntry, Event, EventKind, PokeCheck

#: What each host role is called with (the kernel's prototypes), in a0, a1, ...; a program: its ctx.
HOST_ARGS: dict[int, tuple[str, ...]] = {
    ROLE_PROG_ENTER: ("prog", "run_ctx"),
    ROLE_PROG_EXIT: ("prog", "start", "run_ctx"),
    ROLE_TRAMP_ENTER: ("im",),
    ROLE_TRAMP_EXIT: ("im",),
    ROLE_HELPER: (),
}
#: Host roles whose kernel function returns void: a0 afterwards is whatever the callee left.
VOID_ROLES = frozenset({ROLE_PROG_EXIT, ROLE_TRAMP_ENTER, ROLE_TRAMP_EXIT})

MAX_FRAMES = 3
#: Bytes of stack ``_frames`` reads at once from the first frame record up.
_FRAME_WINDOW = 512
_U64X2 = struct.Struct("<QQ").unpack_from
_ARG_X = tuple(range(A0, A0 + 8))
_BODY_X = (*_ARG_X, SP, RA)
_HOST_X = (A0, A1, A2, SP, S0, RA)


def role_name(role: int) -> str:
    """The kernel function a host role stands for (``prog[i]``: the i-th link's program)."""
    names = {ROLE_PROG_ENTER: "__bpf_prog_enter", ROLE_PROG_EXIT: "__bpf_prog_exit",
             ROLE_TRAMP_ENTER: "__bpf_tramp_enter", ROLE_TRAMP_EXIT: "__bpf_tramp_exit", ROLE_HELPER: "helper"}
    return names.get(role, f"prog[{role - ROLE_PROG0}]")


@functools.cache
def _u64s(n: int) -> Callable[[bytes], tuple[int, ...]]:
    """Unpacker for n little-endian u64 words (one per ctx size)."""
    return struct.Struct(f"<{n}Q").unpack


def _sext32(v: int) -> int:
    v &= 0xFFFFFFFF
    return (v - (1 << 32) if v >> 31 else v) & MASK64


def _try_u64(eng: Engine, addr: int) -> int | None:
    try:
        return eng.read_u64(addr)
    except EngineError:
        return None


class RunState:
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


class HostCalls:
    """The host calls and the body observer of one engine, registered once; they record into the
    current ``run`` (None between runs). ``on_first_body`` runs at the first body entry of a
    teardown case (the teardown poke, ``experiments``)."""

    def __init__(self, engine: Engine, on_first_body: Callable[[RunState], None]) -> None:
        self.engine = engine
        self.run: RunState | None = None
        self._on_first_body = on_first_body
        self._body_hook_addr: int | None = None
        for role in range(N_ROLES):
            engine.add_host_call(HOST_FIXED + 4 * role, self._host_fn(role))

    def _host_fn(self, role: int) -> Callable[[Engine], int | None]:
        def fn(eng: Engine) -> int | None:
            run = self.run
            if run is None:
                raise HostStop("host call outside a run")
            return self._host(eng, run, role)

        return fn

    def _frames(self, eng: Engine, fp: int, run: RunState) -> tuple[int, ...]:
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

    def _host(self, eng: Engine, run: RunState, role: int) -> int | None:
        a0, a1, a2, sp, fp, ra = eng.regs(_HOST_X)
        row = SCRAMBLE[(run.row + run.calls) % SCRAMBLE_ROWS]
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

    def _session_cookie(self, eng: Engine, run: RunState, link: int, ctx: int, meta: int) -> int | None:
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
        run = self.run
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
            self._on_first_body(run)

    def observe_body(self, addr: int | None) -> None:
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


def foreign_entries(engine: Engine, crossings: tuple[tuple[int, int, int], ...], func: int, body_addr: int,
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
        elif frm_hi > frm_lo and _ends_in_call(engine, frm_lo, frm_hi):
            returns.add(frm_hi)
    return tuple(out)


def _ends_in_call(engine: Engine, lo: int, hi: int) -> bool:
    """Whether the block [lo, hi) ends in a call (jal/jalr with a link register, c.jalr)."""
    try:
        code = engine.read(lo, hi - lo)
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
