"""``sledfuzz nightly``: the unattended job a team reads in the morning (docs/nightly.md).

Within ``--time``: replay the corpus and the findings other machines stored in the shared example
database, run the property suite under the hypothesis ``nightly`` profile (from a checkout that
has it), then search every configuration on ``--jobs`` worker processes with the mixed
hypothesis/shape-builder engine and with atheris (whose corpus grows across nights). Each
minimised finding is keyed by (implementation, invariant, signature) and written to
``OUT/findings/`` as found; it is new when neither the corpus, nor earlier nights' state file, nor
the shared database knows the key. Four reports at the end (``fuzz.nightly_report``), also after
SIGINT/SIGTERM. Exit 0: nothing new; 1: something to read; 2: the job could not run; 130:
interrupted (the reports say so).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz import __version__
from fuzz.nightly_db import DatabaseSpec, DatabaseUnavailable, SharedFindings, cache_dir, default_directory, open_database
from fuzz.nightly_findings import FindingKey, NightState, corpus_keys, signature
from fuzz.nightly_plan import (
    ATHERIS_MIN_SECONDS,
    Configuration,
    PlanError,
    Shard,
    Task,
    campaign_tasks,
    kernel_configurations,
    parse_shard,
    properties_seconds,
    report_reserve,
    shard_of,
    slug,
)

ROOT = Path(__file__).resolve().parent.parent
EXIT_CLEAN, EXIT_FINDINGS, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 130
PHASES = ("replay", "properties", "search", "atheris")
PROGRESS_EVERY = 10.0  # seconds between progress lines (and progress.json rewrites at most every second)


class NightError(Exception):
    """The job cannot run (bad option, Redis down, a configuration that does not resolve); one line."""


class NightInterrupted(BaseException):
    """SIGINT or SIGTERM: stop the phases, keep what was found, write the reports, exit 130."""


# -- the command line -------------------------------------------------------------------------------


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|h)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration (seconds, or 90m, 1h), got {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


def _jobs(text: str) -> int:
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes or 'auto', got {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"expected 1..256 worker processes, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (a non-negative integer), got {text!r}") from None
    if not 0 <= value < 1 << 63:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..2**63-1, got {value}")
    return value


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except PlanError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any) -> None:
    """Register ``sledfuzz nightly`` on the CLI's subparsers."""
    p = sub.add_parser(
        "nightly", help="the unattended nightly job: replay, properties, search, atheris; four reports",
        description="A time-boxed nightly campaign (docs/nightly.md). Exit codes: 0 no new finding, 1 new "
                    "findings (or a changed corpus verdict, a failing property, a declared bug not found), 2 the "
                    "job could not run, 130 interrupted (after writing the reports).")
    p.add_argument("--time", type=_duration, default=3600.0, metavar="T",
                   help="budget covering every phase: seconds, or 90m, 1h (default 1h)")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="configurations to search (repeatable; default: every clean configuration, plus kernel "
                        "for each --linux-src)")
    p.add_argument("--linux-src", action="append", default=[], metavar="PATH",
                   help="a Linux tree (directory or tarball): adds a 'kernel' configuration built from it (repeatable)")
    p.add_argument("--jobs", type=_jobs, default=0, metavar="N|auto", help="worker processes (default auto: the CPUs)")
    p.add_argument("--out", default="nightly-out", metavar="DIR",
                   help="where reports and findings go (default ./nightly-out)")
    p.add_argument("--seed", type=_seed, default=None, help="seed of the night (default: today's date, YYYYMMDD)")
    p.add_argument("--shard", type=_shard, default=Shard(1, 1), metavar="I/N",
                   help="run the I-th of N deterministic slices of the configurations (default 1/1)")
    p.add_argument("--hypothesis-db", metavar="URL|DIR",
                   help="shared example database: redis://HOST:PORT[/DB] or a directory "
                        "(default $XDG_CACHE_HOME/sledfuzz/hypothesis)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="earlier nights' seen findings and the atheris corpora (default $XDG_CACHE_HOME/sledfuzz/nightly)")
    p.add_argument("--corpus", metavar="DIR", help="regression corpus to replay first (default: the checkout's "
                                                   "corpus/regressions, if any)")
    p.add_argument("--skip", action="append", choices=PHASES, default=[], help="leave out a phase (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")


# -- configurations -----------------------------------------------------------------------------------


def _impl_for(config: Configuration) -> Any:
    """The implementation object in this (the parent) process; kernel trees each their own."""
    from emu.impls.registry import ImplementationError, resolve

    try:
        if config.impl == "kernel" and config.linux_src:
            from emu.kernel.impl import factory

            return factory(config.linux_src)
        return resolve(config.impl)
    except ImplementationError as exc:
        raise NightError(str(exc).splitlines()[0]) from None


def choose_configurations(names: list[str] | None, trees: list[str]) -> list[Configuration]:
    from fuzz.campaign import expectation, shipped_configurations

    for tree in trees:
        if not Path(tree).exists():
            raise NightError(f"--linux-src {tree}: no such file or directory")
    kernels = kernel_configurations(trees)
    if names:
        out: list[Configuration] = []
        for n in dict.fromkeys(names):
            if n == "kernel":
                if not kernels:
                    raise NightError("--impl kernel needs --linux-src PATH (one kernel configuration per tree)")
                out += kernels
            else:
                out.append(Configuration(n, n))
        return out
    clean = [Configuration(n, n) for n in shipped_configurations() if expectation(_impl_for(Configuration(n, n))) == "pass"]
    return clean + kernels


# -- the night ----------------------------------------------------------------------------------------


@dataclass
class Night:
    """Everything a run learns, folded into the summary the reports are rendered from."""

    out: Path
    configs: list[Configuration]
    budget: float
    jobs: int
    seed: int
    shard: Shard
    db_spec: DatabaseSpec
    shared: SharedFindings
    state: NightState
    quiet: bool
    started_wall: float = field(default_factory=time.time)
    known: set[FindingKey] = field(default_factory=set)
    impls: dict[str, Any] = field(default_factory=dict)
    findings: dict[FindingKey, dict[str, Any]] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    counts: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (task, attempt) -> [start, end]
    given: dict[tuple[str, int], float] = field(default_factory=dict)  # (task, attempt) -> search seconds given
    deaths: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    kernel_versions: dict[str, str] = field(default_factory=dict)
    phase_name: str = "starting"
    _last_sample: dict[str, float] = field(default_factory=dict)
    _last_line: float = 0.0
    _last_file: float = 0.0

    @property
    def by_label(self) -> dict[str, Configuration]:
        return {c.label: c for c in self.configs}

    def elapsed(self) -> float:
        return time.time() - self.started_wall

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"nightly: {text}", file=sys.stderr, flush=True)

    # -- findings ------------------------------------------------------------------------------

    def add_finding(self, label: str, entry: Any, invariant: str, *, source: str, message: str = "",
                    origin_ok: bool | None = None) -> dict[str, Any] | None:
        """Record a minimised failing case once per key; new keys go to the state file and the database."""
        from fuzz.corpus import Entry, atomic_write_text

        impl = self.impls[label]
        key = FindingKey(label, invariant, signature(entry.case))
        if key in self.findings:
            return None
        declared = invariant in impl.caps.known_invariants and origin_ok is not False
        status = "declared" if declared else ("seen" if key in self.known else "new")
        path = self.out / "findings" / slug(label) / f"{slug(invariant)}-{key.signature}.json"
        prov = dict(entry.provenance, nightly_status=status, nightly_source=source, signature=key.signature)
        text = Entry(entry.case, entry.expect, prov).to_json()
        atomic_write_text(path, text)
        config = self.by_label[label]
        repro = f"sledfuzz explain {path} --impl {config.impl}"
        if config.linux_src:
            repro = f"SLEDFUZZ_LINUX_SRC={config.linux_src} {repro}"
        rec: dict[str, Any] = {"impl": label, "invariant": invariant, "signature": key.signature, "status": status,
                               "source": source, "seconds": round(self.elapsed(), 1), "case": str(path),
                               "message": message or entry.provenance.get("message", invariant),
                               "reproduce": repro}
        if status == "new":
            rec["explain"] = self._explain(entry.case, label)
        self.findings[key] = rec
        if status != "declared":
            self.state.add(key, str(path))
            self.known.add(key)
        try:
            self.shared.save(key, text)
        except Exception as exc:  # the database went away mid-run: the finding is on disk regardless
            self.errors.append(f"could not store {path.name} in the shared database: {' '.join(str(exc).split())}")
        if status != "declared":  # declared bugs show in the counts and the table, not one line each
            self.say(f"{status} finding: {label} {invariant} ({source}) -> {path}")
        self._sample(label, force=True)
        return rec

    def _explain(self, case: Any, label: str) -> str:
        from fuzz.explain import explain

        try:
            text, _ = explain(case, self.impls[label], name=self.by_label[label].impl, max_insns=200)
        except Exception as exc:  # an excerpt is a courtesy; the finding stands without it
            return f"(explain failed: {type(exc).__name__}: {exc})"
        return "\n".join(text.splitlines()[:40])

    # -- events from the workers ----------------------------------------------------------------

    def on_event(self, event: tuple[str, str, dict[str, Any]]) -> None:
        kind, task_id, data = event
        task = self.tasks.get(task_id)
        if task is None:
            return
        label = task.config.label
        if kind == "started":
            self.attempts[task_id] = int(data["attempt"])
            self.running[task_id] = {"impl": label, "engine": task.engine, "pid": data["pid"], "attempt": data["attempt"]}
            self.spans[(task_id, int(data["attempt"]))] = [time.time(), 0.0]
            self.given[(task_id, int(data["attempt"]))] = float(data.get("seconds", 0.0))
        elif kind == "progress":
            self.counts[(task_id, self.attempts.get(task_id, 1))] = {k: int(v) for k, v in data.items()}
            self._sample(label)
        elif kind == "done":
            self.counts[(task_id, self.attempts.get(task_id, 1))] = {k: int(v) for k, v in data["counts"].items()}
            self._end_span(task_id)
            self.running.pop(task_id, None)
            if data.get("error"):
                self.errors.append(f"{label} ({task.engine}): {data['error']}")
            self._sample(label, force=True)
        elif kind == "minimized":
            self._minimized(label, data)
        elif kind == "corpus":
            self.phases.setdefault("atheris", {}).setdefault("corpus", {})[label] = dict(data)
        elif kind == "error":
            self.errors.append(f"{label} ({task.engine}): {data['message']}")
        elif kind == "death":
            self._death(task, data)
        self.tick()

    def _end_span(self, task_id: str) -> None:
        span = self.spans.get((task_id, self.attempts.get(task_id, 1)))
        if span is not None and not span[1]:
            span[1] = time.time()

    def _minimized(self, label: str, data: dict[str, Any]) -> None:
        from fuzz.corpus import load_entry
        from model.case import CaseError

        try:
            entry = load_entry(data["path"])
        except (OSError, CaseError, ValueError) as exc:
            self.errors.append(f"{label}: cannot read the minimised case {data['path']}: {exc}")
            return
        origin_ok = None
        if data.get("origin_status") is not None and data.get("origin_required", True):
            from fuzz.oracle import PASSING

            origin_ok = data["origin_status"] in PASSING
        source = entry.provenance.get("found_by", "search")
        self.add_finding(label, entry, data["invariant"], source=source, origin_ok=origin_ok)

    def _death(self, task: Task, data: dict[str, Any]) -> None:
        from fuzz.corpus import atomic_write_text

        self._end_span(task.task_id)
        self.running.pop(task.task_id, None)
        rec = {k: data[k] for k in ("impl", "engine", "exitcode", "attempt", "restarted")}
        rec["last_case"] = None
        if data.get("last_case"):
            path = self.out / "deaths" / f"{task.task_id}-attempt{data['attempt']}.case.json"
            atomic_write_text(path, data["last_case"] + "\n")
            rec["last_case"] = str(path)
            rec["reproduce"] = f"sledfuzz explain {path} --impl {task.config.impl}"
        self.deaths.append(rec)
        self.say(f"worker for {rec['impl']} ({rec['engine']}) died with exit code {rec['exitcode']}; last case: "
                 f"{rec['last_case'] or 'not recorded'}" + ("; restarted" if rec["restarted"] else ""))

    # -- counts, timeline, progress -------------------------------------------------------------

    def cases_by_engine(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (task_id, _), c in self.counts.items():
            task = self.tasks[task_id]
            slot = out.setdefault(task.config.label, {}).setdefault(
                task.engine, dict.fromkeys(("cases", "judged", "failed", "refused", "unspecified", "invalid"), 0))
            for k in slot:
                slot[k] += int(c.get(k, 0))
        seconds: dict[tuple[str, str], float] = defaultdict(float)
        for (task_id, _), (begin, end) in self.spans.items():
            task = self.tasks[task_id]
            seconds[(task.config.label, task.engine)] += (end or time.time()) - begin
        for label, engines in out.items():
            for engine, slot in engines.items():
                secs = seconds.get((label, engine), 0.0)
                slot["seconds"] = round(secs, 1)
                slot["rate"] = round(slot["cases"] / secs, 1) if secs else 0.0
        return out

    def task_rows(self) -> list[dict[str, Any]]:
        """Each task attempt: what it searched, the seconds it was given, when it ran (seconds since start)."""
        rows = []
        for (task_id, attempt), (begin, end) in sorted(self.spans.items(), key=lambda kv: kv[1][0]):
            task = self.tasks[task_id]
            rows.append({"task": task_id, "impl": task.config.label, "engine": task.engine, "attempt": attempt,
                         "planned_seconds": round(task.seconds, 1),
                         "given_seconds": self.given.get((task_id, attempt)),
                         "started": round(begin - self.started_wall, 1),
                         "ended": round(end - self.started_wall, 1) if end else None})
        return rows

    def _sample(self, label: str, force: bool = False) -> None:
        now = self.elapsed()
        if not force and now - self._last_sample.get(label, -10.0) < 1.0:
            return
        self._last_sample[label] = now
        cases = sum(c.get("cases", 0) for (tid, _), c in self.counts.items() if self.tasks[tid].config.label == label)
        found = sum(1 for k in self.findings if k.impl == label)
        self.timeline.append({"t": round(now, 2), "impl": label, "cases": cases, "findings": found})

    def tick(self) -> None:
        """Progress line every PROGRESS_EVERY seconds; progress.json at most every second; stops
        the phase at this point when an interrupt arrived."""
        from fuzz.corpus import atomic_write_text

        check_interrupt()
        now = time.time()
        if now - self._last_file >= 1.0:
            self._last_file = now
            cases = sum(c.get("cases", 0) for c in self.counts.values())
            status = {"phase": self.phase_name, "elapsed_seconds": round(self.elapsed(), 1),
                      "time_budget_seconds": self.budget, "cases": cases,
                      "findings": {s: sum(1 for f in self.findings.values() if f["status"] == s)
                                   for s in ("new", "seen", "declared")},
                      "running": list(self.running.values()), "deaths": len(self.deaths)}
            atomic_write_text(self.out / "progress.json", json.dumps(status, indent=1) + "\n")
        if now - self._last_line >= PROGRESS_EVERY:
            self._last_line = now
            cases = sum(c.get("cases", 0) for c in self.counts.values())
            new = sum(1 for f in self.findings.values() if f["status"] == "new")
            self.say(f"{self.elapsed():.0f}/{self.budget:.0f} s, {self.phase_name}: {cases:,} cases, "
                     f"{len(self.findings)} distinct findings ({new} new), {len(self.running)} workers running")

    # -- the summary ----------------------------------------------------------------------------

    def declared_bugs(self) -> list[dict[str, Any]]:
        from fuzz.campaign import bug_keys, cell_context

        rows = []
        for c in self.configs:
            if c.impl == "kernel":
                keys = bug_keys(self.impls[c.label].caps.known_bugs)
                targets = {k: sorted(b.invariants) for k, b in keys.items()}
            else:
                ctx = cell_context(c.impl)
                targets = {k: v for k, v in ctx.known.items() if k not in ctx.inherited}
            for commit, invs in targets.items():
                hits = [f for f in self.findings.values()
                        if f["impl"] == c.label and f["invariant"] in invs and f["status"] == "declared"]
                first = min(hits, key=lambda f: f["seconds"]) if hits else None
                rows.append({"impl": c.label, "commit": commit, "invariants": invs, "found": first is not None,
                             "seconds": first["seconds"] if first else None, "case": first["case"] if first else None})
        return rows

    def summary(self, *, interrupted: bool, error: str = "") -> dict[str, Any]:
        from model.invariants import ALL

        findings = sorted(self.findings.values(), key=lambda f: ({"new": 0, "seen": 1, "declared": 2}[f["status"]],
                                                                 f["seconds"]))
        s: dict[str, Any] = {
            "sledfuzz_nightly": 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
            "interrupted": interrupted,
            "elapsed_seconds": round(self.elapsed(), 1),
            "time_budget_seconds": self.budget,
            "jobs": self.jobs, "seed": self.seed, "shard": str(self.shard),
            "database": self.db_spec.describe(),
            "state_file": str(self.state.path),
            "versions": versions(self.kernel_versions),
            "configurations": [{"name": c.label, "impl": c.impl, "linux_src": c.linux_src} for c in self.configs],
            "invariants": [inv.name for inv in ALL],
            "phases": self.phases,
            "cases": self.cases_by_engine(),
            "findings": findings,
            "declared_bugs": self.declared_bugs() if self.impls else [],
            "tasks": self.task_rows(),
            "deaths": self.deaths,
            "errors": self.errors,
            "not_run": self.not_run,
            "timeline": self.timeline,
        }
        if error:
            s["error"] = error
        s["exit_code"] = exit_code(s)
        return s


def exit_code(s: dict[str, Any]) -> int:
    if s.get("error"):
        return EXIT_CANNOT_RUN
    if s.get("interrupted"):
        return EXIT_INTERRUPTED
    ph = s.get("phases", {})
    attention = (any(f["status"] == "new" for f in s.get("findings", []))
                 or ph.get("replay", {}).get("changed")
                 or ph.get("properties", {}).get("failed")
                 or any(not b["found"] for b in s.get("declared_bugs", [])))
    return EXIT_FINDINGS if attention else EXIT_CLEAN


def versions(kernel_trees: dict[str, str]) -> dict[str, Any]:
    from importlib.metadata import version

    import hypothesis

    commit = ""
    if (ROOT / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            commit = ""
    return {"sledfuzz": __version__ + (f"+g{commit}" if commit else ""), "unicorn": version("unicorn"),
            "hypothesis": hypothesis.__version__, "python": sys.version.split()[0], "kernel_trees": kernel_trees}


# -- phases ---------------------------------------------------------------------------------------------


def phase_replay(night: Night, corpus: Path | None, deadline: float) -> None:
    """Every verdict the corpus expects, judged again."""
    from fuzz.campaign import judge_case
    from fuzz.corpus import entry_files, load_entry
    from model.case import CaseError

    night.phase_name = "replay"
    start = time.time()
    rep: dict[str, Any] = {"files": 0, "verdicts": 0, "changed": [], "not_judged": []}
    if corpus is None:
        rep["line"] = "no corpus (not a checkout; --corpus DIR names one)"
    else:
        from emu.impls.registry import ImplementationError, resolve

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
    from fuzz.campaign import judge_case
    from fuzz.corpus import entry_from_dict
    from model.case import CaseError

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


def has_property_suite() -> bool:
    return (ROOT / "tests" / "properties").is_dir() and (ROOT / "tests" / "conftest.py").is_file()


def phase_properties(night: Night, seconds: float) -> None:
    """pytest on tests/properties under the nightly profile, cut at its share of --time."""
    from fuzz.nightly_db import ENV_DB
    from fuzz.nightly_pytest import ENV_DEADLINE, ENV_RESULTS

    night.phase_name = "properties"
    results = night.out / "properties.jsonl"
    results.unlink(missing_ok=True)
    start = time.time()
    end = start + seconds
    env = dict(os.environ, HYPOTHESIS_PROFILE="nightly", **{ENV_DB: night.db_spec.url, ENV_DEADLINE: str(end - 5),
                                                           ENV_RESULTS: str(results)})
    if not night.db_spec.is_redis:
        env["SLEDFUZZ_HYPOTHESIS_DB"] = night.db_spec.url
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "fuzz.nightly_pytest", "-p", "no:cacheprovider",
           "tests/properties"]
    if night.jobs > 1 and importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(night.jobs)]
    log = night.out / "properties.log"
    cut = False
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=f, stderr=subprocess.STDOUT,
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


