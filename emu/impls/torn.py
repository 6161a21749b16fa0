"""I-TORN: which mixed old/new sleds a task can execute while a patch is in flight, and where they land.

A patch takes the sled region from memory state M0 (old) through one state per word written to
Mn (new). A task executing the sled fetches its instructions one by one, each from some state
Mj, with j never decreasing (memory only moves forward). Which fetch sequences are reachable is
the patcher's concurrency model:

* stop_machine, no preemption: every fetch of one pass sees M0, or every fetch sees Mn;
* stop_machine, preemption: M0 and Mn only, but the switch may happen between any two
  instructions (a task preempted inside the sled resumes after the patch: 8547649981e6);
* no stop_machine: any non-decreasing sequence over M0..Mn (another CPU runs while words land).

Control flow is computed symbolically by decoding the fetched words (nop, auipc, jalr, the
detour's ``sd ra``/``ld ra``); for CALL_OPS a landing at ``ftrace_caller`` is resolved through the
literal, read after the jalr. A state is safe when it lands where the consistent old or new sled
lands (``allowed``); a state landing elsewhere, or on an unknown base register, is torn.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

from sledfuzz.emu.impls.api import FtraceMechanism, FtracePatched
from sledfuzz.emu.impls.patchers import LD_RA, NOP4, SD_RA, FtracePatcher, SledPatchers
from sledfuzz.emu.rv64.offsets import sign_extend
from sledfuzz.emu.rv64.regs import NAMES
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.observation import TornState

_M64 = (1 << 64) - 1

#: The era patchers are what the scenario's experiments drive (mypy checks them against the
#: protocols declared in emu.impls.api here).
_ERA_FTRACE: type[FtraceMechanism] = FtracePatcher
_ERA_PATCHERS: type[FtracePatched] = SledPatchers


def _word(region: bytes, off: int) -> int:
    return int.from_bytes(region[off : off + 4], "little")


def _land(
    fetched: list[int], func: int, body: int, ftrace_caller: int | None, literal: int | None
) -> tuple[int | None, str]:
    """Run the fetched entry words from ``func``; the pc control reaches (None: undefined)."""
    regs: dict[int, int] = {}
    ra_saved = False
    for i, w in enumerate(fetched):
        pc = func + 4 * i
        opcode = w & 0x7F
        if w == NOP4:
            continue
        if w == SD_RA:
            ra_saved = True
            continue
        if w == LD_RA:
            if not ra_saved:
                return None, "ld ra from a slot this pass never wrote (parent ra lost)"
            continue
        if opcode == 0x17:  # auipc
            regs[(w >> 7) & 31] = (pc + (sign_extend(w >> 12, 20) << 12)) & _M64
            continue
        if opcode == 0x67:  # jalr
            rs1 = (w >> 15) & 31
            if rs1 not in regs:
                return None, f"jalr through {NAMES[rs1]}, which no fetched auipc set"
            dest = (regs[rs1] + sign_extend(w >> 20, 12)) & _M64
            if ftrace_caller is not None and dest == ftrace_caller:
                if literal:
                    return literal, "ftrace_caller -> literal ops -> direct call"
                return body, "ftrace_caller with ftrace_nop_ops -> body"
            return dest, "jalr"
        return None, f"undecodable word {w:#010x}"
    return body, "fell through into the body"


def _states(patcher: FtraceMechanism, old: bytes, new: bytes, sled: SledLayout) -> list[bytes]:
    """Memory states M0..Mn in the order this patcher writes the words that differ."""
    pre = sled.pre_bytes
    entry = [pre + 4 * i for i in range(patcher.patch_size() // 4)]
    diffs = [off for off in entry if old[off : off + 4] != new[off : off + 4]]
    lit = [0] if pre and old[:8] != new[:8] else []
    # v6.16+ ftrace_make_call and ftrace_make_nop both set the ops literal first, then the jalr
    # (ftrace.c: ftrace_rec_update_ops / ftrace_rec_set_nop_ops before patch_insn_write); the t0
    # scheme's patch_insn_write is one copy, ascending
    order = lit + diffs if patcher.scheme == "atomic" else diffs
    states = [old]
    cur = bytearray(old)
    for off in order:
        width = 8 if pre and off == 0 else 4  # the literal is one aligned 8-byte store
        cur[off : off + width] = new[off : off + width]
        states.append(bytes(cur))
    return states


@dataclass(frozen=True)
class TornTrace:
    """One mixed sled as a task fetches it: per instruction (pc, memory state Mj it came from, the
    word), the CALL_OPS literal's (state, value) if read, and the judged ``TornState``."""

    state: TornState
    fetches: tuple[tuple[int, int, int], ...]
    literal: tuple[int, int] | None


