"""``sledfuzz explain``: the verdict, then the run instruction by instruction, annotated.

The case runs once more on a fresh engine with a unicorn code hook that snapshots the integer
registers before every instruction; the difference between consecutive snapshots is what the
previous instruction (or the host call it stands for) changed. Each line gives the address, where
that address is (parent, sled, body, trampoline image, host thunk, host call), the capstone
disassembly, and the registers written. The first host call whose (kind, link) differs from the
model's expected sequence — or, when the sequences agree, the last instruction — is marked as the
point where observation and model part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emu.engine import get_engine
from emu.impls.api import Implementation
from emu.rv64.disasm import disassemble
from emu.scenario import (
    HOST_FIXED,
    HOSTS_SPAN,
    ROLE_HELPER,
    ROLE_PROG0,
    ROLE_PROG_ENTER,
    ROLE_PROG_EXIT,
    ROLE_TRAMP_ENTER,
    ROLE_TRAMP_EXIT,
    THUNK_STRIDE,
    scenario_for,
)
from fuzz.oracle import Verdict, judge
from model.case import MASK64, Case
from model.core import flag_names
from model.semantics import Expected, Invalid, Refusal, Unspecified, expect

REG_NAMES = ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
             "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6")
TAIL = 40  # instructions shown at the end when the trace is longer than the limit


def role_name(role: int) -> str:
    names = {ROLE_PROG_ENTER: "__bpf_prog_enter", ROLE_PROG_EXIT: "__bpf_prog_exit",
             ROLE_TRAMP_ENTER: "__bpf_tramp_enter", ROLE_TRAMP_EXIT: "__bpf_tramp_exit", ROLE_HELPER: "helper"}
    return names.get(role, f"prog[{role - ROLE_PROG0}]")


@dataclass(frozen=True)
class Step:
    pc: int
    size: int
    regs: tuple[int, ...]  # x1..x31 before the instruction


def trace_run(case: Case, impl: Implementation, *, budget: int | None = None,
              ) -> tuple[list[Step], tuple[int, ...], Any, Any]:
    """Run ``case`` on a fresh engine, snapshotting x1..x31 before each instruction."""
    from unicorn import UC_HOOK_CODE

    engine = get_engine()
    scenario = scenario_for(engine)
    steps: list[Step] = []
    uc = engine._uc  # type: ignore[attr-defined]
    xs = tuple(range(1, 32))

    def on_code(_uc: Any, addr: int, size: int, _ud: Any) -> None:
        steps.append(Step(addr, size, tuple(engine.regs(xs))))

    hook = uc.hook_add(UC_HOOK_CODE, on_code)
    try:
        obs = scenario.run(case, impl) if budget is None else scenario.run(case, impl, budget)
    finally:
        uc.hook_del(hook)
    final = tuple(engine.regs(xs))
    return steps, final, obs, engine


def where(case: Case, pc: int, body_addr: int, image: int | None, image_len: int) -> str:
    lay = case.layout
    if HOST_FIXED <= pc < HOST_FIXED + 0x1000:
        return f"HOST CALL {role_name((pc - HOST_FIXED) // 4)}"
    if lay.hosts <= pc < lay.hosts + HOSTS_SPAN:
        return f"thunk {role_name((pc - lay.hosts) // THUNK_STRIDE)}"
    if image is not None and image <= pc < image + max(image_len, 4):
        return f"image+{pc - image:#x}"
    if body_addr and body_addr <= pc < body_addr + 0x1000:
        return f"body+{pc - body_addr:#x}"
    if lay.func - 0x20 <= pc < lay.func + 0x20:
        off = (pc - lay.func) & MASK64
        return f"sled func{'+' if off < 1 << 63 else '-'}{min(off, (1 << 64) - off):#x}"
    if lay.ftrace_caller <= pc < lay.ftrace_caller + 0x40:
        return f"ftrace_caller+{pc - lay.ftrace_caller:#x}"
    if lay.parent <= pc < lay.parent + 0x1000:
        return f"parent+{pc - lay.parent:#x}"
    return "?"


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
        f"model: flags {flag_names(exp.flags)}; body runs {exp.body_runs}x at {exp.body_addr:#x}; "
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
    host_steps = [i for i, s in enumerate(steps) if HOST_FIXED <= s.pc < HOST_FIXED + 0x1000]
    part_at: int | None = None
    part_why = ""
    if isinstance(exp, Expected):
        want = [(e.kind, e.link) for e in exp.events]
        got = [(e.kind, e.link) for e in obs.events]
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else None
            g = got[i] if i < len(got) else None
            if w != g:
                part_why = f"host call #{i}: model expects {w or 'no more calls'}, the run made {g or 'no more calls'}"
                part_at = host_steps[i] if i < len(host_steps) else len(steps) - 1
                break
    if part_at is None and failed and steps:
        part_at = len(steps) - 1
        part_why = "host calls as the model expects; the difference is in the final state (see the violations)"
    out.append(f"execution: {len(steps)} instructions, stop: "
               f"{'returned to ' + hex(obs.return_pc) if obs.return_pc is not None else obs.trap}")
    if part_why:
        out.append(f"observation and model part at step {part_at}: {part_why}")
    shown = list(range(len(steps)))
    if len(steps) > max_insns:
        head = max(0, max_insns - TAIL)
        keep = set(range(head)) | set(range(len(steps) - TAIL, len(steps)))
        if part_at is not None:
            keep |= set(range(max(0, part_at - 5), min(len(steps), part_at + 5)))
        shown = sorted(keep)
    prev = -1
    for i in shown:
        if prev >= 0 and i != prev + 1:
            out.append(f"      ... {i - prev - 1} instructions ...")
        prev = i
        s = steps[i]
        after = steps[i + 1].regs if i + 1 < len(steps) else final
        changed = [f"{REG_NAMES[k + 1]}={after[k]:#x}" for k in range(31) if after[k] != s.regs[k]]
        loc = where(case, s.pc, obs.body_addr, image, image_len)
        text = text_at(s.pc, s.size)
        mark = ">>" if i == part_at else "  "
        host = "  <== host call" if loc.startswith("HOST CALL") else ""
        out.append(f"{mark}{i:5d} {s.pc:#018x} {loc:<22} {text:<34} {' '.join(changed)}{host}")
    return "\n".join(out), failed
