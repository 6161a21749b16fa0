"""Time-boxed searches per configuration ("cells"), run in parallel, findings never lost.

A cell searches one implementation with hypothesis-generated cases (generate phase only: no
``@example``, no database, no corpus — finding is searching) until its time is up or, when it
expects failures, until every declared known bug has been seen. Each first violation of an
invariant is written atomically to the output directory the moment it is judged, then
minimised (same invariant on the implementation, and a pass on the configuration it derives
from), then written again as the minimal case. Cells run in worker processes; the parent sees
progress and findings as events. On SIGINT/SIGTERM (``fuzz.interrupt``) every running cell stops
between cases and returns what it found; cells not yet started never start.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fuzz import interrupt, workers
from fuzz.corpus import Entry, ExpectedVerdict, with_tool_version, write_finding
from fuzz.elf_cases import ElfSource
from fuzz.oracle import PASSING
from model.case import Case

Expect = Literal["pass", "fail"]
Engine = Literal["hypothesis", "random", "mixed"]
DEFAULT_OUT = "sledfuzz-out"
RESTART_EVERY = 500
HYPOTHESIS_SLICE = 1.0  # mixed engine: seconds of hypothesis, then twice that of the shape builder
MINIMIZE_SECONDS = 15.0


# --------------------------------------------------------------------------------------------
# the oracle and registry, through one narrow seam


def violation_name(v: object) -> str:
    """The invariant name of a Violation (``I-SIZE``), whatever the object calls the field."""
    for attr in ("invariant", "name"):
        val = getattr(v, attr, None)
        if isinstance(val, str):
            return val
    m = re.match(r"(I-[A-Z0-9-]+)", str(v))
    return m.group(1) if m else str(v)


def violation_text(v: object) -> str:
    for attr in ("message", "detail", "text"):
        val = getattr(v, attr, None)
        if isinstance(val, str):
            name = violation_name(v)
            return val if val.startswith(name) else f"{name}: {val}"
    return str(v)


@dataclass(frozen=True)
class Judged:
    """A verdict reduced to what campaigns compare: status and violated invariant names."""

    status: str
    invariants: frozenset[str]
    messages: tuple[str, ...] = ()

    @property
    def verdict(self) -> ExpectedVerdict:
        return ExpectedVerdict(self.status, self.invariants if self.status == "fail" else frozenset())

    @property
    def passed(self) -> bool:
        """Judged and correct (ran as the model says, or refused as it says)."""
        return self.status in PASSING


def judge_case(case: Case, impl: Any, strict_flags: bool = False, *, fresh: bool = False) -> Judged:
    """The verdict of one case (``fresh``: on a new engine with no history, fuzz.fresh); raises
    ``fuzz.interrupt.Interrupted`` once a stop was requested."""
    from fuzz.crosscheck import cross_check_hook
    from fuzz.oracle import judge

    interrupt.check()
    if not fresh:
        cross_check_hook(case, impl)  # `fuzz --cross-check`: engine findings (no-op unless enabled)
    verdict = judge(case, impl, strict_flags=strict_flags, fresh=fresh)
    violations = tuple(getattr(verdict, "violations", ()) or ())
    return Judged(
        status=str(verdict.status),
        invariants=frozenset(violation_name(v) for v in violations),
        messages=tuple(violation_text(v) for v in violations),
    )


def resolve(name: str) -> Any:
    from emu.impls.registry import resolve as _resolve

    return _resolve(name)


def derives_from(name: str) -> str | None:
    from emu.impls import registry

    fn = getattr(registry, "derives_from", None)
    if fn is None:
        return None
    out = fn(name)
    return out if isinstance(out, str) and out != name else None


def shipped_configurations() -> list[str]:
    """Every shipped era, pairing and bug configuration (not the tree-built ``kernel``, not plugins)."""
    from emu.impls.registry import available

    names = []
    for item in available():
        name = item[0] if isinstance(item, tuple) else str(item)
        if name == "kernel" or ":" in name:
            continue
        names.append(name)
    return names


def expectation(impl: Any) -> Expect:
    return "fail" if tuple(impl.caps.known_bugs) else "pass"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")


def dir_name(impl_name: str) -> str:
    """The directory a configuration's findings go to: its name as a path component (a
    ``module:factory`` plugin's own name, e.g. ``my-v6.19``)."""
    from emu.impls.registry import display_name

    return slug(display_name(impl_name))