def torn_traces(
    patcher: FtraceMechanism,
    sled: SledLayout,
    func: int,
    old_target: int | None,
    new_target: int | None,
    ftrace_caller: int,
) -> tuple[TornTrace, ...]:
    """Every mixed sled a task could execute while ``old_target`` is re-patched to ``new_target``,
    with the words it fetched (what ``sledfuzz explain`` shows for I-TORN).

    A target of None means the sled is disabled (post-init nops). Consistent passes (all fetches
    from M0, or all from Mn) are not listed; each listed state says whether the concurrency model
    lets a task execute it, where it lands and where a consistent sled would land.
    """

    def region(target: int | None) -> bytes:
        if target is None:
            return patcher.init_sled(sled, func, ftrace_caller, nop_ops=0)
        # CALL_OPS: the literal stands for an ops whose direct call is the target itself
        return patcher.patch(sled, func, target, ftrace_caller, ops=target)

    old, new = region(old_target), region(new_target)
    states = _states(patcher, old, new, sled)
    n = len(states) - 1
    pre = sled.pre_bytes
    body = func + patcher.body_offset()
    fc = ftrace_caller if patcher.scheme == "atomic" else None
    insns = patcher.patch_size() // 4
    fetches = insns + (1 if fc is not None else 0)  # CALL_OPS: the literal is read last

    def run(seq: tuple[int, ...]) -> tuple[int | None, str]:
        fetched = [_word(states[j], pre + 4 * i) for i, j in enumerate(seq[:insns])]
        literal = None
        if fc is not None:
            literal = int.from_bytes(states[seq[insns]][:8], "little")
        return _land(fetched, func, body, fc, literal)

    allowed = tuple(sorted({x for x in (run((0,) * fetches)[0], run((n,) * fetches)[0]) if x is not None}))
    cm = patcher.concurrency
    out: list[TornTrace] = []
    seen: set[tuple[bytes, ...]] = set()
    for seq in combinations_with_replacement(range(n + 1), fetches):
        if len(set(seq)) == 1:
            continue  # a consistent pass
        key = tuple(states[j][pre + 4 * i : pre + 4 * i + 4] for i, j in enumerate(seq[:insns]))
        if fc is not None:
            key += (states[seq[insns]][:8],)
        if key in seen:
            continue
        seen.add(key)
        only_ends = set(seq) <= {0, n}
        if not cm.stop_machine:
            reachable = True
        elif cm.preemptible:
            reachable = only_ends
        else:
            reachable = False
        landed, how = run(seq)
        desc = (f"{patcher.era} {patcher.scheme} ({cm.summary}): fetch states {seq} of M0..M{n}: {how}"
                f" -> {'?' if landed is None else hex(landed)}")
        words = tuple(((func + 4 * i) & _M64, j, _word(states[j], pre + 4 * i)) for i, j in enumerate(seq[:insns]))
        lit = (seq[insns], int.from_bytes(states[seq[insns]][:8], "little")) if fc is not None else None
        out.append(TornTrace(TornState(description=desc, reachable=reachable, landed=landed, allowed=allowed),
                             words, lit))
    return tuple(out)


def torn_states(
    patcher: FtraceMechanism,
    sled: SledLayout,
    func: int,
    old_target: int | None,
    new_target: int | None,
    ftrace_caller: int,
) -> tuple[TornState, ...]:
    """The judged states of ``torn_traces`` (what the scenario records for I-TORN)."""
    return tuple(t.state for t in torn_traces(patcher, sled, func, old_target, new_target, ftrace_caller))


def torn_violations(states: tuple[TornState, ...]) -> tuple[TornState, ...]:
    """The reachable states that land off the allowed targets (what I-TORN reports)."""
    return tuple(s for s in states if s.reachable and (s.landed is None or s.landed not in s.allowed))
