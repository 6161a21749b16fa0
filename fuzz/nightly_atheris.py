"""The atheris engine of a nightly task, with a corpus that grows across nights.

libFuzzer reads the persistent corpus (``STATE/atheris/<configuration>/``) and writes the inputs
that reach new coverage into a fresh directory; libFuzzer stops at its first finding, so the task
starts it again (new ``-seed``) until its time is up. At the end ``-merge=1`` folds the new inputs
into the persistent corpus and prunes it to the inputs that still add coverage. Findings are the
case JSON files the target writes next to its crash files; each new invariant is minimised here
and reported as a ``minimized`` event, as the search engine reports its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sledfuzz
from sledfuzz.fuzz.nightly_plan import Checkout, Task

IMPORT_ROOT = Path(sledfuzz.__file__).resolve().parent.parent  # where sledfuzz is imported from: libFuzzer's child too
MAX_RUNS = 50  # libFuzzer restarts per task (each finding ends a run)
MERGE_RESERVE = 20.0  # seconds kept for -merge=1 (it instruments the imports again before merging)
COUNT_KEYS = ("cases", "judged", "failed", "refused", "unspecified", "invalid")

Emit = Callable[[tuple[str, str, dict[str, Any]]], None]
_CHILDREN: list[subprocess.Popen[bytes]] = []  # libFuzzer processes of this worker, each its own process group


def stop_children() -> None:
    """Kill every libFuzzer process group this worker started (also libFuzzer's own merge child)."""
    for proc in _CHILDREN:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """libFuzzer must not outlive the worker that started it (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _env(task: Task, artifacts: Path) -> dict[str, str]:
    env = dict(os.environ, SLEDFUZZ_IMPL=task.config.impl, SLEDFUZZ_OUT=str(artifacts), SLEDFUZZ_STRICT_FLAGS="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(IMPORT_ROOT), os.environ.get("PYTHONPATH", "")])))
    if task.config.linux_src:
        env["SLEDFUZZ_LINUX_SRC"] = task.config.linux_src
    return env


def _target(*flags: str) -> list[str]:
    return [sys.executable, "-m", "sledfuzz.fuzz.fuzz_trampoline", *flags]


def corpus_size(path: Path) -> int:
    return sum(1 for f in path.iterdir() if f.is_file()) if path.is_dir() else 0


def run_atheris_task(task: Task, *, work_dir: Path, corpus_dir: Path, deadline_wall: float,
                     emit: Emit, checkout: Checkout | None = None) -> tuple[dict[str, int], str]:
    """Fuzz until the task's time is up; returns (counts, error or ""). ``checkout``: the seeds of
    an empty corpus and libFuzzer's dictionary (None: neither)."""
    from sledfuzz.fuzz.campaign import Counts

    artifacts = work_dir / "artifacts"
    fresh = work_dir / "new-inputs"
    for d in (artifacts, fresh, corpus_dir):
        d.mkdir(parents=True, exist_ok=True)
    seeds = checkout.atheris_seeds if checkout is not None else None
    dictionary = checkout.atheris_dict if checkout is not None else None
    if corpus_size(corpus_dir) == 0 and seeds is not None and seeds.is_dir():
        for f in seeds.iterdir():
            shutil.copy(f, corpus_dir / f.name)
    before = corpus_size(corpus_dir)
    env = _env(task, artifacts)
    hard_end = min(time.time() + task.seconds, deadline_wall)
    end = hard_end - min(MERGE_RESERVE, 0.3 * max(0.0, hard_end - time.time()))  # the merge runs inside the task's time
    done = Counts()
    seen: set[str] = set()
    error = ""
    runs = 0
    emit(("corpus", task.task_id, {"before": before}))
    while runs < MAX_RUNS and end - time.time() > 3:
        runs += 1
        started = time.time()
        cmd = _target(f"-max_total_time={max(1, int(end - time.time()))}", f"-seed={task.seed + runs}",
                      f"-artifact_prefix={artifacts}/", "-timeout=20", "-rss_limit_mb=4096", "-print_final_stats=0",
                      "-handle_int=0")
        if dictionary is not None and dictionary.exists():
            cmd.append(f"-dict={dictionary}")
        cmd += [str(fresh), str(corpus_dir)]
        with open(work_dir / f"libfuzzer-{runs}.log", "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent, start_new_session=True)
            _CHILDREN.append(proc)
            stopped = False
            try:  # libFuzzer's own -max_total_time starts after the imports are instrumented: the wall clock rules
                while proc.poll() is None:
                    time.sleep(1.0)
                    emit(("progress", task.task_id, _with(done, _stats(artifacts))))
                    if time.time() > end and not stopped:
                        stopped = True
                        proc.terminate()
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        done = _merge_counts(done, _stats(artifacts, consume=True))
        emit(("progress", task.task_id, _counts_dict(done)))
        findings = _collect(task, artifacts, started, seen, emit)
        if proc.returncode not in (0, None) and not findings and not stopped:
            error = f"libFuzzer exited with {proc.returncode} without a finding (log: {work_dir}/libfuzzer-{runs}.log)"
            emit(("error", task.task_id, {"message": error}))
            break
    after = _merge_corpus(env, corpus_dir, fresh, work_dir, timeout=max(1.0, hard_end - time.time()))
    emit(("corpus", task.task_id, {"before": before, "after": after}))
    return _counts_dict(done), error


def _stats(artifacts: Path, consume: bool = False) -> dict[str, int]:
    total = dict.fromkeys(COUNT_KEYS, 0)
    for f in artifacts.glob("stats-*.json"):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for k in COUNT_KEYS:
            total[k] += int(data.get(k, 0))
        if consume:
            f.unlink(missing_ok=True)
    return total


def _counts_dict(c: Any) -> dict[str, int]:
    return {k: int(getattr(c, k)) for k in COUNT_KEYS}


def _with(done: Any, current: dict[str, int]) -> dict[str, int]:
    return {k: int(getattr(done, k)) + current[k] for k in COUNT_KEYS}


def _merge_counts(done: Any, current: dict[str, int]) -> Any:
    from sledfuzz.fuzz.campaign import Counts

    c = Counts(**_counts_dict(done))
    c.merge(Counts(**current))
    return c


def _collect(task: Task, artifacts: Path, since: float, seen: set[str], emit: Emit) -> int:
    """Minimise each new invariant of this run's case files; emit ``minimized`` events."""
    from sledfuzz.fuzz.campaign import cell_context, judge_case, minimal_case, slug
    from sledfuzz.fuzz.corpus import Entry, atomic_write_text, load_entry

    ctx = cell_context(task.config.impl)
    found = 0
    for crash in sorted(artifacts.glob("crash-*.json"), key=lambda p: p.stat().st_mtime):
        if crash.stat().st_mtime < since - 1:
            continue
        found += 1
        entry = load_entry(crash)
        judged = judge_case(entry.case, ctx.impl)
        for inv in sorted(judged.invariants - seen):
            seen.add(inv)
            small = minimal_case(entry.case, ctx.impl, inv, origin=ctx.origin, strict_flags=False)
            expect = {task.config.impl: small.judged.verdict}
            origin_status = None
            if small.origin_judged is not None and ctx.origin_name:
                origin_status = small.origin_judged.status
                expect[ctx.origin_name] = small.origin_judged.verdict
            prov = dict(entry.provenance, impl=task.config.impl, invariant=inv, minimized="yes",
                        message=next((m for m in small.judged.messages if m.startswith(inv)), inv))
            path = artifacts.parent / f"{slug(inv)}.json"
            atomic_write_text(path, Entry(small.case, expect, prov).to_json())
            emit(("minimized", task.task_id, {"invariant": inv, "path": str(path), "origin_status": origin_status,
                                              "origin_required": inv not in ctx.origin_invariants}))
        crash.rename(crash.with_name("seen-" + crash.name))
    return found


def _merge_corpus(env: dict[str, str], corpus_dir: Path, fresh: Path, work_dir: Path, *, timeout: float) -> int:
    """``-merge=1``: the persistent corpus becomes the inputs of old + new that add coverage."""
    if corpus_size(fresh) == 0:
        return corpus_size(corpus_dir)
    merged = corpus_dir.with_name(corpus_dir.name + ".merging")
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    with open(work_dir / "merge.log", "wb") as log:
        # its own process group: libFuzzer runs the merge in a child of its own, stopped with it
        proc = subprocess.Popen(_target("-merge=1", str(merged), str(corpus_dir), str(fresh)), env=env, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                start_new_session=True)
        _CHILDREN.append(proc)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -1
    if rc != 0 or corpus_size(merged) == 0:
        shutil.rmtree(merged, ignore_errors=True)  # keep old + new unpruned rather than lose inputs
        for f in fresh.iterdir():
            shutil.copy(f, corpus_dir / f.name)
        return corpus_size(corpus_dir)
    old = corpus_dir.with_name(corpus_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    corpus_dir.rename(old)
    merged.rename(corpus_dir)
    shutil.rmtree(old, ignore_errors=True)
    return corpus_size(corpus_dir)
