"""Shared measuring tools of the benchmarks: a probe around the judge, a structure key, the engines.

The benchmarks measure what a user runs (``fuzz.campaign.search_cell``, the atheris target), so
they do not copy the search loops: they wrap ``sledfuzz.fuzz.oracle.judge``, the one function every engine
calls per case (``fuzz.campaign.judge_case`` imports it at call time), and read the time split the
judge and the scenario already keep. Everything outside the judge is generation and search
bookkeeping (hypothesis or the shape builder, the campaign's loop).
"""

from __future__ import annotations

import sys
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sledfuzz.fuzz.oracle
from sledfuzz.model.case import Case

#: The judge's stages, in the order a case goes through them (``expect`` and ``invariants`` from
#: ``judge(timing=...)``, the rest from ``Scenario.timing``).
STAGES = ("expect", "jit", "setup", "run", "collect", "invariants")


def structure_of(case: Case) -> tuple[Any, ...]:
    """What makes two cases structurally different: target, sled, argument sizes, link kinds in
    order, the raw flags (None: derived by the core) and which links ask for the ip, the return
    size, teardown. Values and layout are not part of it (a value variant has the same structure).
    Cheap on purpose: it runs inside the measured loop."""
    fn = case.function
    return (
        case.target,
        case.sled,
        tuple((a.size, a.is_struct) for a in fn.args),
        tuple((lk.kind, lk.wants_ip) for lk in case.links),
        case.flags,
        fn.ret_size,
        case.teardown,
    )


