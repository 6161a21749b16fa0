"""``sledfuzz fuzz --engine atheris``: run the libFuzzer target, then collect and minimise findings.

The target runs in child processes (libFuzzer owns its process), one per job with its own
``-seed``, each stopping at ``-max_total_time`` or at its first finding. The working corpus is
a fresh temporary directory: seed inputs are used only when ``--corpus`` names them.

The children ignore SIGINT and SIGTERM (their own session, libFuzzer's handlers off): on an
interrupt the parent asks each to end with SIGUSR1 (libFuzzer's graceful exit), kills what is
left after a grace period, removes the working directories, and reports what was found.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sledfuzz
from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz import interrupt
from sledfuzz.fuzz.campaign import CellResult, Counts, Finding, cell_context, dir_name, minimal_case, slug
from sledfuzz.fuzz.corpus import Entry, load_entry, with_tool_version, write_finding
from sledfuzz.fuzz.elf_cases import ElfSource

ROOT = Path(__file__).resolve().parent.parent  # the checkout (fuzz/ is a folder of it): the corpus and dictionary
DICT = ROOT / "corpus" / "fuzz_trampoline.dict"
#: Where the ``sledfuzz`` package is imported from (the checkout, or site-packages): the libFuzzer child's path.
IMPORT_ROOT = Path(sledfuzz.__file__).resolve().parent.parent


STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2

Progress = Callable[[CellResult], None]


def _stop(procs: list[subprocess.Popen[bytes]], sig: int) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


def _read_stats(art: Path, procs: list[subprocess.Popen[bytes]], remove: bool = False) -> Counts:
    """This run's children's counts (another run sharing the directory has other pids)."""
    total = Counts()
    for stats_file in (art / f"stats-{p.pid}.json" for p in procs):
        try:
            data = json.loads(stats_file.read_text())
        except (OSError, ValueError):
            continue
        fields = ("cases", "judged", "failed", "refused", "unspecified", "invalid", "harness_faults")
        total.merge(Counts(**{k: int(data.get(k, 0)) for k in fields}))
        if remove:
            stats_file.unlink(missing_ok=True)
    return total


def run_atheris(impl_name: str, *, seconds: float, jobs: int = 1, seed: int = 0, out_dir: str = "sledfuzz-out",
                strict_flags: bool = False, corpus: str | None = None, minimize: bool = True,
                elf: ElfSource | None = None, on_progress: Progress | None = None) -> CellResult:
    ctx = cell_context(impl_name)
    impl, origin_name, origin = ctx.impl, ctx.origin_name, ctx.origin
    result = ctx.new_result(seed)
    art = Path(out_dir) / f"atheris-{dir_name(impl_name)}"
    art.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SLEDFUZZ_IMPL=impl_name, SLEDFUZZ_OUT=str(art), SLEDFUZZ_RUN_OUT=str(out_dir),
               SLEDFUZZ_STRICT_FLAGS="1" if strict_flags else "0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(IMPORT_ROOT), os.environ.get("PYTHONPATH", "")])))
    if elf is not None:
        env["SLEDFUZZ_ELF"] = elf.to_json()
    start = time.time()
    procs: list[subprocess.Popen[bytes]] = []
    work_dirs: list[str] = []
    logs = []
    with interrupt.deferred():
        try:
            for i in range(max(1, jobs)):
                if interrupt.requested():
                    break
                work = tempfile.mkdtemp(prefix="sledfuzz-atheris-")
                work_dirs.append(work)
                if corpus:
                    for f in Path(corpus).iterdir():
                        if f.is_file():
                            shutil.copy(f, work)
                cmd = [sys.executable, "-m", "sledfuzz.fuzz.fuzz_trampoline", f"-max_total_time={max(1, int(seconds))}",
                       f"-seed={seed + i + 1}", f"-artifact_prefix={art}/", "-timeout=20", "-rss_limit_mb=4096",
                       "-print_final_stats=0", "-handle_int=0", "-handle_term=0",
                       # full-length inputs from the start: the value-dependent bugs need 8-byte
                       # values, which libFuzzer's slow length growth withholds (docs/results.md)
                       "-len_control=0"]
                if DICT.exists():
                    cmd.append(f"-dict={DICT}")
                cmd.append(work)
                log = open(art / f"libfuzzer-{os.getpid()}-{i}.log", "wb")  # noqa: SIM115 - closed in finally
                logs.append(log)
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                              start_new_session=True, preexec_fn=interrupt.ignore_in_child))
            deadline = time.time() + seconds + 60
            kill_at: float | None = None
            while any(p.poll() is None for p in procs):
                if kill_at is None and (interrupt.requested() or time.time() > deadline):
                    result.interrupted = interrupt.requested()
                    _stop(procs, signal.SIGUSR1)
                    kill_at = time.time() + STOP_GRACE_SECONDS
                if kill_at is not None and time.time() > kill_at:
                    _stop(procs, signal.SIGKILL)
                if on_progress is not None:
                    result.counts = _read_stats(art, procs)
                    result.seconds = time.time() - start
                    on_progress(result)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    next(p for p in procs if p.poll() is None).wait(timeout=POLL_SECONDS)
        finally:
            _stop(procs, signal.SIGKILL)
            for p in procs:
                p.wait()
            for log in logs:
                log.close()
            for w in work_dirs:
                shutil.rmtree(w, ignore_errors=True)
        result.interrupted = result.interrupted or interrupt.requested()
        result.seconds = time.time() - start
        result.counts = _read_stats(art, procs, remove=True)
        # libFuzzer saves every input the target raised on; a finding also has its .json: an input
        # without one made sledfuzz itself raise (a tool error, never a clean run)
        for unit in sorted(art.glob("crash-*")):
            if unit.suffix != ".json" and unit.stat().st_mtime >= start - 1 and not unit.with_suffix(".json").exists():
                result.error = (f"the libFuzzer target raised on {unit} (not a finding; traceback in "
                                f"{art}/libfuzzer-*.log)")
        cell_dir = Path(out_dir) / dir_name(impl_name)
        for crash_json in sorted(art.glob("crash-*.json"), key=lambda p: p.stat().st_mtime):
            if crash_json.stat().st_mtime < start - 1:
                continue  # a previous run's finding
            entry = load_entry(crash_json)
            found_at = crash_json.stat().st_mtime - start
            recorded = entry.expect.get(impl_name)
            invariants = sorted(recorded.invariants) if recorded is not None else []
            messages = [m.strip() for m in str(entry.provenance.get("message", "")).split("; ")]
            for inv in invariants:
                if inv in result.findings:
                    continue
                msg = next((m for m in messages if m.startswith(inv)), inv)
                fnd = Finding(impl_name, inv, msg, found_at, str(crash_json), str(crash_json),
                              inv in impl.caps.known_invariants, origin_name,
                              origin_required=inv not in ctx.origin_invariants)
                result.findings[inv] = fnd
                if interrupt.requested():
                    continue  # recorded as found; minimisation and the origin check: not run
                try:
                    _minimize_into(fnd, entry, impl, impl_name, origin, origin_name, cell_dir, strict_flags,
                                   minimize)
                except interrupt.Interrupted:
                    result.interrupted = True
    return result


def _minimize_into(fnd: Finding, entry: Entry, impl: Implementation, impl_name: str, origin: Implementation | None,
                   origin_name: str | None, cell_dir: Path, strict_flags: bool, minimize: bool) -> None:
    """Minimise the crash case for ``fnd`` and check it on the origin; written atomically."""
    inv = fnd.invariant
    small = minimal_case(entry.case, impl, inv, origin=origin, strict_flags=strict_flags, shrink=minimize)
    if inv not in small.judged.invariants:  # the minimiser's engine disagreed: keep the case the target confirmed
        small = minimal_case(entry.case, impl, inv, origin=origin, strict_flags=strict_flags, shrink=False)
    expect = {impl_name: small.judged.verdict}
    if small.origin_judged is not None and origin_name:
        fnd.origin_status = small.origin_judged.status
        expect[origin_name] = small.origin_judged.verdict
    prov = dict(entry.provenance, invariant=inv, minimized="yes" if minimize else "no")
    small_path = write_finding(cell_dir / f"{slug(inv)}.json", Entry(small.case, expect, with_tool_version(prov)))
    fnd.case_path = str(small_path)
    fnd.checked = True
