"""``sledfuzz review``: what a patch series changes in trampoline and sled behaviour.

The kernel implementation is built for the tree before and after the series; both are judged on
the same cases (the corpus, then the shape builder's seeded stream and hypothesis's strategies
under one time budget). A case that violates an invariant only after the series is a regression
(minimised, explained, attributed to the patches touching the code that behaves differently); one
that violates only before is something the series fixes; a case that passes on both but where
the two differ in emitted trampoline bytes, sizes, refusals, sled bytes or poke results is a
behaviour change, summarised by kind. Pure data out (``ReviewResult``); the CLI prints it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sledfuzz.emu.impls.api import Implementation, Refused
from sledfuzz.emu.scenario import Scenario
from sledfuzz.fuzz.oracle import Verdict, judge
from sledfuzz.model.case import Case
from sledfuzz.model.core_stage import CoreRefusal, core_stage

#: files whose change shows in each behaviour kind (for attributing a regression to patches)
JIT_FILES = {"arch/riscv/net/bpf_jit_comp64.c", "arch/riscv/net/bpf_jit.h", "include/linux/bpf.h"}
FTRACE_FILES_SET = {"arch/riscv/include/asm/ftrace.h", "arch/riscv/kernel/ftrace.c", "arch/riscv/Kconfig",
                    "arch/riscv/include/asm/insn-def.h"}

__all__ = ["Behaviour", "Regression", "ReviewResult", "atheris_cases", "behaviour", "review"]


@dataclass(frozen=True)
class Behaviour:
    """What one implementation does with a case, beyond the verdict: what a reviewer compares."""

    status: str
    invariants: frozenset[str]
    jit: str  # "refused E<n>" | "size N" | "-" (no JIT consulted)
    image: bytes
    sled: bytes  # the patched sled (kernel functions) or poked prologue
    init: bytes  # the sled as initialised
    pokes: tuple[tuple[str, int], ...]  # (poke experiment, rc)


def behaviour(case: Case, impl: Implementation, verdict: Verdict, scenario: Scenario) -> Behaviour:
    jit, image, sled, init = "-", b"", b"", b""
    core = core_stage(case)
    lay = case.layout
    if not isinstance(core, CoreRefusal) and case.links:
        req = scenario.request(case, core.order, core.flags)
        sized = impl.jit.size(req)
        if isinstance(sized, Refused):
            jit = f"refused {sized.errno}"
        else:
            jit = f"size {sized}"
            emitted = impl.jit.emit(req, lay.image, sized) if sized <= impl.caps.page_size else None
            if isinstance(emitted, Refused):
                jit += f", emit refused {emitted.errno}"
            elif emitted is not None:
                image = emitted.code[: emitted.used_len]
    sl = impl.caps.sled_for(case.target, case.sled)
    if sl is not None and case.target == "kernel_function":
        init = impl.patcher.init_sled(sl, lay.func, lay.ftrace_caller)
        if image:
            sled = impl.patcher.patch(sl, lay.func, lay.image, lay.ftrace_caller)
    obs = verdict.observation
    pokes = tuple((p.op, p.rc) for p in obs.pokes) if obs is not None else ()
    return Behaviour(verdict.status, verdict.invariants, jit, image, sled, init, pokes)


def changes(a: Behaviour, b: Behaviour) -> list[str]:
    """The kinds of difference between two behaviours (empty: the same)."""
    out = []
    if a.jit != b.jit:
        out.append("refusal" if "refused" in a.jit + b.jit else "trampoline size")
    if a.image != b.image and a.jit == b.jit:
        out.append("trampoline bytes")
    if a.init != b.init:
        out.append("sled bytes after ftrace init")
    if a.sled != b.sled:
        out.append("patched sled bytes")
    if a.pokes != b.pokes:
        out.append("text poke results")
    return out


@dataclass
class Regression:
    """An invariant violated after the series on a case where it held before."""

    invariant: str
    message: str
    case: Case
    minimal: Case | None = None
    kinds: tuple[str, ...] = ()  # how the two trees' behaviour differs on the minimal case
    patches: tuple[str, ...] = ()
    explain: str = ""
    path: str = ""


@dataclass
class ReviewResult:
    tree: str
    version: str
    patches: tuple[str, ...]
    cases: int = 0
    seconds: float = 0.0
    regressions: dict[str, Regression] = field(default_factory=dict)
    fixes: dict[str, Regression] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # kind -> cases
    examples: dict[str, str] = field(default_factory=dict)  # kind -> one line
    notes: list[str] = field(default_factory=list)  # what a source could not do, one line each
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


class Visit(Protocol):
    """What a case source is handed: ``visit(origin, case)`` judges one case on both trees and
    says whether to go on; ``left()`` is the source's share of the budget still unspent;
    ``force=True`` judges a case past the share (a result an external search already paid for)."""

    def __call__(self, origin: str, case: Case, *, force: bool = False) -> bool: ...

    def left(self) -> float: ...

    def note(self, line: str) -> None: ...


CaseSource = Callable[[Visit], None]


class _Visitor:
    def __init__(self, until: float, judge_one: Callable[[Case], None], stop: Callable[[], bool],
                 notes: list[str]) -> None:
        self.until, self._judge, self._stop, self._notes = until, judge_one, stop, notes

    def __call__(self, origin: str, case: Case, *, force: bool = False) -> bool:
        if self._stop() or (time.monotonic() > self.until and not force):
            return False
        self._judge(case)
        return True

    def left(self) -> float:
        return max(0.0, self.until - time.monotonic())

    def note(self, line: str) -> None:
        self._notes.append(line)


def review(before: Implementation, after: Implementation, sources: list[CaseSource], *, seconds: float,
           tree: str, version: str, patches: tuple[str, ...], attribute: Callable[[set[str]], list[str]],
           minimize_seconds: float = 20.0, on_progress: Callable[[ReviewResult], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> ReviewResult:
    """Judge the cases of ``sources`` on both trees until ``seconds`` run out (see the module doc);
    each source gets an equal share of what is left when it starts. ``minimize_seconds`` is the
    budget for minimising all regressions together."""
    res = ReviewResult(tree, version, patches)
    scenario = Scenario()
    start = time.monotonic()
    end = start + seconds
    last = [start]

    def judge_one(case: Case) -> None:
        vb, va = judge(case, before), judge(case, after)
        res.cases += 1
        for inv in sorted(va.invariants - vb.invariants):
            if inv not in res.regressions:
                msg = next(str(v) for v in va.violations if v.invariant == inv)
                res.regressions[inv] = Regression(inv, msg, case)
        for inv in sorted(vb.invariants - va.invariants):
            if inv not in res.fixes:
                msg = next(str(v) for v in vb.violations if v.invariant == inv)
                res.fixes[inv] = Regression(inv, msg, case)
        if vb.status not in ("fail", "invalid") and va.status not in ("fail", "invalid"):
            bb, ba = behaviour(case, before, vb, scenario), behaviour(case, after, va, scenario)
            for kind in changes(bb, ba):
                res.changed[kind] = res.changed.get(kind, 0) + 1
                res.examples.setdefault(kind, _example(kind, case, bb, ba))
        if on_progress is not None and time.monotonic() - last[0] > 2.0:
            last[0] = time.monotonic()
            res.seconds = last[0] - start
            on_progress(res)

    for i, source in enumerate(sources):
        left = end - time.monotonic()
        if left <= 0 or stop():
            break
        source(_Visitor(time.monotonic() + left / (len(sources) - i), judge_one, stop, res.notes))
    res.interrupted = stop()
    share = minimize_seconds / max(1, len(res.regressions))
    for reg in res.regressions.values():
        if res.interrupted:
            break
        reg.minimal = _minimise(reg, before, after, share)
        small = reg.minimal
        kinds = changes(behaviour(small, before, judge(small, before), scenario),
                        behaviour(small, after, judge(small, after), scenario))
        reg.kinds = tuple(kinds)
        files: set[str] = set()
        if {"trampoline bytes", "trampoline size", "refusal"} & set(kinds):
            files |= JIT_FILES
        if {"sled bytes after ftrace init", "patched sled bytes"} & set(kinds):
            files |= FTRACE_FILES_SET
        reg.patches = tuple(attribute(files) if files else attribute(JIT_FILES | FTRACE_FILES_SET))
    res.seconds = time.monotonic() - start
    return res


def _example(kind: str, case: Case, b: Behaviour, a: Behaviour) -> str:
    what = {"trampoline size": f"{b.jit} -> {a.jit}", "refusal": f"{b.jit} -> {a.jit}",
            "trampoline bytes": f"{len(b.image)} bytes, first difference at +{_first_diff(b.image, a.image):#x}",
            "sled bytes after ftrace init": f"{b.init.hex()} -> {a.init.hex()}",
            "patched sled bytes": f"{b.sled.hex()} -> {a.sled.hex()}",
            "text poke results": f"{b.pokes} -> {a.pokes}"}[kind]
    kinds = [lk.kind for lk in case.links]
    links = ",".join(kinds) if len(kinds) <= 4 else f"{len(kinds)} links"
    links = links or "-"
    return f"{case.target} sled {case.sled} links [{links}]: {what}"


def _first_diff(x: bytes, y: bytes) -> int:
    return next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))


def _minimise(reg: Regression, before: Implementation, after: Implementation, seconds: float) -> Case:
    """A smaller case that still violates the invariant after the series and not before."""
    from sledfuzz.fuzz.minimize import minimize

    def keep(c: Case) -> bool:
        va = judge(c, after)
        return reg.invariant in va.invariants and reg.invariant not in judge(c, before).invariants

    return minimize(reg.case, keep, deadline=time.monotonic() + seconds)


def corpus_cases(paths: list[Path]) -> CaseSource:
    """Every case of the corpus files (the known bug shapes come first)."""
    from sledfuzz.fuzz.corpus import load_entry

    def run(visit: Visit) -> None:
        for p in paths:
            try:
                case = load_entry(p).case
            except Exception:  # a corpus file that no longer loads is replay's business, not review's
                continue
            if not visit(f"corpus {p.name}", case):
                return

    return run


def shape_cases(caps: Any, seed: int) -> CaseSource:
    """The shape builder on a seeded stream (the atheris harness's case space)."""
    from sledfuzz.fuzz.shape import RandomDraw, case_from_draw

    def run(visit: Visit) -> None:
        i = 0
        while visit(f"shape seed {seed}:{i}", case_from_draw(RandomDraw((seed << 40) ^ i), caps)):
            i += 1

    return run


class _Enough(Exception):
    pass


def hypothesis_cases(caps: Any, seed: int) -> CaseSource:
    """Hypothesis's strategies with a fixed seed: the same cases for the same seed."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    from sledfuzz.fuzz.strategies import search_cases

    def run(visit: Visit) -> None:
        def body(case: Case) -> None:
            if not visit(f"hypothesis seed {seed}", case):
                raise _Enough

        test = settings(database=None, max_examples=10**9, phases=[Phase.generate], deadline=None,
                        derandomize=False, verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                        report_multiple_bugs=False)(hseed(seed)(given(search_cases(caps))(body)))
        with contextlib.suppress(_Enough):
            test()

    return run


def atheris_cases(tree: Path, seed: int, work: Path, *, min_seconds: float = 30.0) -> CaseSource:
    """libFuzzer's coverage-guided search (the atheris target, in its own processes) on the tree
    after the series; every input it flags is then judged before and after like any other case.
    Skipped with a note when its share of the budget is under ``min_seconds``: instrumenting the
    target's imports alone takes seconds."""

    def run(visit: Visit) -> None:
        import os

        from sledfuzz.emu.kernel.impl import ENV_VAR, set_default_tree
        from sledfuzz.fuzz.atheris_run import run_atheris
        from sledfuzz.fuzz.corpus import load_entry

        left = visit.left()
        if left < min_seconds:
            visit.note(f"atheris: not run (its share of --time is {left:.0f} s, it needs {min_seconds:.0f} s)")
            return
        previous = os.environ.get(ENV_VAR)
        set_default_tree(tree)
        try:
            res = run_atheris("kernel", seconds=left * 0.7, jobs=1, seed=seed, out_dir=str(work), minimize=False)
        finally:
            set_default_tree(previous)
        visit.note(f"atheris: {res.counts.cases:,} inputs on the tree after the series, "
                   f"{len(res.findings)} invariant(s) flagged")
        for crash in sorted(work.rglob("crash-*.json")):
            try:
                case = load_entry(crash).case
            except Exception:  # a half-written artifact of an interrupted child
                continue
            if not visit(f"atheris {crash.name}", case, force=True):
                return

    return run
