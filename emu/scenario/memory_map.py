"""The memory map of a run: where everything lives, the host thunks, and what the parent plants.

All addresses come from the case's layout, except the two fixed host pages:

* ``parent + 0x800 - len``: the parent's call (``auipc ra; jalr ra``, or ``li t6; jalr ra`` when out
  of reach) to the traced function (struct_ops: to the trampoline image); its return address
  ``parent + PARENT_RET_OFFSET`` is the sentinel. What the parent plants before the call (s0-s11,
  gp, tp, a0-a7, the stack arguments at sp+0.., canaries above them) is written by the host
  before the run starts at that call: same state, no guest stores to filter out of the log.
* ``[func - pre, func + entry)``: the patched sled, then the body (the compiled mini-language
  body; BPF programs: after ``addi a6, zero, 33``), or a compiled object placed around it.
* ``layout.ftrace_caller`` (CALL_OPS sleds only): ``ld t1,-16(t0); beqz; ld t1,DIRECT(t1); beqz;
  jr t1; jr t0`` (SEMANTICS 1.3: the ops pointer from the literal at func-8, its direct call).
* ``layout.image``: the JIT's image, sized then emitted at that address.
* ``layout.hosts + 64*role``: one thunk per host role (``host_calls``). A thunk loads the per-case
  scramble values into a3-a7, t0-t5 and jumps to ``HOST_FIXED + 4*role``, where the engine's host
  call runs. So each host call scrambles every caller-saved register deterministically from the
  case seed (t6 ends holding ``HOST_FIXED``) at the cost of three register writes in Python.

The stack and the data region start each run with the case's fill pattern (``fill_pattern``:
non-zero words from the case seed), not zeros, so an implementation that reads a slot it never
wrote (a missing clear) reads a value that shows.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass

from sledfuzz.emu.bodygen import compile_body
from sledfuzz.emu.elf.image import ElfError
from sledfuzz.emu.elf.placement import place
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.offsets import in_auipc_jalr_range, sign_extend
from sledfuzz.emu.rv64.regs import A0, A3, A4, A5, A6, A7, RA, SP, T0, T1, T2, T3, T4, T5, T6, ZERO, reg_number
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import DATA_SIZE, MASK64, STACK_SIZE, Case, Layout
from sledfuzz.model.contract import HOSTS_SPAN, MAX_TRAMP_LINKS, PARENT_RET_OFFSET, PLANTED, TCC_PLANTED

#: The fixed page whose addresses the engine intercepts (a ``lui``-reachable user-space address no
#: kernel-like layout uses), and the scramble table the thunks load from (the page after it).
HOST_FIXED = 0x7FF0_0000
SCRAMBLE_TABLE = HOST_FIXED + 0x1000
#: Both fixed host pages: always mapped, never part of a case.
HOST_PAGES = (HOST_FIXED, 0x2000)
THUNK_STRIDE = 64

ROLE_PROG_ENTER = 0
ROLE_PROG_EXIT = 1
ROLE_TRAMP_ENTER = 2
ROLE_TRAMP_EXIT = 3
ROLE_HELPER = 4
ROLE_PROG0 = 5
MAX_PROGS = MAX_TRAMP_LINKS  # the core refuses more before any JIT runs
N_ROLES = ROLE_PROG0 + MAX_PROGS

#: The ops object (v6.16 CALL_OPS) lives in the hosts region after the thunks.
OPS_OFFSET = 0xF00
OPS_DIRECT_CALL = 0x10

#: Stack: the parent's sp at its call, and the canary words above its stack arguments.
ENTRY_SP_OFFSET = STACK_SIZE - 0x100
CANARY = 0xCA9A_71E5_0000_0000
N_CANARIES = 8
CANARY_BYTES = b"".join(((CANARY + i) & MASK64).to_bytes(8, "little") for i in range(N_CANARIES))

#: Registers a thunk loads from the scramble table, in table order.
_THUNK_SCRAMBLED = (A3, A4, A5, A6, A7, T0, T1, T2, T3, T4, T5)
_TCC_INIT = E.addi(A6, ZERO, 33).to_bytes(4, "little")  # addi a6, zero, 33
SENTINEL_INSN = E.ebreak().to_bytes(4, "little")

# Scramble values: a fixed pseudo-random table; a case picks rows from its seed.
_RNG = random.Random(0x5C4A_3B1E)
SCRAMBLE_ROWS = 256
SCRAMBLE: tuple[tuple[int, ...], ...] = tuple(
    tuple(_RNG.getrandbits(64) for _ in range(16)) for _ in range(SCRAMBLE_ROWS)
)
#: The thunks' scramble table per row, and the planted registers, computed once.
_SCRAMBLE_BYTES: tuple[bytes, ...] = tuple(
    b"".join(v.to_bytes(8, "little") for v in row[: len(_THUNK_SCRAMBLED)]) for row in SCRAMBLE
)
_PLANTED_REGS: tuple[tuple[int, int], ...] = tuple((reg_number(name), v) for name, v in PLANTED.items())
#: Bytes of the per-case fill pattern (repeated over the stack and the data region).
_FILL_PERIOD = 64

Region = tuple[int, bytes]


class LayoutError(ValueError):
    """The case's regions overlap (or hit the fixed host pages): no run can be built."""


