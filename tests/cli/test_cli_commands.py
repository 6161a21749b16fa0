"""Every subcommand end to end: exit codes, outputs, files written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sledfuzz.fuzz.cli import EXIT_CLEAN, EXIT_FINDINGS, main
from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.fuzz.minimize import size

ROOT = Path(__file__).resolve().parents[2]
REG = ROOT / "corpus" / "regressions"
SEED_BUG = "ftrace=v6.6,tramp=v6.3"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_run_finds_the_bug_configuration_and_reports_nothing_on_the_clean_one(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # a lone bug configuration stops once its bug is found: the budget only bounds a hang
    code, out, _ = run(capsys, "run", "--time", "300", "--jobs", "2", "--no-progress", "--out", str(tmp_path),
                       "--impl", "v6.19-pre-9f1e16fb1fc9")
    assert code == EXIT_CLEAN, out
    rows = {r["impl"]: r for r in json.loads((tmp_path / "matrix.json").read_text())}
    assert rows["v6.19-pre-9f1e16fb1fc9"]["found"] and rows["v6.19-pre-9f1e16fb1fc9"]["invariant"] == "I-SIZE"
    case = Path(rows["v6.19-pre-9f1e16fb1fc9"]["case"])
    assert case.exists() and load_entry(case).expect["v6.19"].status == "pass"  # passes where it derives from
    assert out.startswith("PASS: ") and "judged" in out and "refused" in out and "unspecified" in out
    assert "| configuration | expect | result |" in (tmp_path / "matrix.md").read_text()
    assert not list(tmp_path.rglob("*.tmp")), "no temp files left behind"
    code, out, _ = run(capsys, "run", "--time", "3", "--jobs", "1", "--no-progress", "--out", str(tmp_path / "c"),
                       "--impl", "v6.19")
    rows = {r["impl"]: r for r in json.loads((tmp_path / "c" / "matrix.json").read_text())}
    assert code == EXIT_CLEAN, out
    assert rows["v6.19"]["expect"] == "pass" and not rows["v6.19"]["found"] and rows["v6.19"]["counts"]["cases"]


@pytest.mark.slow
def test_matrix_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # bug configurations stop once found: the per-cell budget only bounds a hang
    code, out, _ = run(capsys, "matrix", "--format", "json", "--time-per-cell", "300", "--jobs", "2", "--out",
                       str(tmp_path), "--impl", "v6.19-pre-10541b374aa0", "--impl", "v6.19-pre-9f1e16fb1fc9")
    rows = json.loads(out)
    assert code == EXIT_CLEAN
    assert [r["impl"] for r in rows] == ["v6.19-pre-10541b374aa0", "v6.19-pre-9f1e16fb1fc9"]
    for r in rows:
        assert {"impl", "expect", "found", "invariant", "seconds", "case"} <= set(r)
        assert r["expect"] == "fail" and r["found"] is True
        assert isinstance(r["seconds"], float) and Path(r["case"]).exists()
    assert rows[0]["invariant"] == "I-PROG-PROTOCOL"


@pytest.mark.slow
@pytest.mark.parametrize("engine", [(), ("--engine", "hypothesis")], ids=["default", "hypothesis"])
def test_fuzz_reports_findings_with_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           engine: tuple[str, ...]) -> None:
    code, out, _ = run(capsys, "fuzz", *engine, "--impl", SEED_BUG, "--time", "3", "--out", str(tmp_path),
                       "--no-progress")
    assert code == EXIT_FINDINGS
    assert "FOUND" in out and "(known bug)" in out and "on ftrace=v6.6,tramp=v6.19: pass" in out


@pytest.mark.slow
def test_fuzz_on_a_clean_configuration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "fuzz", "--impl", "v6.19", "--time", "3", "--out", str(tmp_path), "--no-progress")
    assert code == EXIT_CLEAN
    assert "no violations found" in out and "judged" in out


@pytest.mark.slow
def test_fuzz_atheris_reports_the_seed_bug(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "fuzz", "--engine", "atheris", "--impl", SEED_BUG, "--time", "30", "--out", str(tmp_path))
    assert code == EXIT_FINDINGS, out
    from sledfuzz.emu.impls.registry import resolve

    seed_invs = {i for b in resolve(SEED_BUG).caps.known_bugs if b.commit == "25ad10658dc1" for i in b.invariants}
    found = [line for line in out.splitlines() if line.startswith("FOUND ")]
    assert found and all("(known bug)" in line for line in found), out
    assert any(line.split()[1] in seed_invs for line in found), out  # the seed's bug, 25ad10658dc1
    crash = list((tmp_path / "atheris-ftrace_v6.6_tramp_v6.3").glob("crash-*"))
    names = {p.name for p in crash}
    assert any(n.endswith(".json") for n in names) and any(not n.endswith(".json") for n in names)
    for p in crash:
        if p.suffix == ".json":
            assert p.with_suffix("").name in names  # the case JSON sits next to libFuzzer's crash file


@pytest.mark.slow
def test_fuzz_atheris_on_a_clean_configuration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "fuzz", "--engine", "atheris", "--impl", "v6.19", "--time", "4", "--out", str(tmp_path))
    assert code == EXIT_CLEAN, out
    assert "no violations found" in out


def test_replay_passes_on_the_corpus_and_fails_on_a_changed_verdict(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = REG / "9f1e16fb1fc9-size-pass-im.json"
    code, out, _ = run(capsys, "replay", str(src))
    assert code == EXIT_CLEAN and "0 changed" in out
    data = json.loads(src.read_text())
    data["expect"]["v6.19"] = {"status": "fail", "invariants": ["I-SIZE"]}
    bad = tmp_path / "changed.json"
    bad.write_text(json.dumps(data))
    code, out, _ = run(capsys, "replay", str(src), str(bad))
    assert code == EXIT_FINDINGS
    assert f"CHANGED {bad} [v6.19]: expected fail I-SIZE, got pass" in out
    assert "1 changed" in out


def test_explain_shows_the_violation_and_the_annotated_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", str(REG / "10541b374aa0-stale-start.json"))
    assert code == EXIT_FINDINGS
    assert "VIOLATION I-PROG-PROTOCOL" in out
    assert "HOST CALL              __bpf_prog_enter(prog=0x" in out  # one line: arguments and return
    assert "image+0x0" in out and "sled func+0x0" in out  # regions
    assert "observation and model part at step" in out and "\n>>" in out
    assert "sd s1" in out or "c.sdsp" in out  # capstone disassembly
    code, out, _ = run(capsys, "explain", str(REG / "10541b374aa0-stale-start.json"), "--impl", "v6.19")
    assert code == EXIT_CLEAN and "verdict: pass" in out


def test_minimize_keeps_the_violation_and_shrinks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "raw.json"
    from sledfuzz.model.case import Arg, Body, Case, Function, Link

    case = Case(target="kernel_function", sled="2,0/w",
                function=Function(args=(Arg(8), Arg(8), Arg(4)), values=(3, 4, 5), body=Body(k=9, coeffs=(1, 2))),
                links=(Link("fentry", r0=5, cookie=9), Link("fexit", r0=7), Link("fentry", enter=3)))
    big.write_text(case.to_json())
    out_path = tmp_path / "small.json"
    code, _, err = run(capsys, "minimize", str(big), "--impl", SEED_BUG, "-o", str(out_path))
    assert code == EXIT_CLEAN, err
    small = load_entry(out_path)
    assert small.expect[SEED_BUG].status == "fail"
    assert small.expect["ftrace=v6.6,tramp=v6.19"].status == "pass"
    assert size(small.case) < size(case)
    code, _, err = run(capsys, "minimize", str(big), "--impl", "v6.19")
    assert code == 2 and "does not fail on v6.19" in err


@pytest.mark.slow
def test_exhaust_counts_and_finds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "exhaust", "--impl", "v6.19", "--count-only")
    assert code == EXIT_CLEAN
    count = int(out.split()[0])
    assert count > 10_000
    code, out, _ = run(capsys, "exhaust", "--impl", "v6.19-pre-10541b374aa0", "--max-links", "1", "--max-args", "1",
                       "--jobs", "2", "--out", str(tmp_path))
    assert code == EXIT_FINDINGS
    assert out.splitlines()[0].endswith("(max links 1, max args 1)")
    assert "I-PROG-PROTOCOL" in out and "enter=skip" in out
    summary = json.loads((tmp_path / "exhaust-v6.19-pre-10541b374aa0.json").read_text())
    assert summary["shapes"] == int(out.split()[0]) and summary["violating"]
    code, out, _ = run(capsys, "exhaust", "--impl", "v6.19", "--max-links", "1", "--max-args", "1", "--jobs", "2",
                       "--out", str(tmp_path))
    assert code == EXIT_CLEAN and "0 shapes violate" in out


@pytest.mark.slow
def test_sigterm_ends_run_with_the_summary_so_far(tmp_path: Path) -> None:
    """Synchronised on the finding file (not on time): SIGTERM after the first minimal case."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "sledfuzz", "run", "--time", "120", "--jobs", "2", "--no-progress",
                             "--out", str(tmp_path), "--impl", SEED_BUG, "--impl", "v6.19"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # bounds a hang only
    minimal: list[Path] = []
    while not minimal:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first finding"
        minimal = [p for p in tmp_path.glob("ftrace_v6.6_tramp_v6.3/*.json") if not p.name.endswith(".raw.json")]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert out.startswith("INTERRUPTED: ") and "Interrupted by SIGTERM" in out and "interrupted" in err
    assert "judged" in out and "| configuration |" in (tmp_path / "matrix.md").read_text()
    rows = {r["impl"]: r for r in json.loads((tmp_path / "matrix.json").read_text())}
    cases = {f["case"] for f in rows[SEED_BUG]["findings"]}
    assert {str(p) for p in minimal} <= cases, "the minimal case on disk is in the summary"
    assert "Traceback" not in err
