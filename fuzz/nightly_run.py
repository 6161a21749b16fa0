"""One night's state: what it learned, folded into the summary the reports are rendered from.

Worker events (progress, minimised findings, deaths) arrive here; each finding is keyed and
classified (declared, seen, new) once, written to ``OUT/findings/``, recorded in the state file
and the shared database; ``progress.json`` and the progress lines come from here too. Signals only
set a flag (``request_stop``) that ``check_interrupt`` turns into ``NightInterrupted`` between
steps, so an interrupt never lands inside a library's cleanup.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sledfuzz.fuzz import __version__
from sledfuzz.fuzz.nightly_db import DatabaseSpec, SharedFindings
from sledfuzz.fuzz.nightly_findings import FindingKey, NightState, signature
from sledfuzz.fuzz.nightly_plan import (
    Configuration,
    Shard,
    Task,
    slug,
)

SOURCE_TREE = Path(__file__).resolve().parent.parent  # a git checkout when run from one: its commit is reported
EXIT_CLEAN, EXIT_FINDINGS, EXIT_CANNOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 130
PROGRESS_EVERY = 10.0  # seconds between progress lines (and progress.json rewrites at most every second)


class NightInterrupted(BaseException):
    """SIGINT or SIGTERM: stop the phases, keep what was found, write the reports, exit 130."""


_STOP: list[str] = []  # the signals received; the phases look at it between steps


def request_stop(signum: int, frame: object) -> None:
    """Only note the signal: raising here could land in a gc callback or a library's cleanup."""
    _STOP.append(signal.Signals(signum).name)


def clear_stop() -> None:
    _STOP.clear()


def stop_requested() -> bool:
    return bool(_STOP)


def check_interrupt() -> None:
    """Raise NightInterrupted at a point of our choosing once SIGINT or SIGTERM arrived."""
    if _STOP:
        raise NightInterrupted(_STOP[0])


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
        from sledfuzz.fuzz.corpus import Entry, atomic_write_text

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
        from sledfuzz.fuzz.explain import explain

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
        from sledfuzz.fuzz.corpus import load_entry
        from sledfuzz.model.case import CaseError

        try:
            entry = load_entry(data["path"])
        except (OSError, CaseError, ValueError) as exc:
            self.errors.append(f"{label}: cannot read the minimised case {data['path']}: {exc}")
            return
        origin_ok = None
        if data.get("origin_status") is not None and data.get("origin_required", True):
            from sledfuzz.fuzz.oracle import PASSING

            origin_ok = data["origin_status"] in PASSING
        source = entry.provenance.get("found_by", "search")
        self.add_finding(label, entry, data["invariant"], source=source, origin_ok=origin_ok)

    def _death(self, task: Task, data: dict[str, Any]) -> None:
        from sledfuzz.fuzz.corpus import atomic_write_text

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
        from sledfuzz.fuzz.corpus import atomic_write_text

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
        from sledfuzz.fuzz.campaign import bug_keys, cell_context

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
        from sledfuzz.model.invariants import ALL

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
    if (SOURCE_TREE / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(SOURCE_TREE), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            commit = ""
    return {"sledfuzz": __version__ + (f"+g{commit}" if commit else ""), "unicorn": version("unicorn"),
            "hypothesis": hypothesis.__version__, "python": sys.version.split()[0], "kernel_trees": kernel_trees}


