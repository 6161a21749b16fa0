"""Nightly workers: the last case survives a dead worker, the supervisor restarts and reports it."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sledfuzz.fuzz.nightly_plan import Configuration, Task
from sledfuzz.fuzz.nightly_workers import TASK_OVERHEAD, LastCaseRecorder, Supervisor
from sledfuzz.model.case import Arg, Case, Function, Link

CASE = Case(target="bpf_prog", function=Function(args=(Arg(8),), values=(0x1234,)), sled="2,0/w",
            links=(Link("fexit", r0=5),))


def dies_on_first_attempt(task: Task, work_dir: str, record_path: str, corpus_dir: str, deadline_wall: float,
                          events: Any) -> None:
    """A stand-in worker (spawned, so module level): attempt 1 records CASE and dies like a crash would."""
    if record_path.endswith(".1.bin"):
        LastCaseRecorder(Path(record_path)).note(CASE)
        os._exit(9)
    events.put(("progress", task.task_id, {"cases": 7}))
    events.put(("done", task.task_id, {"counts": {"cases": 7}, "error": "", "seconds": 0.1}))


def test_recorder_round_trips_the_last_case_only(tmp_path: Path) -> None:
    rec = LastCaseRecorder(tmp_path / "last.bin")
    rec.note(Case(target="bpf_prog", function=Function(), sled="2,0/w"))
    rec.note(CASE)
    assert LastCaseRecorder.read(tmp_path / "last.bin") == CASE


def test_recorder_reads_nothing_from_a_worker_that_recorded_nothing(tmp_path: Path) -> None:
    LastCaseRecorder(tmp_path / "last.bin")
    assert LastCaseRecorder.read(tmp_path / "last.bin") is None
    (tmp_path / "junk.bin").write_bytes(b"\xff\xff\x00\x00garbage")
    assert LastCaseRecorder.read(tmp_path / "junk.bin") is None
    assert LastCaseRecorder.read(tmp_path / "missing.bin") is None


def test_a_dead_worker_is_reported_with_its_last_case_and_restarted(tmp_path: Path) -> None:
    events: list[tuple[str, str, dict[str, Any]]] = []
    task = Task("000-mixed-v6.19", Configuration("v6.19", "v6.19"), "mixed", 60.0, 1)
    sup = Supervisor(jobs=1, work_root=tmp_path / "work", corpus_root=tmp_path / "corpus",
                     deadline_wall=time.time() + 120, stop_wall=time.time() + 150, on_event=events.append,
                     target=dies_on_first_attempt)
    outcome = sup.run([task])
    kinds = [e[0] for e in events]
    assert kinds == ["started", "death", "started", "progress", "done"]
    death = events[1][2]
    assert death["exitcode"] == 9 and death["attempt"] == 1 and death["restarted"] is True
    assert Case.from_json(death["last_case"]) == CASE
    assert events[2][2]["attempt"] == 2
    assert outcome.finished == [task.task_id] and not outcome.not_run and not outcome.cut


def test_tasks_started_late_get_a_fair_share_of_what_is_left(tmp_path: Path) -> None:
    now = time.time()
    sup = Supervisor(jobs=2, work_root=tmp_path, corpus_root=tmp_path, deadline_wall=now + 100, stop_wall=now + 110,
                     on_event=lambda e: None)
    task = Task("t", Configuration("v6.19", "v6.19"), "mixed", 40.0, 1)
    other = Task("u", Configuration("v6.12", "v6.12"), "mixed", 40.0, 1)
    o = TASK_OVERHEAD
    assert sup.fair_seconds(task, [other]) == pytest.approx((200 - 2 * o) / 2, abs=1)  # half of 2 workers x 100 s
    assert sup.fair_seconds(task, [other] * 4) == pytest.approx((200 - 5 * o) / 5, abs=1)  # 5 tasks left
    assert sup.fair_seconds(task, [replace(other, seconds=120.0)]) == pytest.approx((200 - 2 * o) / 4, abs=1)
    assert sup.fair_seconds(task, []) <= 100  # never past the deadline
