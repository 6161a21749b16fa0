"""One cell's search: cases from hypothesis and the shape builder, judged until time is up.

A cell searches one implementation with generated cases (generate phase only: no ``@example``,
no database, no corpus — finding is searching) until its time is up or, when it expects
failures, until every awaited known bug has been seen. Each first violation of an invariant is
written atomically to the output directory the moment it is judged, then minimised
(``fuzz.minimal_case``) and written again as the minimal case. Nothing is written as a finding
unless a fresh engine gives the same verdict (``fuzz.fresh``). Progress and findings go out as
events; on SIGINT/SIGTERM (``fuzz.interrupt``) the search stops between cases and returns what
it found.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from hypothesis import strategies as st

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz.configurations import cell_context, dir_name, slug
from sledfuzz.fuzz.corpus import Entry, with_tool_version, write_finding
from sledfuzz.fuzz.elf_cases import ElfSource
from sledfuzz.fuzz.judging import Judged, judge_case
from sledfuzz.fuzz.minimal_case import MINIMIZE_SECONDS, minimal_case
from sledfuzz.fuzz.results import CellResult, Finding
from sledfuzz.fuzz.shape import Draw
from sledfuzz.model.case import Case

Engine = Literal["hypothesis", "random", "mixed"]
Event = tuple[str, str, dict[str, Any]]
Emit = Callable[[Event], None]

DEFAULT_OUT = "sledfuzz-out"
RESTART_EVERY = 500
HYPOTHESIS_SLICE = 1.0  # mixed engine: seconds of hypothesis, then twice that of the shape builder
RANDOM_BURST = 5.0  # random engine: seconds between checks of the clock outside a case


class _Stop(Exception):
    """Ends the search (time up, or every awaited bug seen)."""


class _Restart(Exception):
    """Starts a fresh hypothesis run with the next seed."""


def _write_case(path: Path, case: Case, impl: str, judged: Judged, provenance: dict[str, str],
                origin: str | None = None, origin_judged: Judged | None = None) -> str:
    expect = {impl: judged.verdict}
    if origin is not None and origin_judged is not None:
        expect[origin] = origin_judged.verdict
    entry = Entry(case=case, expect=expect, provenance=with_tool_version(provenance))
    return str(write_finding(path, entry))  # a free name: never another run's case


def _case_source(impl: Implementation, elf: ElfSource | None, strict_flags: bool) -> Callable[[Draw], Case | None]:
    """The shape builder's case for a draw: over the whole case space, or over an ELF's functions."""
    from sledfuzz.fuzz.shape import case_from_draw

    if elf is None:
        return lambda draw: case_from_draw(draw, impl.caps, strict_flags=strict_flags)
    from sledfuzz.fuzz.elf_cases import draw_elf_case

    targets, _ = elf.targets(impl)
    return lambda draw: draw_elf_case(draw, impl, targets, strict_flags=strict_flags)


def _strategy(impl: Implementation, elf: ElfSource | None, strict_flags: bool) -> st.SearchStrategy[Case]:
    """Hypothesis's cases: over the whole case space, or over an ELF's functions."""
    if elf is None:
        from sledfuzz.fuzz.strategies import search_cases

        return search_cases(impl.caps, strict_flags=strict_flags)
    from sledfuzz.fuzz.elf_cases import elf_case_strategy

    targets, _ = elf.targets(impl)
    return elf_case_strategy(impl, targets, strict_flags=strict_flags)


def hypothesis_run(strategy: st.SearchStrategy[Case], body: Callable[[Case], None], seed: int) -> Callable[[], None]:
    """One hypothesis run over ``strategy``: generate phase only, no database, never a deadline."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    run: Callable[[], None] = settings(
        database=None,
        max_examples=10**9,
        phases=[Phase.generate],
        deadline=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )(hseed(seed)(given(strategy)(body)))
    return run


