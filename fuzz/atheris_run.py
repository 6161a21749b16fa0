"""``sledfuzz fuzz --engine atheris``: run the libFuzzer target, then collect and minimise findings.

The target runs in child processes (libFuzzer owns its process), one per job with its own
``-seed``, each stopping at ``-max_total_time`` or at its first finding. The working corpus is
a fresh temporary directory: seed inputs are used only when ``--corpus`` names them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz.campaign import CellResult, Counts, Finding, cell_context, judge_case, minimize_finding, slug
from fuzz.corpus import Entry, atomic_write_text, load_entry

ROOT = Path(__file__).resolve().parent.parent
DICT = ROOT / "corpus" / "fuzz_trampoline.dict"


def run_atheris(impl_name: str, *, seconds: float, jobs: int = 1, seed: int = 0, out_dir: str = "sledfuzz-out",
                strict_flags: bool = False, corpus: str | None = None, minimize: bool = True) -> CellResult:
    ctx = cell_context(impl_name)
    impl, origin_name, origin = ctx.impl, ctx.origin_name, ctx.origin
    result = ctx.new_result(seed)
    art = Path(out_dir) / f"atheris-{slug(impl_name)}"
    art.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SLEDFUZZ_IMPL=impl_name, SLEDFUZZ_OUT=str(art),
               SLEDFUZZ_STRICT_FLAGS="1" if strict_flags else "0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    start = time.time()
    procs: list[subprocess.Popen[bytes]] = []
    work_dirs: list[str] = []
    try:
        for i in range(max(1, jobs)):
            work = tempfile.mkdtemp(prefix="sledfuzz-atheris-")
            work_dirs.append(work)
            if corpus:
                for f in Path(corpus).iterdir():
                    if f.is_file():
                        shutil.copy(f, work)
            cmd = [sys.executable, "-m", "fuzz.fuzz_trampoline", f"-max_total_time={max(1, int(seconds))}",
                   f"-seed={seed + i + 1}", f"-artifact_prefix={art}/", "-timeout=20", "-rss_limit_mb=4096",
                   "-print_final_stats=0"]
            if DICT.exists():
                cmd.append(f"-dict={DICT}")
            cmd.append(work)
            log = open(art / f"libfuzzer-{i}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT)))
        deadline = time.time() + seconds + 60
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
    except KeyboardInterrupt:
        result.interrupted = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=10)
    finally:
        for w in work_dirs:
            shutil.rmtree(w, ignore_errors=True)
    result.seconds = time.time() - start
    for stats_file in art.glob("stats-*.json"):
        try:
            data = json.loads(stats_file.read_text())
        except (OSError, ValueError):
            continue
        c = Counts(**{k: int(data.get(k, 0)) for k in ("cases", "judged", "failed", "refused", "unspecified", "invalid")})
        result.counts.merge(c)
        stats_file.unlink()
    # libFuzzer saves every input the target raised on; a finding also has its .json: an input
    # without one made sledfuzz itself raise (a tool error, never a clean run)
    for unit in sorted(art.glob("crash-*")):
        if unit.suffix != ".json" and unit.stat().st_mtime >= start - 1 and not unit.with_suffix(".json").exists():
            result.error = f"the libFuzzer target raised on {unit} (not a finding; traceback in {art}/libfuzzer-*.log)"
    cell_dir = Path(out_dir) / slug(impl_name)
    for crash_json in sorted(art.glob("crash-*.json"), key=lambda p: p.stat().st_mtime):
        if crash_json.stat().st_mtime < start - 1:
            continue  # a previous run's finding
        entry = load_entry(crash_json)
        j = judge_case(entry.case, impl, strict_flags)
        found_at = crash_json.stat().st_mtime - start
        for inv in sorted(j.invariants):
            if inv in result.findings:
                continue
            msg = next((m for m in j.messages if m.startswith(inv)), inv)
            fnd = Finding(impl_name, inv, msg, found_at, str(crash_json), str(crash_json),
                          inv in impl.caps.known_invariants, origin_name,
                          origin_required=inv not in ctx.origin_invariants)
            demand = origin if origin is not None and judge_case(entry.case, origin, strict_flags).passed \
                else None
            small = minimize_finding(entry.case, impl, inv, origin=demand, strict_flags=strict_flags) if minimize \
                else entry.case
            small_j = judge_case(small, impl, strict_flags)
            expect = {impl_name: small_j.verdict}
            if origin is not None and origin_name:
                oj = judge_case(small, origin, strict_flags)
                fnd.origin_status = oj.status
                expect[origin_name] = oj.verdict
            prov = dict(entry.provenance, invariant=inv, minimized="yes" if minimize else "no")
            small_path = cell_dir / f"{slug(inv)}.json"
            atomic_write_text(small_path, Entry(small, expect, prov).to_json())
            fnd.case_path = str(small_path)
            result.findings[inv] = fnd
    return result