def host_addr(layout: Layout, role: int) -> int:
    """Address the JIT calls for a host role (a thunk in the hosts region)."""
    return (layout.hosts + THUNK_STRIDE * role) & MASK64


def host_role_at(pc: int) -> int | None:
    """The host role whose engine host call sits at ``pc`` (None: not on the fixed host page)."""
    return (pc - HOST_FIXED) // 4 if HOST_FIXED <= pc < HOST_FIXED + 0x1000 else None


def thunk_role_at(layout: Layout, pc: int) -> int | None:
    """The host role whose thunk ``pc`` lies in (None: outside the hosts region)."""
    return (pc - layout.hosts) // THUNK_STRIDE if layout.hosts <= pc < layout.hosts + HOSTS_SPAN else None


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
    above = b"".join(v.to_bytes(8, "little") for v in stack_args) + CANARY_BYTES
    return _filled(pattern, ENTRY_SP_OFFSET) + above + _filled(pattern, STACK_SIZE - ENTRY_SP_OFFSET - len(above))


def _words(*ws: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in ws)


def _thunk(role: int) -> bytes:
    """lui t6, TABLE; ld a3..t5 from it; lui t6, HOST_FIXED; jalr zero, 4*role(t6)."""
    ws = [E.lui(T6, SCRAMBLE_TABLE >> 12)]
    ws += [E.ld(reg, T6, 8 * n) for n, reg in enumerate(_THUNK_SCRAMBLED)]
    ws += [E.lui(T6, HOST_FIXED >> 12), E.jalr(ZERO, T6, 4 * role)]
    code = _words(*ws)
    return code + SENTINEL_INSN * ((THUNK_STRIDE - len(code)) // 4)


HOSTS_BLOB = b"".join(_thunk(r) for r in range(N_ROLES))
assert len(HOSTS_BLOB) <= OPS_OFFSET


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


def call_ops_regions(layout: Layout, patched: bytes, image_addr: int) -> tuple[bytes, list[Region]]:
    """A CALL_OPS sled's literal pointed at an ops object in the hosts region whose direct call is
    the image, and the regions that makes: (the patched sled, [ops object, ftrace_caller])."""
    ops = (layout.hosts + OPS_OFFSET) & MASK64
    regions = [(ops, bytes(OPS_DIRECT_CALL) + image_addr.to_bytes(8, "little")), (layout.ftrace_caller, _FTRACE_CALLER)]
    return ops.to_bytes(8, "little") + patched[8:], regions


def _call_seq(at_end: int, target: int) -> tuple[int, bytes]:
    """A call to ``target`` whose return address is ``at_end``: (start address, bytes)."""
    off = target - (at_end - 8)
    if in_auipc_jalr_range(off):
        hi = ((off + 0x800) >> 12) & 0xFFFFF
        return at_end - 8, _words(E.auipc(RA, hi), E.jalr(RA, RA, sign_extend(off, 12)))
    from sledfuzz.emu.rv64.emitter import Emitter

    e = Emitter(rvc=False)
    e.emit_imm(T6, target)
    e.emit(E.jalr(RA, T6, 0))
    return at_end - e.pos, e.code


@dataclass(frozen=True)
class MemoryImage:
    """Everything a run's memory holds before it starts, and where the run begins.

    ``function``: the traced function's bytes (sled and generated body), watched for
    I-SLED-CONSISTENT; None for a compiled function (its placement spans several regions) and
    struct_ops. ``volatile``: regions the guest may write (data, stack, an object's writable
    sections), rewritten every run."""

    regions: tuple[Region, ...]
    function: tuple[int, int] | None
    volatile: frozenset[int]
    start: int
    entry_sp: int
    canary_at: int


def memory_image(case: Case, sled: SledLayout, patched: bytes, image: Region | None, body_addr: int,
                 extra: list[Region]) -> MemoryImage:
    """Lay out ``extra`` (the CALL_OPS regions), the sled holding ``patched`` and the body, the
    image, the thunks, the parent's call, the data region and the stack, as one image."""
    lay = case.layout
    parent_ret = (lay.parent + PARENT_RET_OFFSET) & MASK64
    regions = list(extra)
    helper = host_addr(lay, ROLE_HELPER)
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
        regions.append(image)
    regions.append((lay.hosts, HOSTS_BLOB))
    call_target = image[0] if image is not None and case.target == "struct_ops" else lay.func
    start, call = _call_seq(parent_ret, call_target)
    regions.append((start, call + SENTINEL_INSN))
    # data and stack: rewritten every time (the guest writes there), with the case's fill
    pattern = fill_pattern(case.seed)
    regions.append((lay.data, _filled(pattern, DATA_SIZE)))
    entry_sp = (lay.stack + ENTRY_SP_OFFSET) & MASK64
    stack_args = case.function.values[8:]
    regions.append((lay.stack, _stack_image(stack_args, pattern)))
    _check_overlaps(regions)
    volatile = frozenset((lay.data, lay.stack)) | elf_writable
    return MemoryImage(tuple(regions), function, volatile, start, entry_sp, entry_sp + 8 * len(stack_args))


def _check_overlaps(regions: list[Region]) -> None:
    spans = sorted((a, a + len(d)) for a, d in regions)
    spans.append((HOST_PAGES[0], HOST_PAGES[0] + HOST_PAGES[1]))
    spans.sort()
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise LayoutError(f"regions [{lo1:#x}, {hi1:#x}) and [{lo2:#x}, {hi2:#x}) overlap")


@functools.cache
def _row_regs(ri: int, nv: int) -> tuple[tuple[int, int], ...]:
    """Scramble row ri's values for the argument registers the case leaves unset (a_nv..a7) and
    the temporaries t0-t6."""
    row = SCRAMBLE[ri]
    temps = (T0, T1, T2, T3, T4, T5, T6)
    return (*((A0 + i, row[i]) for i in range(nv, 8)), *((r, row[8 + k]) for k, r in enumerate(temps)))


def parent_state(case: Case, entry_sp: int) -> tuple[bytes, list[tuple[int, int]]]:
    """The registers as the parent leaves them at its call (every other register as on a new
    CPU): the thunks' scramble table for this case (at ``SCRAMBLE_TABLE``) and (register, value)
    pairs."""
    ri = ((case.seed * 0x9E3779B97F4A7C15) & MASK64) >> 56
    values = case.function.values
    nv = min(8, len(values))
    regs = [*_PLANTED_REGS, *[(A0 + i, values[i]) for i in range(nv)], *_row_regs(ri, nv), (SP, entry_sp)]
    if case.target == "bpf_prog":
        regs.append((A6, TCC_PLANTED))  # the caller's tail-call count (a BPF target has <= 5 slots)
    regs.append((RA, SCRAMBLE[ri][15]))
    return _SCRAMBLE_BYTES[ri], regs


def scramble_row(seed: int) -> int:
    """The scramble row a case's first host call uses (each call takes the next)."""
    return (seed ^ (seed >> 17)) % SCRAMBLE_ROWS
