"""Worker processes that ignore signals and stop when their parent says so.

``multiprocessing.Pool`` stops workers with SIGTERM, starts queued tasks after a stop, and lets
workers die mid-write on a terminal's Ctrl-C (tracebacks, leaked semaphores, files written after
the parent ended). Here every worker ignores SIGINT/SIGTERM, takes tasks one at a time, and
checks a stop flag the parent sets on interrupt (``fuzz.interrupt`` reads it between cases): a
running task returns what it has so far, queued tasks are never started and are reported as not
run. A worker that does not finish within the grace period is killed (SIGKILL) as a last resort.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sledfuzz.fuzz import interrupt

STOP_GRACE_SECONDS = 20.0
POLL_SECONDS = 0.2

_OUT: list[Any] = []  # in a worker: the queue to the parent


def emit(message: Any) -> None:
    """In a worker: send a message (e.g. a progress event) to the parent's ``on_message``."""
    if _OUT:
        _OUT[0].put(("message", -1, message))


@dataclass
class Outcome:
    """What became of each task: results by index, tasks that failed, tasks never started."""

    results: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    not_started: list[int] = field(default_factory=list)
    interrupted: bool = False


def _worker(fn: Callable[[Any], Any], init: Callable[..., None] | None, initargs: tuple[Any, ...],
            tasks: Any, out: Any, stop: Any) -> None:
    interrupt.attach_worker(stop)
    _OUT[:] = [out]
    try:
        if init is not None:
            init(*initargs)
        while not interrupt.requested():  # the parent's stop flag, or the parent gone
            try:
                index, arg = tasks.get_nowait()
            except queue.Empty:
                break
            out.put(("start", index, None))
            try:
                res = fn(arg)
            except KeyboardInterrupt:
                out.put(("error", index, "interrupted"))
                continue
            except Exception as exc:  # reported per task; the parent decides what it means
                out.put(("error", index, f"{type(exc).__name__}: {exc}"))
                continue
            out.put(("done", index, res))
    finally:
        out.put(("exit", -1, None))


def run_tasks(fn: Callable[[Any], Any], items: list[Any], *, jobs: int,
              init: Callable[..., None] | None = None, initargs: tuple[Any, ...] = (),
              on_message: Callable[[Any], None] | None = None,
              on_result: Callable[[int, Any], None] | None = None,
              on_tick: Callable[[], None] | None = None) -> Outcome:
    """Run ``fn(item)`` for each item on ``jobs`` spawned workers; see the module docstring.

    ``fn``, ``init`` and the items must be picklable (module-level functions, plain data)."""
    outcome = Outcome()
    if not items or interrupt.requested():
        outcome.not_started = list(range(len(items)))
        outcome.interrupted = interrupt.requested()
        return outcome
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    out = ctx.Queue()
    stop = ctx.RawValue("b", 0)  # set to 1 to stop; read between cases, so no lock
    for i, item in enumerate(items):
        tasks.put((i, item))
    procs = [ctx.Process(target=_worker, args=(fn, init, initargs, tasks, out, stop), daemon=True)
             for _ in range(max(1, min(jobs, len(items))))]
    started: set[int] = set()
    finished: set[int] = set()
    exited = 0
    kill_at: float | None = None
    try:
        for p in procs:
            p.start()
        while exited < len(procs):
            if interrupt.requested() and kill_at is None:
                outcome.interrupted = True
                stop.value = 1
                kill_at = time.monotonic() + STOP_GRACE_SECONDS
            if kill_at is not None and time.monotonic() > kill_at:
                break
            if on_tick is not None:
                on_tick()
            try:
                kind, index, payload = out.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if all(p.exitcode is not None for p in procs):
                    break  # every worker ended (one may have died without saying so)
                continue
            if kind == "message":
                if on_message is not None:
                    on_message(payload)
            elif kind == "start":
                started.add(index)
            elif kind == "done":
                finished.add(index)
                outcome.results[index] = payload
                if on_result is not None:
                    on_result(index, payload)
            elif kind == "error":
                finished.add(index)
                outcome.errors[index] = str(payload)
            elif kind == "exit":
                exited += 1
    finally:
        stop.value = 1
        for p in procs:
            if p.is_alive() and kill_at is not None and time.monotonic() > kill_at:
                p.kill()
        _drain(out, on_message)
        for p in procs:
            p.join(timeout=STOP_GRACE_SECONDS)
            if p.is_alive():
                p.kill()
                p.join()
        tasks.cancel_join_thread()
        for q in (tasks, out):
            q.close()
    for index in started - finished:
        outcome.errors.setdefault(index, "worker ended before the task finished")
    outcome.not_started = [i for i in range(len(items)) if i not in started]
    return outcome


def _drain(out: Any, on_message: Callable[[Any], None] | None) -> None:
    while True:
        try:
            kind, _, payload = out.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        if kind == "message" and on_message is not None:
            on_message(payload)
