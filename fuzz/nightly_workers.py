"""Worker processes of a nightly campaign: each runs one task, a dead one is restarted.

A worker records the case it is judging in a small file before judging it (a pickled case in a
memory map: one write per case, no syscall), so when a worker dies (the OOM killer, a crash inside
unicorn or a JIT) the supervisor can say which case it was on, save it, and start the task again
with the time it had left. Workers talk to the parent through one queue of events
``(kind, task_id, data)``; the parent stops them (SIGTERM) when the night is over or interrupted.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sledfuzz.fuzz.nightly_atheris import stop_children
from sledfuzz.fuzz.nightly_plan import ATHERIS_MIN_SECONDS, Checkout, Task, slug
from sledfuzz.model.case import Case

RECORD_BYTES = 1 << 20  # a pickled case is a few kB; a larger one is not recorded
MAX_RESTARTS = 3
TASK_OVERHEAD = 5.0  # seconds a task costs beyond its search time: spawning, imports, the last minimisation
_HEADER = struct.Struct("<I")

NightEvent = tuple[str, str, dict[str, Any]]


class LastCaseRecorder:
    """The case a worker is judging, in a file the parent can read after the worker died."""

    def __init__(self, path: Path) -> None:
        with open(path, "wb") as f:
            f.truncate(RECORD_BYTES)
        self._file = open(path, "r+b")  # noqa: SIM115 - lives as long as the worker
        self._map = mmap.mmap(self._file.fileno(), RECORD_BYTES)

    def note(self, case: Case) -> None:
        data = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) + _HEADER.size > RECORD_BYTES:
            return
        self._map[_HEADER.size:_HEADER.size + len(data)] = data
        self._map[:_HEADER.size] = _HEADER.pack(len(data))

    @staticmethod
    def read(path: Path) -> Case | None:
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        if len(raw) < _HEADER.size:
            return None
        (n,) = _HEADER.unpack_from(raw)
        if not 0 < n <= len(raw) - _HEADER.size:
            return None
        try:
            case = pickle.loads(raw[_HEADER.size:_HEADER.size + n])
        except Exception:  # a torn write: the worker died mid-record
            return None
        return case if isinstance(case, Case) else None


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """Stop now, without unwinding: an exception raised here could land anywhere (a gc callback of
    hypothesis prints it as a traceback). libFuzzer children go first; findings are already on disk."""
    stop_children()
    os._exit(143)


def worker_main(task: Task, work_dir: str, record_path: str, corpus_dir: str, deadline_wall: float,
                events: Any, *, checkout: Checkout | None = None) -> None:
    """Entry point of a worker process (spawned): run one task, report through ``events``.
    ``checkout``: where an atheris task's seeds and dictionary are (None: none)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if task.config.linux_src:
        from sledfuzz.emu.kernel.impl import set_default_tree

        set_default_tree(task.config.linux_src)

    def emit(event: tuple[str, str, dict[str, Any]]) -> None:
        events.put((event[0], task.task_id, event[2]))

    start = time.time()
    if task.engine == "atheris":
        from sledfuzz.fuzz.nightly_atheris import run_atheris_task

        counts, error = run_atheris_task(task, work_dir=Path(work_dir), corpus_dir=Path(corpus_dir),
                                         deadline_wall=deadline_wall, emit=emit, checkout=checkout)
    else:
        from sledfuzz.fuzz.campaign import search_cell
        from sledfuzz.fuzz.judging import observing

        deadline = time.monotonic() + max(0.0, deadline_wall - time.time())
        # every case the search and the minimiser judge is noted first: the parent saves it if we die.
        # stop_when_found: a bug configuration's task ends once every bug it declares is found (its time
        # goes to the tasks after it); a clean configuration declares none and searches to the end
        with observing(LastCaseRecorder(Path(record_path)).note):
            result = search_cell(task.config.impl, seconds=task.seconds, seed=task.seed, out_dir=work_dir,
                                 stop_when_found=True, emit=emit, deadline=deadline, engine="mixed")
        from dataclasses import asdict

        counts, error = asdict(result.counts), result.error
    events.put(("done", task.task_id, {"counts": counts, "error": error, "seconds": time.time() - start}))


@dataclass
class Attempt:
    task: Task
    number: int
    process: Any
    started: float
    record_path: Path


@dataclass
class SupervisorOutcome:
    finished: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # still running at the deadline, stopped


def min_seconds(task: Task) -> float:
    """Below this a task is not worth starting (atheris instruments every import first)."""
    return ATHERIS_MIN_SECONDS if task.engine == "atheris" else 2.0