@dataclass
class JudgeProbe:
    """Counts and times every judge call while installed (see ``probe_judge``).

    ``on_verdict(case, verdict, t)`` is called after each judge call with the monotonic time;
    ``first_*`` are the wall and CPU times of the first call's start (the first generated case).
    """

    on_verdict: Callable[[Case, sledfuzz.fuzz.oracle.Verdict, float], None] | None = None
    calls: int = 0
    judge_seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    structures: set[tuple[Any, ...]] = field(default_factory=set)
    first_wall: float | None = None
    first_cpu: float | None = None
    overhead: float = 0.0  # the probe's own bookkeeping (structures, callbacks), not the tool's
    track_structures: bool = True
    scenario_timing: dict[str, float] = field(default_factory=dict)
    scenario_before: dict[str, float] = field(default_factory=dict)

    def split(self) -> dict[str, float]:
        """Seconds per judge stage so far (readable while installed)."""
        out = dict(self.stages)
        for k, v in self.scenario_timing.items():
            out[k] = out.get(k, 0.0) + v - self.scenario_before.get(k, 0.0)
        return out

    def figures(self, *, engine: str, impl: str, cases: int, spawned_at: float | None,
                generation_seconds: float | None, counts: dict[str, int],
                found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """One search's figures as the benches record them (in-process searches and the atheris child)."""
        now_wall, now_cpu = time.monotonic(), time.process_time()
        first_wall = self.first_wall or now_wall
        return {
            "engine": engine,
            "impl": impl,
            "cases": cases,
            "wall": now_wall - first_wall,
            "cpu": now_cpu - (self.first_cpu or now_cpu),
            "startup": (time.time() - (now_wall - first_wall)) - spawned_at if spawned_at else None,
            "generation_seconds": generation_seconds,
            "judge_seconds": self.judge_seconds,
            "stages": self.split(),
            "probe_seconds": self.overhead,
            "structures": len(self.structures),
            "counts": counts,
            "found": found,
        }


@contextmanager
def probe_judge(probe: JudgeProbe) -> Iterator[JudgeProbe]:
    """Install ``probe`` around ``sledfuzz.fuzz.oracle.judge`` for the duration of the ``with`` block."""
    from sledfuzz.emu.scenario import scenario_for

    real = sledfuzz.fuzz.oracle.judge
    probe.scenario_timing = scenario_for(None).timing
    probe.scenario_before = dict(probe.scenario_timing)

    def judge(case: Case, impl_or_name: Any, **kw: Any) -> sledfuzz.fuzz.oracle.Verdict:
        t0 = time.perf_counter()
        if probe.first_wall is None:  # process_time is a system call (~5 us here): only once
            probe.first_wall, probe.first_cpu = time.monotonic(), time.process_time()
        timing = kw.pop("timing", None)
        own: dict[str, float] = {}
        verdict = real(case, impl_or_name, timing=own, **kw)
        if timing is not None:
            for k, v in own.items():
                timing[k] = timing.get(k, 0.0) + v
        probe.calls += 1
        t1 = time.perf_counter()
        probe.judge_seconds += t1 - t0
        probe.stages["expect"] += own.get("expect", 0.0)
        probe.stages["invariants"] += own.get("invariants", 0.0)
        if probe.track_structures:
            probe.structures.add(structure_of(case))
        if probe.on_verdict is not None:
            probe.on_verdict(case, verdict, time.monotonic())
        probe.overhead += time.perf_counter() - t1
        return verdict

    sledfuzz.fuzz.oracle.judge = judge
    try:
        yield probe
    finally:
        sledfuzz.fuzz.oracle.judge = real


def search_engines() -> tuple[str, ...]:
    """The in-process engines of ``fuzz.campaign.search_cell`` (``hypothesis``, ``random``, ``mixed``)."""
    from sledfuzz.fuzz.campaign import Engine

    return tuple(typing.get_args(Engine))


def fuzz_default_engine() -> str:
    """The engine ``sledfuzz fuzz`` uses when none is named (read from its own parser)."""
    from sledfuzz.fuzz.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    fuzz_parser = sub.choices["fuzz"]  # type: ignore[index]
    return str(fuzz_parser.get_default("engine"))


def run_search(impl_name: str, engine: str, seconds: float, seed: int, *,
               awaited: dict[str, list[str]] | None = None, spawned_at: float | None = None) -> dict[str, Any]:
    """Run ``search_cell`` as ``sledfuzz fuzz``/``run`` do (no output files, no minimising) and
    measure it. With ``awaited`` (bug -> invariants) the search stops once every awaited bug was
    seen (the campaign's own stop rule, ``stop_on``) and the result says when each was first seen."""
    from sledfuzz.fuzz.campaign import resolve, search_cell

    target = resolve(impl_name).name
    found: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    last: list[Any] = [None]
    probe = JudgeProbe()
    own = [0]

    def on_verdict(case: Case, verdict: sledfuzz.fuzz.oracle.Verdict, t: float) -> None:
        if verdict.impl != target:
            return  # the campaign judging a finding on the configuration it derives from
        if case is last[0]:
            return  # the campaign re-judging the case it just recorded
        last[0] = case
        own[0] += 1
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
        hit = {v.invariant for v in verdict.violations}
        for bug, invs in (awaited or {}).items():
            if bug not in found and hit & set(invs):
                found[bug] = {"cases": own[0], "seconds": t - (probe.first_wall or t),
                              "invariants": sorted(hit & set(invs)), "case": case.to_json(indent=None)}

    probe.on_verdict = on_verdict
    with probe_judge(probe):
        res = search_cell(impl_name, seconds=seconds, seed=seed, out_dir=None, minimize=False,
                          stop_when_found=bool(awaited), stop_on=frozenset(awaited) if awaited else None,
                          engine=engine)  # type: ignore[arg-type]
    return {**probe.figures(engine=engine, impl=impl_name, cases=own[0], spawned_at=spawned_at,
                            generation_seconds=None, counts=counts, found=found),
            "error": res.error}


def error_tail(stderr: str, n: int = 4) -> str:
    """The lines of a failed child's stderr that say what went wrong (not libFuzzer's chatter)."""
    keep = [ln for ln in stderr.splitlines()
            if ln.strip() and not ln.startswith(("INFO:", "#", "WARNING:", "Dictionary:"))]
    return " | ".join(keep[-n:])


def child_command(engine: str, impl: str, seconds: float, seed: int, out: str,
                  awaited: dict[str, list[str]] | None = None) -> list[str]:
    """The command measuring one engine in a fresh process (what a user starts), result -> ``out``."""
    import json

    here = Path(__file__).resolve().parent
    common = ["--impl", impl, "--seconds", str(seconds), "--seed", str(seed), "--out", out,
              "--spawned-at", repr(time.time())]
    if awaited:
        common += ["--await", json.dumps(awaited)]
    if engine == "atheris":
        return [sys.executable, str(here / "atheris_child.py"), *common]
    return [sys.executable, str(here / "measure.py"), "--engine", engine, *common]


def _main() -> None:
    """Child entry point for the in-process engines (see ``child_command``)."""
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--impl", default="v6.19")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--await", dest="awaited", default="")
    ap.add_argument("--spawned-at", type=float, default=None)
    a = ap.parse_args()
    result = run_search(a.impl, a.engine, a.seconds, a.seed,
                        awaited=json.loads(a.awaited) if a.awaited else None, spawned_at=a.spawned_at)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    _main()