class CellSearch:
    """The state of one cell's search: its clock, its result, and where the engines are.

    ``engine``: ``hypothesis`` (its strategies only), ``random`` (the shape builder on a seeded
    stream, the atheris harness's case space), or ``mixed`` (alternating, a third of the time in
    hypothesis: its strategies reach more of the case space, the builder runs ~10x faster)."""

    def __init__(self, impl_name: str, *, seconds: float, seed: int, strict_flags: bool, out_dir: str | None,
                 stop_when_found: bool, minimize: bool, emit: Emit | None, deadline: float | None,
                 minimize_seconds: float, stop_on: frozenset[str] | None, engine: Engine,
                 elf: ElfSource | None) -> None:
        self.start = time.monotonic()
        self.end = self.start + seconds if deadline is None else min(self.start + seconds, deadline)
        self.ctx = cell_context(impl_name)
        self.result = self.ctx.new_result(seed)
        self.seed = seed
        self.strict_flags = strict_flags
        self.out_dir = out_dir
        self.cell_dir = Path(out_dir) / dir_name(impl_name) if out_dir else None
        self.stop_when_found = stop_when_found
        self.minimize = minimize
        self.minimize_seconds = minimize_seconds
        self.emit = emit
        self.stop_on = stop_on
        self.engine = engine
        self.elf = elf
        self.target_invariants = {i for invs in self.result.target_bugs.values() for i in invs}
        self._last_progress = 0.0
        self._examples = 0  # cases judged, for RESTART_EVERY
        self._restart = False  # sticky until the hypothesis run ends (see ``judge``)
        self._slice_start = self.start
        self._random_index = 0

    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def impl(self) -> Implementation:
        return self.ctx.impl

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> CellResult:
        """Search until the end; a tooling crash is the cell's error, never lost silently."""
        draw_case = _case_source(self.impl, self.elf, self.strict_flags)
        strategy = _strategy(self.impl, self.elf, self.strict_flags)
        try:
            self._alternate_engines(draw_case, strategy)
        except _Stop:
            pass
        except KeyboardInterrupt:
            self.result.interrupted = True
        except Exception as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
        self.result.seconds = time.monotonic() - self.start
        self._progress(force=True)
        return self.result

    def _alternate_engines(self, draw_case: Callable[[Draw], Case | None], strategy: st.SearchStrategy[Case]) -> None:
        """Hypothesis runs (a new seed every RESTART_EVERY cases, or every HYPOTHESIS_SLICE seconds
        when mixed), each followed (mixed) by twice as long on the shape builder."""
        run_seed = self.seed
        while time.monotonic() < self.end:
            slice_start = self._slice_start = time.monotonic()
            if self.engine in ("hypothesis", "mixed"):
                with contextlib.suppress(_Restart):
                    hypothesis_run(strategy, self.judge, run_seed)()
                self._restart = False
                run_seed += 1
            if self.engine in ("random", "mixed"):
                spent = time.monotonic() - slice_start
                until = time.monotonic() + (2 * spent if self.engine == "mixed" else RANDOM_BURST)
                self._random_burst(draw_case, min(self.end, until))

    def _random_burst(self, draw_case: Callable[[Draw], Case | None], until: float) -> None:
        """Cases from the shape builder with a seeded random stream: ~10x hypothesis's rate."""
        from sledfuzz.fuzz.shape import RandomDraw

        while time.monotonic() < until:
            self._random_index += 1
            case = draw_case(RandomDraw((self.seed << 40) ^ self._random_index))
            if case is None:
                continue
            try:
                self.judge(case)
            except _Restart:  # only hypothesis runs restart
                self._restart = False

    def judge(self, case: Case) -> None:
        """Judge one case. Stop/restart decisions are sticky, so hypothesis's replay of the
        example that raised raises the same exception again (no FlakyFailure)."""
        if time.monotonic() > self.end or (self.stop_when_found and self._all_awaited_found()):
            raise _Stop
        if self._restart:
            raise _Restart
        judged = judge_case(case, self.impl, self.strict_flags)
        self.result.counts.add(judged.status)
        if judged.status == "fail":
            self._progress(force=True)  # the parent's counts include this failure before its finding
            self._record(case, judged)
            if self.stop_when_found and self._all_awaited_found():
                raise _Stop
        self._progress()
        self._examples += 1
        if self._examples % RESTART_EVERY == 0 or (
                self.engine == "mixed" and time.monotonic() - self._slice_start > HYPOTHESIS_SLICE):
            self._restart = True
            raise _Restart

    def _all_awaited_found(self) -> bool:
        """Every awaited bug (``stop_on``, default: the target bugs) has been seen."""
        found = self.result.bugs_found
        wanted = found if self.stop_on is None else {c: f for c, f in found.items() if c in self.stop_on}
        return bool(wanted) and all(f is not None for f in wanted.values())

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.emit and (force or now - self._last_progress > 0.5):
            self._last_progress = now
            self.emit(("progress", self.name, dict(asdict(self.result.counts), seed=self.seed)))  # seed: which cell

    def _send(self, kind: str, data: dict[str, Any]) -> None:
        if self.emit:
            self.emit((kind, self.name, data))

    # -- findings ---------------------------------------------------------------------------------

    def _record(self, case: Case, judged: Judged) -> None:
        """Write each new invariant's case at once; minimise the case once, for its most
        interesting new invariant (a target bug's, else an undeclared one, else any)."""
        from sledfuzz.fuzz.fresh import confirm

        found_at = time.monotonic() - self.start
        new = [(inv, msg) for inv, msg in judged.messages_by_invariant() if inv not in self.result.findings]
        if not new:
            return
        confirmed, again = confirm(case, self.impl, judged, self.strict_flags)
        if not confirmed:
            self._harness_fault(case, judged, again, found_at)
            return
        first = [self._first_seen(case, judged, inv, msg, found_at) for inv, msg in new]
        self._write_minimal(case, judged, again, first)

    def _found_by(self) -> str:
        return f"sledfuzz {self.engine} search, seed {self.seed}"

    def _harness_fault(self, case: Case, judged: Judged, again: Judged, found_at: float) -> None:
        """A failure a fresh engine does not reproduce: counted, written to ``harness-faults/``."""
        from sledfuzz.fuzz.fresh import MAX_FILES, write_harness_fault

        self.result.counts.harness_faults += 1
        path = ""
        if self.out_dir and self.result.counts.harness_faults <= MAX_FILES:
            path = write_harness_fault(self.out_dir, case, self.name, judged, again,
                                       {"impl": self.name, "found_by": self._found_by(),
                                        "seconds_to_find": f"{found_at:.3f}"})
        self._send("harness_fault", {"seconds": found_at, "path": path, "shared": sorted(judged.invariants),
                                     "fresh": sorted(again.invariants)})

    def _first_seen(self, case: Case, judged: Judged, inv: str, msg: str,
                    found_at: float) -> tuple[Finding, dict[str, str]]:
        """The finding of ``inv``, its raw case written at once; with its provenance."""
        prov = {"impl": self.name, "invariant": inv, "found_by": self._found_by(),
                "seconds_to_find": f"{found_at:.3f}", "message": msg}
        raw_path = ""
        if self.cell_dir is not None:
            raw_path = _write_case(self.cell_dir / f"{slug(inv)}.raw.json", case, self.name, judged, prov)
        finding = Finding(self.name, inv, msg, found_at, raw_path, raw_path, inv in self.impl.caps.known_invariants,
                          self.ctx.origin_name, origin_required=inv not in self.ctx.origin_invariants)
        self.result.findings[inv] = finding
        self._send("found", {"invariant": inv, "seconds": found_at, "path": raw_path, "known": finding.known})
        return finding, prov

    def _write_minimal(self, case: Case, judged: Judged, again: Judged,
                       first: list[tuple[Finding, dict[str, str]]]) -> None:
        """Minimise for the primary finding; each finding gets the minimal case if it still
        violates its invariant on a fresh engine, else the raw one (confirmed before)."""
        ctx = self.ctx
        primary = min(first, key=lambda fp: (fp[0].invariant not in self.target_invariants, fp[0].known))[0]
        small = minimal_case(case, self.impl, primary.invariant, origin=ctx.origin, strict_flags=self.strict_flags,
                             seconds=min(self.minimize_seconds, max(2.0, self.end - time.monotonic())),
                             shrink=self.minimize, fresh_judged=again)
        raw_origin = judge_case(case, ctx.origin, self.strict_flags, fresh=True) if ctx.origin is not None else None
        for finding, prov in first:
            use_small = finding.invariant in small.judged.invariants
            chosen, chosen_j, chosen_o = ((small.case, small.judged, small.origin_judged) if use_small
                                          else (case, judged, raw_origin))
            finding.origin_status = chosen_o.status if chosen_o else None
            finding.checked = True
            if self.cell_dir is not None:
                prov = dict(prov, minimized="yes" if self.minimize and use_small else "no")
                finding.case_path = _write_case(self.cell_dir / f"{slug(finding.invariant)}.json", chosen, self.name,
                                                chosen_j, prov, ctx.origin_name, chosen_o)
            self._send("minimized", {"invariant": finding.invariant, "path": finding.case_path,
                                     "origin_status": finding.origin_status})


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
    """Search one implementation for ``seconds`` (or until ``deadline``, a ``time.monotonic()``
    value, whichever is first); see the module docstring and ``CellSearch``."""
    return CellSearch(impl_name, seconds=seconds, seed=seed, strict_flags=strict_flags, out_dir=out_dir,
                      stop_when_found=stop_when_found, minimize=minimize, emit=emit, deadline=deadline,
                      minimize_seconds=minimize_seconds, stop_on=stop_on, engine=engine, elf=elf).run()