@dataclass(frozen=True)
class CellContext:
    """An implementation, the configuration it derives from, and which known bugs are its own."""

    name: str
    impl: Any
    origin_name: str | None
    origin: Any | None
    known: dict[str, list[str]]
    inherited: frozenset[str]
    origin_invariants: frozenset[str]

    def new_result(self, seed: int = 0) -> CellResult:
        return CellResult(impl=self.name, expect=expectation(self.impl), seconds=0.0, known_bugs=dict(self.known),
                          inherited=self.inherited, origin=self.origin_name, seed=seed)


def cell_context(name: str) -> CellContext:
    impl = resolve(name)
    origin_name = derives_from(name)
    origin = resolve(origin_name) if origin_name else None
    known = {key: sorted(bug.invariants) for key, bug in bug_keys(impl.caps.known_bugs).items()}
    origin_bugs = set(origin.caps.known_bugs) if origin is not None else set()
    inherited = frozenset(key for key, bug in bug_keys(impl.caps.known_bugs).items() if bug in origin_bugs)
    return CellContext(name, impl, origin_name, origin, known, inherited,
                       origin.caps.known_invariants if origin is not None else frozenset())


def bug_keys(bugs: Iterable[Any]) -> dict[str, Any]:
    """Known bugs by commit; a commit declaring several bugs gets ``COMMIT#2``, ``COMMIT#3``..."""
    out: dict[str, Any] = {}
    for bug in bugs:
        key, n = bug.commit, 1
        while key in out:
            n += 1
            key = f"{bug.commit}#{n}"
        out[key] = bug
    return out


# --------------------------------------------------------------------------------------------
# results


