"""Time-boxed searches of many configurations ("cells") in worker processes, findings never lost.

``sledfuzz run``, ``matrix`` and ``fuzz`` describe their cells as ``CellSpec``s; ``run_cells`` runs
them on ``--jobs`` processes (``fuzz.workers``), each through ``fuzz.search.search_cell``, and the
parent sees progress and findings as events. On SIGINT/SIGTERM (``fuzz.interrupt``) every
running cell stops between cases and returns what it found; cells not yet started never start.

This module is also where the campaign side is imported from: the names below come from the
modules that hold them (judging, configurations, results, the search, the minimal case).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sledfuzz.fuzz import interrupt, workers
from sledfuzz.fuzz.configurations import (
    CellContext,
    bug_keys,
    cell_context,
    derives_from,
    dir_name,
    expectation,
    resolve,
    shipped_configurations,
    slug,
)
from sledfuzz.fuzz.elf_cases import ElfSource
from sledfuzz.fuzz.judging import Judged, judge_case
from sledfuzz.fuzz.minimal_case import MINIMIZE_SECONDS, MinimalCase, minimal_case, minimize_finding
from sledfuzz.fuzz.results import CellResult, Counts, Expect, Finding
from sledfuzz.fuzz.search import DEFAULT_OUT, Emit, Engine, Event, search_cell

__all__ = [
    "DEFAULT_OUT", "MINIMIZE_SECONDS", "CellContext", "CellResult", "CellSpec", "Counts", "Emit", "Engine", "Event",
    "Expect", "Finding", "Judged", "MinimalCase", "bug_keys", "cell_context", "default_jobs", "derives_from",
    "dir_name", "expectation", "judge_case", "merge_results", "minimal_case", "minimize_finding", "resolve",
    "run_cells", "search_cell", "shipped_configurations", "slug",
]


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
    """The one place a cell is searched, in the parent (``jobs <= 1``) or in a worker process."""
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
