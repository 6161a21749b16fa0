"""``sledfuzz explain``: the verdict, then the run instruction by instruction, annotated.

The case runs once more on a fresh engine with a tracer (``Engine.set_tracer``) that snapshots the
integer registers before every instruction; the difference between consecutive snapshots is what
the previous instruction (or the host call it stands for) changed. Each line gives the address,
where that address is (parent, sled, body, trampoline image, host call), the capstone disassembly
and the registers written, all in hex. A host call is one line: its arguments and what it
returns. The thunk in front of each host call (loading per-case values into the caller-saved
registers, as a real callee may clobber them) is folded into one line. The first host call whose
(kind, link) differs from the model's expected sequence — or, when the sequences agree, the last
instruction — is marked as the point where observation and model part.

I-TORN is judged on the sled states a task can fetch while a patch is in flight, not on the run:
for it, each torn state is traced fetch by fetch (which memory state each word came from, what it
does, where control lands) before the run of the consistent sled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sledfuzz.emu.engine import Engine, get_engine
from sledfuzz.emu.impls.api import Implementation
from sledfuzz.emu.rv64.disasm import disassemble
from sledfuzz.emu.rv64.regs import A0
from sledfuzz.emu.rv64.regs import NAMES as REG_NAMES
from sledfuzz.emu.scenario import HOST_ARGS, VOID_ROLES, Scenario, ftrace_of, host_role_at, role_name, thunk_role_at
from sledfuzz.fuzz.oracle import Verdict, judge
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import flag_names
from sledfuzz.model.expectation import Expected, Invalid, Refusal, Unspecified
from sledfuzz.model.observation import Observation, Trap
from sledfuzz.model.semantics import expect

TAIL = 40  # instructions shown at the end when the trace is longer than --max-insns
AROUND = 5  # instructions shown on each side of the point where observation and model part
TORN_SHOWN = 3  # torn states traced (the first ones; the count of the rest is given)


@dataclass(frozen=True)
class Step:
    pc: int
    size: int
    regs: tuple[int, ...]  # x1..x31 before the instruction


def trace_run(case: Case, impl: Implementation, *, budget: int | None = None,
              ) -> tuple[list[Step], tuple[int, ...], Observation, Engine]:
    """Run ``case`` on a fresh engine, snapshotting x1..x31 before each instruction."""
    engine = get_engine()
    scenario = Scenario(engine)
    steps: list[Step] = []
    xs = tuple(range(1, 32))

    def on_insn(eng: Engine, pc: int, size: int) -> None:
        steps.append(Step(pc, size, tuple(eng.regs(xs))))

    engine.set_tracer(on_insn)
    try:
        obs = scenario.run(case, impl) if budget is None else scenario.run(case, impl, budget)
    finally:
        engine.set_tracer(None)
    return steps, tuple(engine.regs(xs)), obs, engine


def where(case: Case, pc: int, body_addr: int, image: int | None, image_len: int) -> str:
    lay = case.layout
    role = host_role_at(pc)
    if role is not None:
        return f"HOST CALL {role_name(role)}"
    role = thunk_role_at(case.layout, pc)
    if role is not None:
        return f"thunk {role_name(role)}"
    if image is not None and image <= pc < image + max(image_len, 4):
        return f"image+{pc - image:#x}"
    if lay.ftrace_caller <= pc < lay.ftrace_caller + 0x40:
        return f"ftrace_caller+{pc - lay.ftrace_caller:#x}"
    if case.function.compiled is not None:
        sym = compiled_symbol(case, pc)
        if sym is not None:
            return sym
    if body_addr and body_addr <= pc < body_addr + 0x1000:
        return f"body+{pc - body_addr:#x}"
    if lay.func - 0x20 <= pc < lay.func + 0x20:
        off = (pc - lay.func) & MASK64
        return f"sled func{'+' if off < 1 << 63 else '-'}{min(off, (1 << 64) - off):#x}"
    if lay.parent <= pc < lay.parent + 0x1000:
        return f"parent+{pc - lay.parent:#x}"
    return "?"


def compiled_symbol(case: Case, pc: int) -> str | None:
    """``st_calls+0x1a``: a compiled function's instructions named by the object's own symbols
    (the sled part as ``sled st_calls-0x4``), or None outside the placed object."""
    from sledfuzz.emu.elf.image import ElfError
    from sledfuzz.emu.elf.placement import place

    comp = case.function.compiled
    assert comp is not None
    try:
        placed = place(comp, case.layout.func, b"", 0)
    except ElfError:
        return None
    funcs = sorted((s for s in placed.elf.symbols if s.kind == "func"), key=lambda s: s.addr)
    if placed.fn.record <= pc < placed.fn.body_addr:
        off = pc - placed.fn.addr
        return f"sled {placed.fn.name}{'+' if off >= 0 else '-'}{abs(off):#x}"
    for sym in funcs:
        if sym.addr <= pc < sym.addr + max(sym.size, 2):
            return f"{sym.name}+{pc - sym.addr:#x}"
    return None


def trap_text(trap: Trap) -> str:
    """``fetch_unmapped at pc=0x... addr=0x... (detail)``."""
    addr = f" addr={trap.addr:#x}" if trap.addr is not None else ""
    detail = f" ({trap.detail})" if trap.detail else ""
    return f"{trap.kind} at pc={trap.pc:#x}{addr}{detail}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _expected_text(exp: Any) -> list[str]:
    if isinstance(exp, Invalid):
        return [f"model: invalid case ({exp.reason})"]
    if isinstance(exp, Refusal):
        return [f"model: must refuse with -{exp.errno} ({exp.reason})"]
    if isinstance(exp, Unspecified):
        return [f"model: unspecified ({exp.reason}); --strict-flags judges it against the strict expectation"]
    assert isinstance(exp, Expected)
    evs = " ".join(f"{e.kind}" + (f"[{e.link}]" if e.link >= 0 else "") for e in exp.events) or "(none)"
    a0 = "not judged" if exp.a0 is None else f"{exp.a0:#x}"
    a5 = "not judged" if exp.a5 is None else f"{exp.a5:#x}"
    out = [
        f"model: flags {flag_names(exp.flags)}; body runs {_times(exp.body_runs)} at {exp.body_addr:#x}; "
        f"parent gets a0={a0} a5={a5} back at {exp.parent_ret:#x}",
        f"model: host calls {evs}",
    ]
    sessions = [e for e in exp.events if e.kind == "prog" and e.is_return is not None]
    if exp.func_meta:
        out.append(f"model: ctx[-1] is func_meta: {exp.nr_slots} slots in bits 0-7"
                   + ("; session runs: " + " ".join(
                       f"[{e.link}]{'fexit' if e.is_return else 'fentry'}"
                       + ("" if e.session_cookie is None else f" cookie={e.session_cookie:#x}")
                       for e in sessions) if sessions else ""))
    if exp.body_a6 is not None:
        a6 = "not judged" if exp.a6 is None else f"{exp.a6:#x}"
        out.append(f"model: tail-call count: the body is entered with a6={exp.body_a6:#x}, the parent gets a6={a6}")
    return out


def _shown_steps(n: int, max_insns: int, part_at: int | None) -> list[int]:
    """At most ``max_insns`` step indices: the first ones, a window around ``part_at``, the last ones."""
    if n <= max_insns:
        return list(range(n))
    window: set[int] = set()
    if part_at is not None:
        around = min(AROUND, max(0, (max_insns - 1) // 4))
        window = set(range(max(0, part_at - around), min(n, part_at + around + 1)))
    tail = min(TAIL, max(1, (max_insns - len(window)) // 2))
    if len(window) + tail > max_insns:  # too few for a window: the end, where the run stopped
        window, tail = set(), max_insns
    keep = window | set(range(n - tail, n))
    first = 0
    while len(keep) < max_insns:  # the rest of the budget from the start
        keep.add(first)
        first += 1
    return sorted(keep)


def _torn_lines(case: Case, impl: Implementation, obs: Observation) -> list[str]:
    """Each torn state I-TORN judges, fetch by fetch."""
    from sledfuzz.emu.impls.torn import torn_traces

    ft = ftrace_of(impl.patcher)
    sled = impl.caps.sled_for(case.target, case.sled)
    if ft is None or sled is None:
        return []
    lay = case.layout
    target = obs.image_addr if obs.image_addr is not None else lay.ftrace_caller
    traces = [t for old, new in ((None, target), (target, None))
              for t in torn_traces(ft, sled, lay.func, old, new, lay.ftrace_caller)]
    torn = [t for t in traces if t.state.reachable and (t.state.landed is None or t.state.landed not in t.state.allowed)]
    if not torn:
        return []
    out = [f"torn states: {len(torn)} of the {len(traces)} mixed sleds a task can fetch while the patch is in "
           f"flight land off {', '.join(hex(a) for a in torn[0].state.allowed)} (where the old or new sled lands)"]
    for k, t in enumerate(torn[:TORN_SHOWN]):
        out.append(f"  torn state {k}: {t.state.description}")
        for pc, j, word in t.fetches:
            try:
                text = disassemble(word.to_bytes(4, "little"), pc)[0].text
            except Exception:  # not an instruction: _land says so
                text = "?"
            out.append(f"    {pc:#018x} {where(case, pc, 0, None, 0):<22} from M{j}: {word:#010x}  {text}")
        if t.literal is not None:
            out.append(f"    literal at func-8 read from M{t.literal[0]}: {t.literal[1]:#x}")
        landed = "nowhere defined" if t.state.landed is None else hex(t.state.landed)
        out.append(f"    -> control reaches {landed}")
    if len(torn) > TORN_SHOWN:
        out.append(f"  ... {len(torn) - TORN_SHOWN} more torn states")
    return out


def _host_line(case: Case, role: int, before: tuple[int, ...], after: tuple[int, ...]) -> str:
    """``__bpf_prog_enter(prog=0x.., run_ctx=0x..) -> 0x1 (clobbers a1)``."""
    names = HOST_ARGS.get(role, ("ctx",))
    args = ", ".join(f"{n}={before[A0 - 1 + i]:#x}" for i, n in enumerate(names))
    void = role in VOID_ROLES
    ret = "void" if void else f"{after[A0 - 1]:#x}"
    clobbered = [REG_NAMES[k + 1] for k in range(31) if after[k] != before[k] and (void or k + 1 != A0)]
    also = f" (clobbers {' '.join(clobbered)})" if clobbered else ""
    return f"{role_name(role)}({args}) -> {ret}{also}"


def explain(case: Case, impl: Implementation, *, name: str, strict_flags: bool = False,
            max_insns: int = 2000) -> tuple[str, bool]:
    """The report text, and whether the case fails on ``impl``."""
    verdict: Verdict = judge(case, impl, strict_flags=strict_flags)
    exp = expect(case, impl.caps, strict_flags=strict_flags)
    out = [f"case: {case.target}, sled {case.sled}, {len(case.function.args)} args "
           f"({case.function.nr_slots} slots), links [{', '.join(lk.kind for lk in case.links)}], "
           f"flags {'derived' if case.flags is None else flag_names(case.flags)}",
           f"implementation: {name}",
           f"verdict: {verdict.status}: {verdict.summary}"]
    for v in verdict.violations:
        known = " (declared known bug)" if v.invariant in impl.caps.known_invariants else ""
        out.append(f"  VIOLATION {v}{known}")
    out += _expected_text(exp)
    failed = verdict.status == "fail"
    if verdict.observation is not None and "I-TORN" in verdict.invariants:
        out += _torn_lines(case, impl, verdict.observation)
    if verdict.observation is None or verdict.observation.refused is not None:
        reason = verdict.observation.refused_reason if verdict.observation is not None else "nothing ran"
        out.append(f"no execution to show ({reason})")
        return "\n".join(out), failed
    if isinstance(exp, Unspecified):
        exp = exp.strict

    steps, final, obs, engine = trace_run(case, impl)
    texts: dict[int, str] = {}

    def text_at(pc: int, size: int) -> str:
        if pc not in texts:
            try:
                texts[pc] = disassemble(bytes(engine.read(pc, size)), pc)[0].text
            except Exception:  # unreadable: the fault itself is in the stop reason
                texts[pc] = "?"
        return texts[pc]

    image, image_len = obs.image_addr, obs.emitted_len or 0
    # map the i-th host call of the trace to the i-th observed event
    host_steps = [i for i, s in enumerate(steps) if host_role_at(s.pc) is not None]
    part_at: int | None = None
    part_why = ""
    if isinstance(exp, Expected) and verdict.invariants != {"I-TORN"}:
        want = [(e.kind, e.link) for e in exp.events]
        got = [(e.kind, e.link) for e in obs.events]
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else None
            g = got[i] if i < len(got) else None
            if w != g:
                part_why = (f"host call #{i}: model expects {_event_text(w)}, the run made {_event_text(g)}")
                part_at = host_steps[i] if i < len(host_steps) else len(steps) - 1
                break
    torn_only = verdict.invariants == {"I-TORN"}
    if torn_only:
        part_at, part_why = None, ""
        out.append("the run below is the consistent sled's, for reference: I-TORN is judged on the torn states above")
    elif part_at is None and failed and steps:
        part_at = len(steps) - 1
        part_why = "host calls as the model expects; the difference is in the final state (see the violations)"
    stop = f"returned to {obs.return_pc:#x}" if obs.return_pc is not None else \
        trap_text(obs.trap) if obs.trap is not None else "?"
    shown = _shown_steps(len(steps), max_insns, part_at)
    cut = f" (showing {len(shown)}: --max-insns {max_insns})" if len(shown) < len(steps) else ""
    out.append(f"execution: {len(steps)} instructions{cut}, stop: {stop}")
    if part_why:
        out.append(f"observation and model part at step {part_at}: {part_why}")
    prev = -1
    fold: list[int] = []

    def flush_fold() -> None:
        if fold:
            s = steps[fold[0]]
            role = thunk_role_at(case.layout, s.pc)
            out.append(f"  {fold[0]:5d} {s.pc:#018x} {'thunk ' + role_name(role or 0):<22} "
                       f"{len(fold)} instructions: per-case values into a3-a7, t0-t5 (a callee may clobber "
                       f"them), then the host call")
            fold.clear()

    for i in shown:
        if i != prev + 1:
            flush_fold()
            out.append(f"      ... {i - prev - 1} instructions not shown (--max-insns {max_insns}) ...")
        prev = i
        s = steps[i]
        mark = ">>" if i == part_at else "  "
        if thunk_role_at(case.layout, s.pc) is not None and i != part_at:
            if fold and thunk_role_at(case.layout, steps[fold[-1]].pc) != thunk_role_at(case.layout, s.pc):
                flush_fold()
            fold.append(i)
            continue
        flush_fold()
        after = steps[i + 1].regs if i + 1 < len(steps) else final
        role = host_role_at(s.pc)
        if role is not None:
            # the engine may run the host function before the tracer sees its address: the
            # arguments are what the thunk's last instruction (a jump, writing no register) saw
            before = steps[i - 1].regs if i > 0 else s.regs
            out.append(f"{mark}{i:5d} {s.pc:#018x} {'HOST CALL':<22} {_host_line(case, role, before, after)}")
            continue
        changed = [f"{REG_NAMES[k + 1]}={after[k]:#x}" for k in range(31) if after[k] != s.regs[k]]
        loc = where(case, s.pc, obs.body_addr, image, image_len)
        out.append(f"{mark}{i:5d} {s.pc:#018x} {loc:<22} {text_at(s.pc, s.size):<34} {' '.join(changed)}".rstrip())
    flush_fold()
    if len(shown) < len(steps) and shown and shown[-1] != len(steps) - 1:
        out.append(f"      ... {len(steps) - 1 - shown[-1]} instructions not shown (--max-insns {max_insns}) ...")
    return "\n".join(out), failed


def _event_text(ev: tuple[str, int] | None) -> str:
    if ev is None:
        return "no more calls"
    kind, link = ev
    return f"{kind}[{link}]" if link >= 0 else kind
