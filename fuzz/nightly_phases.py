"""The phases of a night before and around the campaign: corpus replay, the shared database's
findings, the property suite, and the campaign on the worker supervisor. Each writes its part of
``night.phases`` (a ``line`` for the reports, figures for summary.json) and stops between steps
when an interrupt arrived.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from sledfuzz.fuzz.nightly_findings import corpus_keys
from sledfuzz.fuzz.nightly_plan import (
    ATHERIS_MIN_SECONDS,
    Checkout,
    campaign_tasks,
)
from sledfuzz.fuzz.nightly_run import Night, check_interrupt


def phase_replay(night: Night, corpus: Path | None, deadline: float) -> None:
    """Every verdict the corpus expects, judged again."""
    from sledfuzz.fuzz.campaign import judge_case
    from sledfuzz.fuzz.corpus import entry_files, load_entry
    from sledfuzz.model.case import CaseError

    night.phase_name = "replay"
    start = time.time()
    rep: dict[str, Any] = {"files": 0, "verdicts": 0, "changed": [], "not_judged": []}
    if corpus is None:
        rep["line"] = "no corpus (--checkout has no corpus/regressions; --corpus DIR names one)"
    else:
        from sledfuzz.emu.impls.registry import ImplementationError, resolve

        for path in entry_files([str(corpus)]):
            check_interrupt()
            if time.time() > deadline:
                rep["not_judged"].append(f"{path}: no time left")
                continue
            try:
                entry = load_entry(path)
            except (OSError, CaseError, UnicodeDecodeError) as exc:
                rep["changed"].append(f"{path}: unreadable: {exc}")
                continue
            rep["files"] += 1

            for impl_name, expected in entry.expect.items():
                try:
                    j = judge_case(entry.case, resolve(impl_name))
                except ImplementationError as exc:
                    rep["not_judged"].append(f"{path} [{impl_name}]: {str(exc).splitlines()[0]}")
                    continue
                rep["verdicts"] += 1
                if j.verdict != expected:
                    rep["changed"].append(f"{path} [{impl_name}]: expected {expected.render()}, got {j.verdict.render()}")
        night.known |= corpus_keys([corpus])
        rep["line"] = (f"{rep['files']} corpus files, {rep['verdicts']} verdicts, {len(rep['changed'])} changed"
                       + (f", {len(rep['not_judged'])} not judged" if rep["not_judged"] else ""))
    rep["seconds"] = round(time.time() - start, 1)
    night.phases["replay"] = rep
    night.say(rep["line"])


def phase_shared_db(night: Night, deadline: float) -> None:
    """What the shared database holds for each configuration, judged before any search."""
    from sledfuzz.fuzz.campaign import judge_case
    from sledfuzz.fuzz.corpus import entry_from_dict
    from sledfuzz.model.case import CaseError

    night.phase_name = "shared database"
    start = time.time()
    db: dict[str, Any] = {"replayed": 0, "still_failing": 0}
    for c in night.configs:
        for text in night.shared.entries(c.label):
            check_interrupt()
            if time.time() > deadline:
                break
            try:
                entry = entry_from_dict(json.loads(text))
            except (ValueError, CaseError):
                continue
            db["replayed"] += 1
            j = judge_case(entry.case, night.impls[c.label])
            for inv in sorted(j.invariants):
                db["still_failing"] += 1
                night.add_finding(c.label, entry, inv, source=f"shared database ({night.db_spec.describe()})",
                                  message=next((m for m in j.messages if m.startswith(inv)), inv))
    db["seconds"] = round(time.time() - start, 1)
    db["line"] = (f"{db['replayed']} findings from the shared database replayed first, {db['still_failing']} "
                  "still failing")
    night.phases["shared_db"] = db
    night.say(db["line"])
    night.tick()


def phase_properties(night: Night, checkout: Checkout, seconds: float) -> None:
    """pytest on the checkout's tests/properties under the nightly profile, cut at its share of --time."""
    from sledfuzz.fuzz.nightly_db import ENV_DB
    from sledfuzz.fuzz.nightly_pytest import ENV_DEADLINE, ENV_RESULTS

    night.phase_name = "properties"
    results = night.out / "properties.jsonl"
    results.unlink(missing_ok=True)
    start = time.time()
    end = start + seconds
    env = dict(os.environ, HYPOTHESIS_PROFILE="nightly", **{ENV_DB: night.db_spec.url, ENV_DEADLINE: str(end - 5),
                                                           ENV_RESULTS: str(results)})
    if not night.db_spec.is_redis:
        env["SLEDFUZZ_HYPOTHESIS_DB"] = night.db_spec.url
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "sledfuzz.fuzz.nightly_pytest", "-p", "no:cacheprovider",
           "tests/properties"]
    if night.jobs > 1 and importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(night.jobs)]
    log = night.out / "properties.log"
    cut = False
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=str(checkout.root), env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                if time.time() > end:
                    cut = True
                    break
                time.sleep(0.5)
                night.tick()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    outcomes: dict[str, list[str]] = defaultdict(list)
    failed: list[dict[str, str]] = []
    if results.exists():
        for line in results.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            outcomes[rec["outcome"]].append(rec["test"])
            if rec["outcome"] == "failed":
                failed.append({"test": rec["test"], "reason": rec.get("reason", "")})
    status = "cut at its share of --time" if cut else f"exit {proc.returncode}"
    rep = {"status": status, "passed": len(outcomes["passed"]), "failed": failed, "skipped": len(outcomes["skipped"]),
           "seconds": round(time.time() - start, 1), "log": str(log),
           "line": f"{len(outcomes['passed'])} passed, {len(failed)} failed, {len(outcomes['skipped'])} skipped "
                   f"({status}; log {log})"}
    night.phases["properties"] = rep
    night.say(f"properties: {rep['line']}")