def phase_campaign(night: Night, deadline: float, stop_at: float, *, atheris: bool, search: bool) -> None:
    from fuzz.nightly_workers import Supervisor

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
                     deadline_wall=deadline, stop_wall=stop_at, on_event=night.on_event, check=check_interrupt)
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


# -- the command ----------------------------------------------------------------------------------------


_STOP: list[str] = []  # the signals received; the phases look at it between steps


def _request_stop(signum: int, frame: object) -> None:
    """Only note the signal: raising here could land in a gc callback or a library's cleanup."""
    _STOP.append(signal.Signals(signum).name)


def check_interrupt() -> None:
    """Raise NightInterrupted at a point of our choosing once SIGINT or SIGTERM arrived."""
    if _STOP:
        raise NightInterrupted(_STOP[0])


def cmd_nightly(args: argparse.Namespace) -> int:
    """The subcommand; prints its own one-line errors (exit 2)."""
    _STOP.clear()
    old = {s: signal.signal(s, _request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args)
    except NightError as exc:
        print(f"sledfuzz nightly: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except NightInterrupted:
        print("sledfuzz nightly: interrupted before the job started", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run(args: argparse.Namespace) -> int:
    start = time.time()
    deadline = start + args.time
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NightError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NightError(f"--out {out}: cannot create: {exc.strerror or exc}") from None
    if importlib.util.find_spec("matplotlib") is None:
        raise NightError("matplotlib is not installed (pip install 'sledfuzz[nightly]'): the report plot needs it")
    db_spec = DatabaseSpec(args.hypothesis_db or str(default_directory()))
    try:
        shared = SharedFindings(open_database(db_spec))
    except DatabaseUnavailable as exc:
        raise NightError(f"--hypothesis-db: {exc}") from None
    configs = shard_of(choose_configurations(args.impl, args.linux_src), args.shard)
    if not configs:
        raise NightError(f"shard {args.shard} has no configuration (fewer configurations than shards)")
    state_dir = Path(args.state_dir) if args.state_dir else cache_dir() / "nightly"
    corpus = Path(args.corpus) if args.corpus else (ROOT / "corpus" / "regressions")
    if args.corpus and not corpus.is_dir():
        raise NightError(f"--corpus {corpus}: not a directory")
    seed = args.seed if args.seed is not None else int(time.strftime("%Y%m%d"))
    jobs = args.jobs or max(1, os.cpu_count() or 1)
    night = Night(out=out, configs=configs, budget=args.time, jobs=jobs, seed=seed, shard=args.shard,
                  db_spec=db_spec, shared=shared, state=NightState(state_dir / "state.json"), quiet=args.no_progress,
                  started_wall=start)
    night.known |= night.state.keys()
    interrupted = False
    error = ""
    try:
        for c in configs:
            check_interrupt()
            night.impls[c.label] = _impl_for(c)
            if c.linux_src:
                desc = str(night.impls[c.label].description)
                m = re.search(r"linux (\S+)", desc)
                night.kernel_versions[c.label] = m.group(1) if m else desc
        try:
            night.known |= shared.seen()
        except Exception as exc:
            raise NightError(f"--hypothesis-db: cannot read {db_spec.describe()}: {' '.join(str(exc).split())}") from None
        plural = "s" if len(configs) != 1 else ""
        night.say(f"{len(configs)} configuration{plural} ({', '.join(c.label for c in configs)}), shard {args.shard}, "
                  f"{jobs} workers, {args.time:.0f} s, database {db_spec.describe()}")
        reserve = report_reserve(args.time)
        if "replay" not in args.skip:
            phase_replay(night, corpus if corpus.is_dir() else None, deadline - reserve)
        phase_shared_db(night, deadline - reserve)
        if "properties" in args.skip:
            night.phases["properties"] = {"line": "skipped (--skip properties)"}
        elif not has_property_suite():
            night.phases["properties"] = {"line": "skipped: not run from a checkout with tests/properties"}
            night.say("properties: skipped (not a checkout with tests/properties)")
        else:
            phase_properties(night, min(properties_seconds(args.time), max(0.0, deadline - reserve - time.time())))
        atheris = "atheris" not in args.skip and importlib.util.find_spec("atheris") is not None
        if "atheris" not in args.skip and not atheris:
            night.phases["atheris"] = {"line": "skipped: atheris is not installed (pip install 'sledfuzz[fuzz]')"}
        elif "atheris" in args.skip:
            night.phases["atheris"] = {"line": "skipped (--skip atheris)"}
        if "search" not in args.skip or atheris:
            phase_campaign(night, deadline - reserve, deadline - reserve / 2, atheris=atheris,
                           search="search" not in args.skip)
    except NightInterrupted:
        interrupted = True
    except NightError as exc:
        error = str(exc)
    interrupted = interrupted or bool(_STOP)  # a signal after the last check still makes the night interrupted
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # the reports are written whatever arrives now
    night.phase_name = "reports"
    summary = night.summary(interrupted=interrupted, error=error)
    from fuzz.nightly_report import verdict_line, write_reports

    write_reports(summary, out)
    if error:
        print(f"sledfuzz nightly: error: {error}", file=sys.stderr)
    for f in summary["findings"]:
        if f["status"] == "new":
            print(f"NEW {f['impl']} {f['invariant']} {f['signature']}: {f['message']}\n    {f['reproduce']}")
    print(f"sledfuzz nightly: {verdict_line(summary)} Reports: {out / 'summary.md'} (exit {summary['exit_code']})"
          + (" [interrupted]" if interrupted else ""))
    return int(summary["exit_code"])
