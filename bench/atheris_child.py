"""The atheris target under measurement: one libFuzzer process, results as JSON (used by the benches).

libFuzzer owns its process and never returns, so the benchmarks run the target here, in a child:
the instrumented imports of ``fuzz.fuzz_trampoline`` come first (as in ``sledfuzz fuzz --engine
atheris``), then every input is turned into a case with the target's own ``case_from_bytes`` and
judged with ``fuzz.campaign.judge_case`` — the target's ``TestOneInput`` minus its stats and crash
files, and without stopping at the first finding when the bench waits for several bugs.
The child writes its JSON and leaves with ``os._exit`` when its time is up (``--seconds``) or
when every awaited bug has been seen (``--await JSON``: bug -> invariants).

    python bench/atheris_child.py --impl v6.19 --seconds 10 --seed 1 --out RESULT.json [--await JSON]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import shutil
import tempfile
from typing import Any

import atheris

# before any other project module: the target's imports are the instrumented ones
import sledfuzz.fuzz.fuzz_trampoline as target


def main(argv: list[str] | None = None) -> None:
    from bench.measure import JudgeProbe, probe_judge
    from sledfuzz.fuzz.campaign import judge_case, resolve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="v6.19")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--await", dest="awaited", default="", help="JSON: bug -> list of invariants")
    ap.add_argument("--spawned-at", type=float, default=None, help="time.time() when the parent started us")
    ap.add_argument("--libfuzzer", action="append", default=[], metavar="-FLAG=VALUE",
                    help="an extra libFuzzer flag (experiments, e.g. -len_control=0)")
    args = ap.parse_args(argv)

    impl = resolve(args.impl)
    awaited: dict[str, list[str]] = json.loads(args.awaited) if args.awaited else {}
    found: dict[str, dict[str, Any]] = {}
    gen = [0.0]
    counts: dict[str, int] = {}
    probe = JudgeProbe()
    work = tempfile.mkdtemp(prefix="sledfuzz-bench-atheris-")

    def finish() -> None:
        result = probe.figures(engine="atheris", impl=args.impl, cases=probe.calls, spawned_at=args.spawned_at,
                               generation_seconds=gen[0], counts=counts, found=found)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f)
        shutil.rmtree(work, ignore_errors=True)
        os._exit(0)

    def on_verdict(case: Any, verdict: Any, t: float) -> None:
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
        hit = {v.invariant for v in verdict.violations}
        for bug, invs in awaited.items():
            if bug not in found and hit & set(invs):
                found[bug] = {"cases": probe.calls, "seconds": t - (probe.first_wall or t),
                              "invariants": sorted(hit & set(invs)), "case": case.to_json(indent=None)}

    probe.on_verdict = on_verdict
    ctx = probe_judge(probe)
    ctx.__enter__()

    def test_one(data: bytes) -> None:
        if probe.first_wall is not None and time.monotonic() - probe.first_wall >= args.seconds:
            finish()
        t0 = time.perf_counter()
        case = target.case_from_bytes(data, impl.caps)
        gen[0] += time.perf_counter() - t0
        judge_case(case, impl)
        if awaited and len(found) == len(awaited):
            finish()

    cmd = [sys.argv[0], f"-seed={args.seed}", f"-max_total_time={int(args.seconds) + 30}", "-timeout=20",
           f"-artifact_prefix={work}{os.sep}",
           "-rss_limit_mb=4096", "-print_final_stats=0"]
    if target.__file__:
        dictionary = os.path.join(os.path.dirname(os.path.dirname(target.__file__)), "corpus", "fuzz_trampoline.dict")
        if os.path.exists(dictionary):
            cmd.append(f"-dict={dictionary}")
    cmd += args.libfuzzer
    cmd.append(work)
    atheris.Setup(cmd, test_one)
    atheris.Fuzz()
    finish()  # libFuzzer stopped on its own (its max_total_time): report what was done


if __name__ == "__main__":
    main()
