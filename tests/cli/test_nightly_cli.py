"""``sledfuzz nightly`` end to end: the reports, exit codes, interrupts, a dead worker, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.model.case import Case

ROOT = Path(__file__).resolve().parents[2]
BUG = "v6.19-pre-9f1e16fb1fc9"  # declares I-SIZE, found in well under a second of search
REPORTS = ("summary.json", "summary.md", "junit.xml", "progress.png")


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(ROOT), HYPOTHESIS_PROFILE="ci")


def nightly(tmp: Path, *args: str, cache: str = "cache", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sledfuzz", "nightly", *args], cwd=str(ROOT), env=_env(tmp / cache),
                          capture_output=True, text=True, timeout=timeout, check=False)


def start(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sledfuzz", "nightly", *args], cwd=str(ROOT), env=_env(tmp / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen[str], path: Path, ready: Callable[[dict[str, Any]], bool],
             limit: float = 240) -> dict[str, Any]:
    """Poll a JSON file the run writes until ``ready`` holds (the run's own progress, not a guess at timing)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None
        if data is not None and ready(data):
            return data
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{path} never satisfied the condition: {proc.communicate()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_redis_that_is_down_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    r = nightly(tmp_path, "--time", "10", "--impl", "v6.19", "--out", str(tmp_path / "out"),
                "--hypothesis-db", f"redis://127.0.0.1:{port}", timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "does not answer" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["--shard", "3/2"], "--shard"),
    (["--jobs", "none"], "--jobs"),
    (["--time", "-5"], "--time"),
    (["--seed", "-1"], "--seed"),
    (["--impl", "v6.19", "--shard", "2/2"], "no configuration"),
    (["--impl", "v9.99"], "v9.99"),
    (["--checkout", "/nonexistent/checkout"], "--checkout"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    r = nightly(tmp_path, *args, "--out", str(tmp_path / "out"), timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def _reports(out: Path) -> dict[str, Any]:
    for name in REPORTS:
        assert (out / name).is_file(), name
    assert (out / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ET.parse(out / "junit.xml")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


@pytest.mark.slow
def test_the_checkout_is_an_option_not_where_the_package_lives(tmp_path: Path) -> None:
    """Run from another directory, a night finds no regression corpus and no property tests (it
    does not look beside the installed package); ``--checkout`` names the checkout to use."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    quick = ("--time", "15", "--jobs", "1", "--impl", "v6.19", "--skip", "search", "--skip", "atheris", "--no-progress")

    def night_in(cwd: Path, name: str, *extra: str) -> dict[str, Any]:
        r = subprocess.run([sys.executable, "-m", "sledfuzz", "nightly", *quick, *extra, "--out", str(tmp_path / name)],
                           cwd=str(cwd), env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
        summary: dict[str, Any] = json.loads((tmp_path / name / "summary.json").read_text())
        return summary

    outside = night_in(elsewhere, "outside")
    assert outside["phases"]["replay"]["files"] == 0
    assert "no tests/properties" in outside["phases"]["properties"]["line"]
    named = night_in(elsewhere, "named", "--checkout", str(ROOT), "--skip", "properties")
    assert named["phases"]["replay"]["files"] > 0


@pytest.mark.slow
def test_short_night_finds_the_bug_and_nothing_on_the_clean_configuration(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Only replay and search (the property and atheris phases have tests of their own): the search
    # gets most of the budget however loaded the machine is, and it needs only a second or two.
    r = nightly(tmp_path, "--time", "40", "--jobs", "2", "--impl", "v6.19", "--impl", BUG, "--skip", "properties",
                "--skip", "atheris", "--out", str(out))
    s = _reports(out)
    assert r.returncode == 0 == s["exit_code"], (r.stdout, r.stderr)
    assert not s["interrupted"] and s["elapsed_seconds"] <= 40 + 30
    assert s["phases"]["replay"]["changed"] == [] and s["phases"]["replay"]["files"] > 0
    assert [f for f in s["findings"] if f["impl"] == "v6.19"] == []
    bug = [b for b in s["declared_bugs"] if b["impl"] == BUG]
    assert bug and all(b["found"] for b in bug)
    entry = load_entry(bug[0]["case"])
    assert entry.expect[BUG].status == "fail" and "I-SIZE" in entry.expect[BUG].invariants
    assert s["cases"]["v6.19"]["mixed"]["cases"] > 0 and s["cases"][BUG]["mixed"]["cases"] > 0
    assert {"sledfuzz", "unicorn", "hypothesis"} <= set(s["versions"])
    junit = ET.parse(out / "junit.xml").getroot()
    assert not list(junit.iter("failure"))
    assert len(list(junit.iter("testcase"))) == 2 * len(s["invariants"])


@pytest.mark.slow
def test_sigterm_after_a_worker_died_exits_130_with_four_reports_marked_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(tmp_path, "--time", "900", "--jobs", "1", "--impl", "v6.19", "--skip", "properties", "--skip", "atheris",
                 "--skip", "replay", "--no-progress", "--out", str(out))
    progress = out / "progress.json"
    first = wait_for(proc, progress, lambda d: d["cases"] > 0 and len(d["running"]) == 1)
    victim = first["running"][0]["pid"]
    os.kill(victim, signal.SIGKILL)  # what the OOM killer would do
    wait_for(proc, progress, lambda d: d["deaths"] == 1 and any(r["attempt"] == 2 for r in d["running"]))
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    s = _reports(out)
    assert s["interrupted"] is True and s["exit_code"] == 130
    assert "INTERRUPTED" in (out / "summary.md").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(out / "junit.xml").getroot().iter("property")}
    assert props["interrupted"] == "true"
    [death] = s["deaths"]
    assert death["impl"] == "v6.19" and death["exitcode"] == -signal.SIGKILL and death["restarted"] is True
    Case.from_json(Path(death["last_case"]).read_text())  # the case it was judging, loadable
    assert death["last_case"] in (out / "summary.md").read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


@pytest.mark.slow
def test_sigint_exits_130_with_four_reports_marked_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(tmp_path, "--time", "900", "--jobs", "2", "--impl", "v6.12", "--skip", "properties", "--skip",
                 "atheris", "--no-progress", "--out", str(out))
    wait_for(proc, out / "progress.json", lambda d: d["phase"] == "search" and d["cases"] > 0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    s = _reports(out)
    assert s["interrupted"] is True and s["cases"]["v6.12"]["mixed"]["cases"] > 0
    assert "[interrupted]" in stdout
