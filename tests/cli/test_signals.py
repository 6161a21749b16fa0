"""SIGINT and SIGTERM end every subcommand the same way (docs/cli.md, "Interrupts").

Each trial starts the CLI in its own session, waits for a point in the run that the run itself
announces (signal handlers installed, a progress line, a finding file, a shape file), sends the
signal and checks the end: exit 130 after a summary, no traceback, no process of the session
left, nothing left in TMPDIR, every file on disk complete and consistent with the summary.
Nothing here waits a fixed time: polls only ever wait for a condition, with a generous bound
that only a hung run reaches.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sledfuzz.fuzz.corpus import load_entry

ROOT = Path(__file__).resolve().parents[2]
SEED_BUG = "ftrace=v6.6,tramp=v6.3"
CLEAN = "v6.19"
BOUND = 300.0  # seconds: only a hung run reaches it
pytestmark = pytest.mark.slow


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    out_dir: Path
    tmp_dir: Path

    def text(self) -> tuple[str, str]:
        return self.stdout.read_text(errors="replace"), self.stderr.read_text(errors="replace")


def launch(tmp_path: Path, *argv: str, out: bool = True) -> Launched:
    out_dir, tmp_dir = tmp_path / "out", tmp_path / "tmp"
    tmp_dir.mkdir()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_dir))
    cmd = [sys.executable, "-m", "sledfuzz", *argv, *(["--out", str(out_dir)] if out else [])]
    with stdout.open("wb") as so, stderr.open("wb") as se:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=so, stderr=se, start_new_session=True)
    return Launched(proc, stdout, stderr, out_dir, tmp_dir)


def wait_for(run: Launched, cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not cond():
        if run.proc.poll() is not None:
            out, err = run.text()
            pytest.fail(f"the run ended (exit {run.proc.returncode}) before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"no {what} within {BOUND} s"
        time.sleep(0.05)


def handlers_installed(run: Launched) -> Callable[[], bool]:
    """SIGINT and SIGTERM are caught (bits 2 and 15 of SigCgt in /proc/PID/status)."""
    def ready() -> bool:
        try:
            status = Path(f"/proc/{run.proc.pid}/status").read_text()
        except OSError:
            return False
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        return bool(caught & (1 << (signal.SIGINT - 1))) and bool(caught & (1 << (signal.SIGTERM - 1)))
    return ready


def stderr_has(run: Launched, text: str) -> Callable[[], bool]:
    return lambda: text in run.stderr.read_text(errors="replace")


def stdout_has(run: Launched, text: str) -> Callable[[], bool]:
    return lambda: text in run.stdout.read_text(errors="replace")


def file_appears(run: Launched, pattern: str) -> Callable[[], bool]:
    return lambda: any(run.out_dir.glob(pattern))


def session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(text[:text.rindex(")") + 1])
    return found


def interrupt(run: Launched, sig: int) -> tuple[str, str]:
    """Send ``sig``, wait for the end and for every process of the run's session to be gone."""
    run.proc.send_signal(sig)
    run.proc.wait(timeout=BOUND)
    deadline = time.monotonic() + BOUND
    while session_processes(run.proc.pid):
        assert time.monotonic() < deadline, f"processes left: {session_processes(run.proc.pid)}"
        time.sleep(0.05)
    out, err = run.text()
    assert run.proc.returncode == 130, f"exit {run.proc.returncode}\n{out}\n{err}"
    for bad in ("Traceback", "Exception ignored", "leaked semaphore", "BrokenPipeError"):
        assert bad not in err, err
    assert f"Interrupted by {signal.Signals(sig).name}" in out, out
    assert "sledfuzz: interrupted" in err
    assert not list(run.tmp_dir.iterdir()), f"left in TMPDIR: {list(run.tmp_dir.iterdir())}"
    if run.out_dir.exists():
        assert not list(run.out_dir.rglob("*.tmp")), "half-written files"
        for f in run.out_dir.rglob("*.json"):
            data = json.loads(f.read_text())
            if isinstance(data, dict) and "case" in data:
                load_entry(f)
    return out, err