class Supervisor:
    """Runs tasks on ``jobs`` worker processes until each is done or the deadline; restarts the dead.

    ``on_event`` sees every worker event, plus ``started`` (pid, attempt) and ``death`` (exit code,
    last case, whether it was restarted) that the supervisor makes itself.
    """

    def __init__(self, *, jobs: int, work_root: Path, corpus_root: Path, deadline_wall: float, stop_wall: float,
                 on_event: Callable[[NightEvent], None], target: Callable[..., None] = worker_main,
                 check: Callable[[], None] = lambda: None) -> None:
        self.jobs = max(1, jobs)
        self.work_root = work_root
        self.corpus_root = corpus_root
        self.deadline = deadline_wall
        self.stop_at = max(stop_wall, deadline_wall)  # a worker still minimising at this moment is stopped
        self.on_event = on_event
        self.target = target
        self.check = check  # raises to stop the run (an interrupt); the workers are stopped on the way out
        self._ctx = mp.get_context("spawn")
        self._events: Any = self._ctx.Queue()
        self.running: dict[str, Attempt] = {}

    def fair_seconds(self, task: Task, later: list[Task]) -> float:
        """The task's part of the worker-seconds left, in proportion to the plan: process start-up
        shortens every task a little, a task that stops early (a bug configuration whose bugs are
        all found) leaves its time to the tasks after it, and every task still gets its turn."""
        now = time.time()
        busy = sum(max(0.0, a.started + TASK_OVERHEAD + a.task.seconds - now) for a in self.running.values())
        free = self.jobs * max(0.0, self.deadline - now) - busy - TASK_OVERHEAD * (1 + len(later))
        weight = task.seconds / max(1e-9, task.seconds + sum(t.seconds for t in later))
        return max(0.0, min(free * weight, self.deadline - now))

    def _start(self, task: Task, number: int) -> None:
        work = self.work_root / task.task_id
        work.mkdir(parents=True, exist_ok=True)
        record = work / f"last-case.{number}.bin"
        corpus = self.corpus_root / slug(task.config.label)
        proc = self._ctx.Process(target=self.target, name=f"sledfuzz-nightly-{task.task_id}", daemon=True,
                                 args=(task, str(work), str(record), str(corpus), self.deadline, self._events))
        ignore = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: a terminal's Ctrl-C is the parent's
        try:
            proc.start()
        finally:
            signal.signal(signal.SIGINT, ignore)
        self.running[task.task_id] = Attempt(task, number, proc, time.time(), record)
        self.on_event(("started", task.task_id, {"pid": proc.pid, "attempt": number, "impl": task.config.label,
                                                  "engine": task.engine, "seconds": round(task.seconds, 1)}))

    def _drain(self, timeout: float) -> None:
        try:
            ev = self._events.get(timeout=timeout)
        except (queue.Empty, OSError, ValueError):
            return
        self.on_event(ev)
        while True:
            try:
                ev = self._events.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            self.on_event(ev)

    def run(self, tasks: list[Task]) -> SupervisorOutcome:
        out = SupervisorOutcome()
        pending = list(tasks)
        try:
            while pending or self.running:
                self.check()
                now = time.time()
                while pending and len(self.running) < self.jobs and now < self.deadline - 1.0:
                    task = pending.pop(0)
                    secs = self.fair_seconds(task, pending)
                    if secs < min_seconds(task):
                        out.not_run.append(task.task_id)
                        continue
                    self._start(replace(task, seconds=secs), 1)
                if pending and now >= self.deadline - 1.0:
                    out.not_run += [t.task_id for t in pending]
                    pending.clear()
                self._drain(0.2)
                for task_id, att in list(self.running.items()):
                    if att.process.is_alive():
                        if time.time() > self.stop_at:
                            self._stop(att)
                            del self.running[task_id]
                            out.cut.append(task_id)
                        continue
                    att.process.join()
                    self._drain(0.05)
                    del self.running[task_id]
                    if att.process.exitcode == 0:
                        out.finished.append(task_id)
                        continue
                    self._death(att, out)
        finally:
            for att in list(self.running.values()):
                self._stop(att)
            self.running.clear()
            with contextlib.suppress(Exception):
                self._drain(0.0)
        return out

    def _death(self, att: Attempt, out: SupervisorOutcome) -> None:
        spent = time.time() - att.started
        left = min(att.task.seconds - spent, self.deadline - time.time())
        restart = att.number <= MAX_RESTARTS and left > max(2.0, min_seconds(att.task))
        last = LastCaseRecorder.read(att.record_path)
        self.on_event(("death", att.task.task_id, {
            "exitcode": att.process.exitcode, "attempt": att.number, "restarted": restart,
            "last_case": last.to_json() if last is not None else None,
            "impl": att.task.config.label, "engine": att.task.engine,
        }))
        if restart:
            self._start(replace(att.task, seconds=left, seed=att.task.seed + 7919 * att.number), att.number + 1)
        else:
            out.finished.append(att.task.task_id)

    def _stop(self, att: Attempt) -> None:
        proc = att.process
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