@dataclass
class Counts:
    """How many cases a search judged and how the rest were answered."""

    cases: int = 0
    judged: int = 0  # pass + fail
    failed: int = 0
    refused: int = 0
    unspecified: int = 0
    invalid: int = 0
    #: failures the reused engine saw that a fresh engine did not (fuzz.fresh; never findings)
    harness_faults: int = 0

    def add(self, status: str) -> None:
        self.cases += 1
        if status in ("pass", "fail"):
            self.judged += 1
            if status == "fail":
                self.failed += 1
        elif status == "refused":
            self.refused += 1
        elif status == "unspecified":
            self.unspecified += 1
        else:
            self.invalid += 1

    def merge(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class Finding:
    """The first violation of one invariant in a cell, and where its cases are."""

    impl: str
    invariant: str
    message: str
    seconds: float
    raw_path: str
    case_path: str
    known: bool
    origin: str | None = None
    origin_status: str | None = None  # the minimal case's verdict on the configuration it derives from
    origin_required: bool = True  # False when the origin declares this invariant's bug itself
    checked: bool = False  # minimisation and the origin check ran (False: interrupted before)

    @property
    def origin_ok(self) -> bool | None:
        """None when there is nothing to check or the check never ran."""
        if self.origin is None or not self.origin_required or not self.checked:
            return None
        return self.origin_status in PASSING


@dataclass
class CellResult:
    """One configuration's search. ``ok`` means: as expected (all known bugs found, nothing else)."""

    impl: str
    expect: Expect
    seconds: float
    counts: Counts = field(default_factory=Counts)
    findings: dict[str, Finding] = field(default_factory=dict)
    known_bugs: dict[str, list[str]] = field(default_factory=dict)  # commit -> invariants
    inherited: frozenset[str] = frozenset()  # known bugs the origin declares too (not this cell's target)
    origin: str | None = None
    seed: int = 0
    interrupted: bool = False
    error: str = ""

    @property
    def not_run(self) -> bool:
        """Stopped before it judged a single case (or never started)."""
        return self.interrupted and self.counts.cases == 0 and not self.findings and not self.error

    @property
    def unexpected(self) -> list[str]:
        return sorted(inv for inv, f in self.findings.items() if not f.known)

    @property
    def harness_faults(self) -> int:
        """Failures that did not reproduce on a fresh engine (written to harness-faults/)."""
        return self.counts.harness_faults

    @property
    def target_bugs(self) -> dict[str, list[str]]:
        """The bugs this configuration isolates: all its known bugs minus its origin's."""
        return {c: invs for c, invs in self.known_bugs.items() if c not in self.inherited}

    @property
    def bugs_found(self) -> dict[str, Finding | None]:
        out: dict[str, Finding | None] = {}
        for commit, invs in self.target_bugs.items():
            hits = [self.findings[i] for i in invs if i in self.findings]
            out[commit] = min(hits, key=lambda f: f.seconds) if hits else None
        return out

    @property
    def found(self) -> bool:
        """expect "fail": every target bug found; expect "pass": anything found."""
        if self.expect == "fail":
            return bool(self.target_bugs) and all(f is not None for f in self.bugs_found.values())
        return bool(self.findings)

    @property
    def first(self) -> Finding | None:
        """The first finding of a target bug (else the first finding at all)."""
        hits = [f for f in self.bugs_found.values() if f is not None]
        pool = hits or list(self.findings.values())
        return min(pool, key=lambda f: f.seconds) if pool else None

    @property
    def ok(self) -> bool:
        if self.error:
            return False
        if self.unexpected:
            return False
        if any(f.origin_ok is False for f in self.findings.values()):
            return False
        return all(f is not None for f in self.bugs_found.values())

    def to_json(self) -> dict[str, Any]:
        first = self.first
        return {
            "impl": self.impl,
            "expect": self.expect,
            "found": self.found,
            "invariant": first.invariant if first else None,
            "seconds": round(first.seconds, 3) if first else None,
            "case": first.case_path if first else None,
            "ok": self.ok,
            "status": self.status,
            "derives_from": self.origin,
            "inherited_bugs": sorted(self.inherited),
            "target_bugs": {
                commit: ({"invariant": f.invariant, "seconds": round(f.seconds, 3), "case": f.case_path} if f else None)
                for commit, f in self.bugs_found.items()
            },
            "findings": [
                {
                    "invariant": f.invariant,
                    "known": f.known,
                    "seconds": round(f.seconds, 3),
                    "case": f.case_path,
                    "raw_case": f.raw_path,
                    "message": f.message,
                    "origin_status": f.origin_status if f.checked else "not run",
                    "origin_required": f.origin_required,
                    "minimized": f.checked,
                }
                for f in sorted(self.findings.values(), key=lambda f: f.seconds)
            ],
            "unexpected": self.unexpected,
            "counts": asdict(self.counts),
            "harness_faults": self.harness_faults,
            "search_seconds": round(self.seconds, 3),
            "seed": self.seed,
            "interrupted": self.interrupted,
            "not_run": self.not_run,
            **({"error": self.error} if self.error else {}),
        }

    @property
    def status(self) -> str:
        """The configuration's word in the report (docs/cli.md, "Reading the report")."""
        if self.not_run:
            return "not run"
        if self.error:
            return "ERROR"
        if self.unexpected:
            return "UNEXPECTED"
        if any(f.origin_ok is False for f in self.findings.values()):
            return "ORIGIN-FAILS"
        if any(f is None for f in self.bugs_found.values()):
            return "interrupted" if self.interrupted else "MISSED"
        return "ok"


# --------------------------------------------------------------------------------------------
# one cell


Event = tuple[str, str, dict[str, Any]]
Emit = Callable[[Event], None]


class _Stop(Exception):
    """Ends the hypothesis loop (time up, or every known bug seen)."""


class _Restart(Exception):
    """Starts a fresh hypothesis run with the next seed."""


def _write_case(path: Path, case: Case, impl: str, judged: Judged, provenance: dict[str, str],
                origin: str | None = None, origin_judged: Judged | None = None) -> str:
    expect = {impl: judged.verdict}
    if origin is not None and origin_judged is not None:
        expect[origin] = origin_judged.verdict
    entry = Entry(case=case, expect=expect, provenance=with_tool_version(provenance))
    return str(write_finding(path, entry))  # a free name: never another run's case


def minimize_finding(case: Case, impl: Any, invariant: str, *, origin: Any | None, strict_flags: bool,
                     seconds: float = MINIMIZE_SECONDS) -> Case:
    """A smaller case violating ``invariant`` on ``impl`` (and passing on ``origin`` if given); for
    I-IMPL-CRASH, one on which the implementation raises the same exception type."""
    from fuzz.minimize import minimize
    from model.invariants import IMPL_CRASH, crash_exception

    def crashes(j: Judged) -> set[str | None]:
        return {crash_exception(m) for m in j.messages} - {None}

    same_crash = crashes(judge_case(case, impl, strict_flags)) if invariant == IMPL_CRASH else set()

    def keep(c: Case) -> bool:
        j = judge_case(c, impl, strict_flags)
        if j.status != "fail" or invariant not in j.invariants:
            return False
        if same_crash and not crashes(j) & same_crash:
            return False
        return origin is None or judge_case(c, origin, strict_flags).passed

    prepare = None
    if case.function.compiled is not None:
        from fuzz.elf_cases import compiled_candidate

        prepare = partial(compiled_candidate, original=case, impl=impl)
    return minimize(case, keep, deadline=time.monotonic() + seconds, prepare=prepare)


def search_cell(
    impl_name: str,
    *,
    seconds: float,
    seed: int = 0,
    strict_flags: bool = False,
    out_dir: str | None = DEFAULT_OUT,
    stop_when_found: bool = True,
    minimize: bool = True,
    emit: Emit | None = None,
    deadline: float | None = None,
    minimize_seconds: float = MINIMIZE_SECONDS,
    stop_on: frozenset[str] | None = None,
    engine: Engine = "mixed",
    elf: ElfSource | None = None,
) -> CellResult:
    """Search one implementation; see the module docstring for what is kept and written.

    ``engine``: ``hypothesis`` (its strategies only), ``random`` (the shape builder on a seeded
    stream, the atheris harness's case space), or ``mixed`` (alternating, a third of the time in
    hypothesis: its strategies reach more of the case space, the builder runs ~10x faster)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    from fuzz.strategies import search_cases

    start = time.monotonic()
    end = start + seconds if deadline is None else min(start + seconds, deadline)
    ctx = cell_context(impl_name)
    impl, origin_name, origin = ctx.impl, ctx.origin_name, ctx.origin
    known_invs = impl.caps.known_invariants
    result = ctx.new_result(seed)
    cell_dir = Path(out_dir) / dir_name(impl_name) if out_dir else None
    last_emit = [0.0]

    def progress(force: bool = False) -> None:
        now = time.monotonic()
        if emit and (force or now - last_emit[0] > 0.5):
            last_emit[0] = now
            emit(("progress", impl_name, dict(asdict(result.counts), seed=seed)))  # seed: which cell

    def all_known_found() -> bool:
        """Every awaited bug (``stop_on``, default: the target bugs) has been seen."""
        wanted = result.bugs_found if stop_on is None else {c: f for c, f in result.bugs_found.items() if c in stop_on}
        return bool(wanted) and all(f is not None for f in wanted.values())

    target_invs = {i for invs in result.target_bugs.values() for i in invs}

    def record(case: Case, judged: Judged) -> None:
        """Write each new invariant's case at once; minimise the case once, for its most
        interesting new invariant (a target bug's, else an undeclared one, else any).

        Nothing is written as a finding unless a fresh engine gives the same verdict (fuzz.fresh);
        otherwise the case is a harness fault, written to ``harness-faults/`` and counted."""
        from fuzz.fresh import MAX_FILES, confirm, write_harness_fault

        t = time.monotonic() - start
        new = [(inv, msg) for inv, msg in _by_invariant(judged) if inv not in result.findings]
        if not new:
            return
        confirmed, again = confirm(case, impl, judged, strict_flags)
        if not confirmed:
            result.counts.harness_faults += 1
            path = ""
            if out_dir and result.counts.harness_faults <= MAX_FILES:
                path = write_harness_fault(out_dir, case, impl_name, judged, again,
                                           {"impl": impl_name, "found_by": f"sledfuzz {engine} search, seed {seed}",
                                            "seconds_to_find": f"{t:.3f}"})
            if emit:
                emit(("harness_fault", impl_name, {"seconds": t, "path": path, "shared": sorted(judged.invariants),
                                                   "fresh": sorted(again.invariants)}))
            return
        fresh: list[tuple[Finding, dict[str, str]]] = []
        for inv, msg in new:
            raw_path = ""
            prov = {"impl": impl_name, "invariant": inv, "found_by": f"sledfuzz {engine} search, seed {seed}",
                    "seconds_to_find": f"{t:.3f}", "message": msg}
            if cell_dir is not None:
                raw_path = _write_case(cell_dir / f"{slug(inv)}.raw.json", case, impl_name, judged, prov)
            finding = Finding(impl_name, inv, msg, t, raw_path, raw_path, inv in known_invs, origin_name,
                              origin_required=inv not in ctx.origin_invariants)
            result.findings[inv] = finding
            fresh.append((finding, prov))
            if emit:
                emit(("found", impl_name, {"invariant": inv, "seconds": t, "path": raw_path, "known": finding.known}))
        primary = min(fresh, key=lambda fp: (fp[0].invariant not in target_invs, fp[0].known))[0]
        demand = origin if origin is not None and judge_case(case, origin, strict_flags).passed else None
        small = case
        if minimize:
            small = minimize_finding(case, impl, primary.invariant, origin=demand, strict_flags=strict_flags,
                                     seconds=min(minimize_seconds, max(2.0, end - time.monotonic())))
        # what is written is what a fresh engine says (a minimised case that only fails on the
        # reused engine is dropped for the raw one, which was confirmed above)
        small_j = judge_case(small, impl, strict_flags, fresh=True) if small is not case else again
        origin_j = judge_case(small, origin, strict_flags, fresh=True) if origin is not None else None
        raw_origin = judge_case(case, origin, strict_flags, fresh=True) if origin is not None else None
        for finding, prov in fresh:
            use_small = finding.invariant in small_j.invariants
            chosen, chosen_j, chosen_o = (small, small_j, origin_j) if use_small else (case, judged, raw_origin)
            finding.origin_status = chosen_o.status if chosen_o else None
            finding.checked = True
            if cell_dir is not None:
                prov = dict(prov, minimized="yes" if minimize and use_small else "no")
                finding.case_path = _write_case(cell_dir / f"{slug(finding.invariant)}.json", chosen, impl_name,
                                                chosen_j, prov, origin_name, chosen_o)
            if emit:
                emit(("minimized", impl_name, {"invariant": finding.invariant, "path": finding.case_path,
                                               "origin_status": finding.origin_status}))

    examples = [0]
    restart = [False]
    slice_start = [start]

    def body(case: Case) -> None:
        """Judge one case. Stop/restart decisions are sticky, so hypothesis's replay of the
        example that raised raises the same exception again (no FlakyFailure)."""
        if time.monotonic() > end or (stop_when_found and all_known_found()):
            raise _Stop
        if restart[0]:
            raise _Restart
        judged = judge_case(case, impl, strict_flags)
        result.counts.add(judged.status)
        if judged.status == "fail":
            progress(force=True)  # the parent's counts include this failure before its finding
            record(case, judged)
            if stop_when_found and all_known_found():
                raise _Stop
        progress()
        examples[0] += 1
        if examples[0] % RESTART_EVERY == 0 or (engine == "mixed" and time.monotonic() - slice_start[0] > HYPOTHESIS_SLICE):
            restart[0] = True
            raise _Restart

    draw_case = _case_source(impl, elf, strict_flags)
    strategy = search_cases(impl.caps, strict_flags=strict_flags) if elf is None else _elf_strategy(impl, elf, strict_flags)
    run_seed = seed
    random_index = 0

    def random_burst(until: float) -> None:
        """Cases from the shape builder with a seeded random stream: ~10x hypothesis's rate."""
        nonlocal random_index
        from fuzz.shape import RandomDraw

        while time.monotonic() < until:
            random_index += 1
            case = draw_case(RandomDraw((seed << 40) ^ random_index))
            if case is None:
                continue
            try:
                body(case)
            except _Restart:  # only hypothesis runs restart
                restart[0] = False

    try:
        while time.monotonic() < end:
            t_h = slice_start[0] = time.monotonic()
            if engine in ("hypothesis", "mixed"):
                test = settings(
                    database=None,
                    max_examples=10**9,
                    phases=[Phase.generate],
                    deadline=None,
                    derandomize=False,
                    verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False,
                )(hseed(run_seed)(given(strategy)(body)))
                with contextlib.suppress(_Restart):
                    test()
                restart[0] = False
                run_seed += 1
            if engine in ("random", "mixed"):
                spent = time.monotonic() - t_h
                random_burst(min(end, time.monotonic() + (2 * spent if engine == "mixed" else 5.0)))
    except _Stop:
        pass
    except KeyboardInterrupt:
        result.interrupted = True
    except Exception as exc:  # a crash of the tooling is reported per cell, never lost silently
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - start
    progress(force=True)
    return result


def _case_source(impl: Any, elf: ElfSource | None, strict_flags: bool) -> Callable[[Any], Case | None]:
    """The shape builder's case for a draw: over the whole case space, or over an ELF's functions."""
    from fuzz.shape import case_from_draw

    if elf is None:
        return lambda draw: case_from_draw(draw, impl.caps, strict_flags=strict_flags)
    from fuzz.elf_cases import draw_elf_case

    targets, _ = elf.targets(impl)
    return lambda draw: draw_elf_case(draw, impl, targets, strict_flags=strict_flags)


def _elf_strategy(impl: Any, elf: ElfSource, strict_flags: bool) -> Any:
    from fuzz.elf_cases import elf_case_strategy

    targets, _ = elf.targets(impl)
    return elf_case_strategy(impl, targets, strict_flags=strict_flags)


def _by_invariant(judged: Judged) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for msg in judged.messages:
        out.setdefault(violation_name(msg), msg)
    for inv in judged.invariants:
        out.setdefault(inv, inv)
    return sorted(out.items())


# --------------------------------------------------------------------------------------------
# many cells, in worker processes


@dataclass(frozen=True)
class CellSpec:
    impl: str
    seconds: float
    seed: int
    strict_flags: bool
    out_dir: str | None
    stop_when_found: bool = True
    minimize: bool = True
    deadline_wall: float | None = None  # time.time() based: shared across processes
    engine: Engine = "mixed"
    elf: ElfSource | None = None  # fuzz --elf: cases over an object's compiled functions


def _run_spec(spec: CellSpec, emit: Emit | None = workers.emit) -> CellResult:
    deadline = None
    if spec.deadline_wall is not None:
        deadline = time.monotonic() + max(0.0, spec.deadline_wall - time.time())
    return search_cell(spec.impl, seconds=spec.seconds, seed=spec.seed, strict_flags=spec.strict_flags,
                       out_dir=spec.out_dir, stop_when_found=spec.stop_when_found, minimize=spec.minimize,
                       emit=emit, deadline=deadline, engine=spec.engine, elf=spec.elf)


def run_cells(specs: list[CellSpec], *, jobs: int, on_event: Callable[[Event], None] | None = None,
              ) -> tuple[list[CellResult], bool]:
    """Run cells on ``jobs`` processes. Returns (results, interrupted); partial results survive.

    On SIGINT/SIGTERM (``fuzz.interrupt``) running cells return what they found so far and
    cells not yet started are not started: the caller lists them as not run."""
    results: list[CellResult] = []
    interrupted = False
    with interrupt.deferred():
        if jobs <= 1:
            for spec in specs:
                if interrupt.requested():
                    interrupted = True
                    break
                res = _run_spec(spec, emit=on_event)
                results.append(res)
                if res.interrupted or interrupt.requested():
                    interrupted = True
                    break
            return results, interrupted

        def tick() -> None:
            if on_event is not None:
                on_event(("tick", "", {}))

        outcome = workers.run_tasks(_run_spec, list(specs), jobs=jobs, on_message=on_event, on_tick=tick)
        for index in sorted(outcome.results):
            results.append(outcome.results[index])
        for index, error in sorted(outcome.errors.items()):
            if error == "interrupted":
                continue  # the cell is listed from its events (``Display.partial``) or as not run
            res = cell_context(specs[index].impl).new_result(specs[index].seed)
            res.error = error
            results.append(res)
        return results, outcome.interrupted or interrupt.requested()


def merge_results(results: Iterable[CellResult]) -> list[CellResult]:
    """Fold cells of the same implementation (``--jobs`` on one impl) into one result."""
    merged: dict[str, CellResult] = {}
    for r in results:
        if r.impl not in merged:
            merged[r.impl] = r
            continue
        m = merged[r.impl]
        m.counts.merge(r.counts)
        m.seconds = max(m.seconds, r.seconds)
        m.interrupted |= r.interrupted
        m.error = m.error or r.error
        for inv, f in r.findings.items():
            if inv not in m.findings or f.seconds < m.findings[inv].seconds:
                m.findings[inv] = f
    return list(merged.values())


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