def check_matrix(run: Launched, out: str) -> list[dict[str, object]]:
    """matrix.json lists every configuration; counts agree with the finding files on disk."""
    rows = json.loads((run.out_dir / "matrix.json").read_text())
    assert (run.out_dir / "matrix.md").read_text().startswith("# sledfuzz matrix")
    assert any(line.startswith("INTERRUPTED: ") for line in out.splitlines()), out
    listed = {str(f["raw_case"]) for r in rows for f in r["findings"]}  # type: ignore[attr-defined]
    on_disk = {str(p) for p in run.out_dir.glob("*/*.raw.json")}
    assert on_disk <= listed, "a finding on disk is missing from the summary"
    for r in rows:
        counts = r["counts"]
        assert counts["failed"] >= (1 if r["findings"] else 0), r  # type: ignore[index]
        for f in r["findings"]:  # type: ignore[attr-defined]
            if not f["minimized"]:
                assert f["origin_status"] == "not run" and f["case"] == f["raw_case"]
        if r["not_run"]:
            assert counts["cases"] == 0 and not r["findings"] and r["status"] == "not run"  # type: ignore[index]
            assert "not run" in out
    return rows  # type: ignore[no-any-return]


RUN = ("run", "--time", "200", "--jobs", "2", "--impl", SEED_BUG, "--impl", CLEAN, "--impl", "v6.12")


@pytest.mark.parametrize(("sig", "moment"), [
    (signal.SIGTERM, "handlers"), (signal.SIGINT, "handlers"),
    (signal.SIGTERM, "progress"), (signal.SIGINT, "progress"),
    (signal.SIGTERM, "finding"), (signal.SIGINT, "minimal"),
])
def test_run(tmp_path: Path, sig: int, moment: str) -> None:
    run = launch(tmp_path, *RUN)
    wait_for(run, {"handlers": handlers_installed(run), "progress": stderr_has(run, "sledfuzz: run:"),
                   "finding": file_appears(run, "*/*.raw.json"),
                   "minimal": file_appears(run, "ftrace_v6.6_tramp_v6.3/I-*[!w].json")}[moment], moment)
    out, _ = interrupt(run, sig)
    assert out.splitlines()[0].startswith("INTERRUPTED: "), "the verdict comes first"
    rows = {r["impl"]: r for r in check_matrix(run, out)}
    assert set(rows) == {SEED_BUG, CLEAN, "v6.12"}
    if moment in ("finding", "minimal"):
        assert rows[SEED_BUG]["findings"]


@pytest.mark.parametrize(("sig", "moment"), [(signal.SIGTERM, "progress"), (signal.SIGINT, "finding")])
def test_matrix(tmp_path: Path, sig: int, moment: str) -> None:
    run = launch(tmp_path, "matrix", "--time-per-cell", "200", "--jobs", "2", "--impl", "v6.19-pre-fd2e08128944",
                 "--impl", SEED_BUG, "--impl", "v6.11")
    wait_for(run, stderr_has(run, "sledfuzz: matrix:") if moment == "progress"
             else file_appears(run, "*/*.raw.json"), moment)
    out, _ = interrupt(run, sig)
    check_matrix(run, out)


@pytest.mark.parametrize(("sig", "impl", "jobs", "moment"), [
    (signal.SIGINT, CLEAN, "1", "progress"), (signal.SIGTERM, CLEAN, "1", "handlers"),
    (signal.SIGINT, SEED_BUG, "1", "finding"), (signal.SIGTERM, SEED_BUG, "2", "finding"),
    (signal.SIGTERM, CLEAN, "2", "progress"),
])
def test_fuzz(tmp_path: Path, sig: int, impl: str, jobs: str, moment: str) -> None:
    run = launch(tmp_path, "fuzz", "--impl", impl, "--time", "200", "--jobs", jobs)
    wait_for(run, {"handlers": handlers_installed(run), "progress": stderr_has(run, "sledfuzz: fuzz:"),
                   "finding": file_appears(run, "*/*.raw.json")}[moment], moment)
    out, _ = interrupt(run, sig)
    # with --jobs 2 both workers may write a case of one invariant: the second is digest-tagged
    written = {re.sub(r"-[0-9a-f]{10}$", "", p.name.removesuffix(".raw.json"))
               for p in run.out_dir.glob("*/*.raw.json")}
    reported = {line.split()[1] for line in out.splitlines() if line.startswith("FOUND ")}
    assert written == reported, out
    if not written:
        assert "no violations found before the interrupt" in out
    assert "minimal case: None" not in out and "None" not in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_fuzz_atheris(tmp_path: Path, sig: int) -> None:
    run = launch(tmp_path, "fuzz", "--engine", "atheris", "--impl", CLEAN, "--time", "200", "--jobs", "2")
    wait_for(run, stderr_has(run, "sledfuzz: fuzz:"), "the target's first progress line")
    out, _ = interrupt(run, sig)  # also: no libFuzzer child left, no sledfuzz-atheris-* in TMPDIR
    assert "no violations found before the interrupt" in out