def phase_campaign(night: Night, checkout: Checkout, deadline: float, stop_at: float, *, atheris: bool,
                   search: bool) -> None:
    from sledfuzz.fuzz.nightly_workers import Supervisor, worker_main

    night.phase_name = "search"
    seconds = deadline - time.time()
    tasks = campaign_tasks(night.configs, seconds=seconds, jobs=night.jobs, seed=night.seed, atheris=atheris,
                           search=search)
    expect_fail = {c.label for c in night.configs if night.impls[c.label].caps.known_bugs}
    tasks.sort(key=lambda t: (t.engine != "atheris", t.config.label not in expect_fail))  # stable: plan order within
    night.tasks = {t.task_id: t for t in tasks}
    state_root = night.state.path.parent
    start = time.time()
    sup = Supervisor(jobs=night.jobs, work_root=night.out / "work", corpus_root=state_root / "atheris",
                     deadline_wall=deadline, stop_wall=stop_at, on_event=night.on_event, check=check_interrupt,
                     target=partial(worker_main, checkout=checkout))
    try:
        outcome = sup.run(tasks)
        night.not_run = [f"{night.tasks[t].config.label} ({night.tasks[t].engine})" for t in outcome.not_run]
    finally:
        night.running.clear()  # every worker is stopped by now
        elapsed = round(time.time() - start, 1)
        night.phases["search"] = {"seconds": elapsed, "tasks": len(tasks),
                                  "line": f"{len(tasks)} tasks on {night.jobs} workers for {elapsed} s "
                                          f"(engines: {', '.join(sorted({t.engine for t in tasks})) or 'none'})"}
        ath = night.phases.setdefault("atheris", {})
        corpora = ath.get("corpus", {})
        if atheris and not any(t.engine == "atheris" for t in tasks):
            ath["line"] = f"not run: its share of the campaign is below {ATHERIS_MIN_SECONDS:.0f} s per task"
        elif atheris and not corpora:
            ath["line"] = f"not started: its share of the time left was below {ATHERIS_MIN_SECONDS:.0f} s"
        elif corpora:
            ath["line"] = "; ".join(f"{k}: corpus {v.get('before', '?')} -> {v.get('after', 'not merged (cut)')} inputs"
                                    for k, v in corpora.items())