@pytest.mark.parametrize(("sig", "moment"), [
    (signal.SIGTERM, "progress"), (signal.SIGINT, "shape file"), (signal.SIGTERM, "count"),
])
def test_exhaust(tmp_path: Path, sig: int, moment: str) -> None:
    impl = "v6.19-pre-10541b374aa0"
    run = launch(tmp_path, "exhaust", "--impl", impl, "--jobs", "2")
    wait_for(run, {"progress": stderr_has(run, "sledfuzz: exhaust:"), "count": stdout_has(run, "shapes for"),
                   "shape file": file_appears(run, "exhaust-*/shape-*.json")}[moment], moment)
    out, _ = interrupt(run, sig)
    summary = json.loads((run.out_dir / f"exhaust-{impl}.json").read_text())
    assert summary["interrupted"] is True and summary["shapes_judged"] < summary["shapes"]
    files = sorted(str(p) for p in run.out_dir.glob("exhaust-*/shape-*.json"))
    assert files == sorted(v["case"] for v in summary["violating"])  # and no worker writes after the end
    assert f"{summary['shapes'] - summary['shapes_judged']:,} shapes not run" in out


def test_exhaust_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no summary, but the workers notice the parent is gone and stop writing."""
    run = launch(tmp_path, "exhaust", "--impl", "v6.19-pre-10541b374aa0", "--jobs", "2")
    wait_for(run, file_appears(run, "exhaust-*/shape-*.json"), "the first shape file")
    run.proc.kill()
    run.proc.wait(timeout=BOUND)
    deadline = time.monotonic() + BOUND  # 62,061 shapes: without the stop, minutes of work are left
    while session_processes(run.proc.pid):
        assert time.monotonic() < deadline, f"orphaned workers: {session_processes(run.proc.pid)}"
        time.sleep(0.05)
    assert len(list(run.out_dir.glob("exhaust-*/shape-*.json"))) < 5000


def test_replay(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    src = (ROOT / "corpus" / "regressions" / "10541b374aa0-stale-start.json").read_text()
    for i in range(3000):
        (corpus / f"c{i:04d}.json").write_text(src)
    run = launch(tmp_path, "replay", str(corpus), out=False)
    wait_for(run, stdout_has(run, "ok "), "the first replayed file")
    run.proc.send_signal(signal.SIGTERM)
    run.proc.wait(timeout=BOUND)
    out, err = run.text()
    assert run.proc.returncode == 130 and "sledfuzz: interrupted" in err and "Traceback" not in err
    summary = re.fullmatch(r"(\d+) files, (\d+) verdicts, 0 changed \(interrupted: (\d+) of 3000 files not replayed\)",
                           out.strip().splitlines()[-1])
    assert summary, out.strip().splitlines()[-1]
    assert int(summary[1]) + int(summary[3]) == 3000 and int(summary[3]) > 0


def test_minimize(tmp_path: Path) -> None:
    from sledfuzz.model.case import Arg, Body, Case, Function, Link

    case = Case(target="kernel_function", sled="2,0/w",
                function=Function(args=tuple(Arg(8) for _ in range(6)), values=tuple(range(3, 9)),
                                  body=Body(k=9, coeffs=(1, 2, 3, 4))),
                links=(Link("fentry", r0=5, cookie=9), Link("fexit", r0=7), Link("fentry", enter=3),
                       Link("fexit", r0=11)))
    raw = tmp_path / "raw.json"
    raw.write_text(case.to_json())
    small = tmp_path / "small.json"
    run = launch(tmp_path, "minimize", str(raw), "--impl", SEED_BUG, "-o", str(small), out=False)
    wait_for(run, handlers_installed(run), "handlers")
    run.proc.send_signal(signal.SIGINT)
    run.proc.wait(timeout=BOUND)
    _, err = run.text()
    assert run.proc.returncode == 130, err
    assert "Traceback" not in err and not list(tmp_path.glob(".small.json.*"))
    if small.exists():  # only ever complete
        load_entry(small)
