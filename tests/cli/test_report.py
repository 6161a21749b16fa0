"""The final report (verdict first, one line per declared bug, <= 100 columns), matrix.md with its
legend, progress lines when stderr is not a terminal, --no-progress, the kernel build notice."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sledfuzz.fuzz import progress, report
from sledfuzz.fuzz.campaign import CellResult, Counts, Finding
from sledfuzz.fuzz.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUG = "v6.19-pre-9f1e16fb1fc9"


def cell(impl: str, expect: str, known: dict[str, list[str]], findings: list[Finding], *, cases: int = 100,
         interrupted: bool = False, origin: str | None = "v6.19") -> CellResult:
    res = CellResult(impl=impl, expect=expect, seconds=2.0, counts=Counts(cases=cases, judged=cases,  # type: ignore[arg-type]
                                                                                   failed=len(findings)),
                     known_bugs=known, origin=origin, interrupted=interrupted)
    res.findings = {f.invariant: f for f in findings}
    return res


def finding(impl: str, inv: str, *, known: bool = True, checked: bool = True, origin_status: str = "pass",
            message: str = "") -> Finding:
    path = f"/tmp/out/{impl}/{inv}.json"
    return Finding(impl, inv, message or f"{inv}: what went wrong", 1.25, path.replace(".json", ".raw.json"),
                   path if checked else path.replace(".json", ".raw.json"), known, "v6.19",
                   origin_status if checked else None, checked=checked)


CELLS = [
    cell(BUG, "fail", {"9f1e16fb1fc9": ["I-SIZE"]}, [finding(BUG, "I-SIZE")]),
    cell("v6.19-pre-7112cd26e606", "fail", {"7112cd26e606": ["I-BODY-RUNS", "I-ORDER", "I-PROG-PROTOCOL"]}, []),
    cell("v6.19-pre-1732ebc4a261", "fail", {"1732ebc4a261": ["I-NO-FAULT"]},
         [finding("v6.19-pre-1732ebc4a261", "I-NO-FAULT", checked=False)], interrupted=True),
    cell("v6.12", "pass", {}, [finding("v6.12", "I-SLED-CONSISTENT", known=False, message="I-SLED-CONSISTENT: body "
                                       "entry 0 at pc=0xffffffff00000008 want 0xffffffff00400004 (func+4) " * 2)]),
    cell("v6.19", "pass", {}, [], origin=None),
    cell("v6.8", "fail", {"fd2e08128944": ["I-RETURN-VALUE"]}, [], cases=0, interrupted=True, origin=None),
]


def test_run_report_says_the_verdict_first_then_one_line_per_declared_bug() -> None:
    text = report.run_report(CELLS, 2.0, interrupted=False, out_dir="/tmp/out")
    lines = text.splitlines()
    assert lines[0] == "FAIL: 1 unexpected; 2/4 declared bugs found; 1/2 clean configurations clean; 1 not run"
    assert all(len(line) <= report.WIDTH for line in lines), max(lines, key=len)
    assert lines[1].startswith("500 cases in 2.0 s (250/s): ")
    rows = {line.split()[0]: line for line in lines if line.startswith("  v6.")}
    assert rows[BUG].split() == [BUG, "9f1e16fb1fc9", "I-SIZE", "1.25s", "I-SIZE.json"]
    assert rows["v6.19-pre-7112cd26e606"].split() == ["v6.19-pre-7112cd26e606", "7112cd26e606", "I-BODY-RUNS",
                                                      "+2", "MISSED", "-"]
    assert rows["v6.19-pre-1732ebc4a261"].endswith("I-NO-FAULT.raw.json (not minimised)")
    assert rows["v6.8"].split()[3:] == ["not", "run", "-"]
    assert "Unexpected findings:" in lines and "  v6.12  I-SLED-CONSISTENT  1.25s  v6.12/I-SLED-CONSISTENT.json" in lines
    assert any(line.startswith("    I-SLED-CONSISTENT: body entry 0 at pc=0xffffffff00000008") for line in lines)
    assert "Not run (interrupted before they started): v6.8" in lines
    assert "Minimal cases" not in text


def test_run_report_without_findings_has_no_empty_sections() -> None:
    quiet = [cell("v6.19", "pass", {}, [], origin=None)]
    text = report.run_report(quiet, 1.0, interrupted=False, out_dir="o")
    assert text.splitlines()[0] == "PASS: 0 unexpected; 0/0 declared bugs found; 1/1 clean configurations clean"
    assert "Declared bugs" not in text and "Unexpected" not in text and "Cases:" not in report.matrix_md(quiet)


def test_interrupted_report_names_the_signal() -> None:
    text = report.run_report(CELLS[:1], 1.0, interrupted=True, out_dir="o", signal_name="SIGTERM")
    assert text.splitlines()[0].startswith("INTERRUPTED: ")
    assert text.splitlines()[-1] == "Interrupted by SIGTERM: the report covers the work done until then."


def test_matrix_md_has_the_legend_and_a_word_in_every_cell() -> None:
    md = report.matrix_md(CELLS, "/tmp/out")
    for word in ("`ok`", "`MISSED`", "`UNEXPECTED`", "`ORIGIN-FAILS`", "`not run`", "`declared`", "`NEW 0.42s`",
                 "`found 0.42s`", "`missed`", "`known 0.42s`", "`interrupted`", "`ERROR`"):
        assert word in md, word
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.splitlines() if line.startswith("| `")}
    assert rows[f"`{BUG}`"][:2] == ["fail", "ok"]
    assert rows["`v6.19-pre-7112cd26e606`"][1] == "MISSED"
    assert rows["`v6.19-pre-1732ebc4a261`"][1] == "ok"  # found before the interrupt
    assert rows["`v6.12`"][1] == "UNEXPECTED" and "NEW 1.25s" in rows["`v6.12`"]
    assert rows["`v6.8`"][1] == "not run" and "not run" in rows["`v6.8`"][2:]
    assert "I-NO-FAULT after 1.25s: v6.19-pre-1732ebc4a261/I-NO-FAULT.raw.json (not minimised; origin check " \
           "not run)" in md


def test_fuzz_report_after_an_interrupt_in_minimisation_names_the_raw_case() -> None:
    text = report.fuzz_report(CELLS[2], 3.0, interrupted=True, signal_name="SIGINT")
    assert "raw case: /tmp/out/v6.19-pre-1732ebc4a261/I-NO-FAULT.raw.json (interrupted: minimisation" in text
    assert "None" not in text and "minimal case" not in text
    assert "3.0 s (33/s): " in text.splitlines()[0]


def test_fuzz_report_does_not_call_a_search_that_ended_in_an_error_clean() -> None:
    errored = cell("v6.19", "pass", {}, [], origin=None)
    errored.error = "worker died: BrokenProcessPool"
    lines = report.fuzz_report(errored, 1.0).splitlines()
    assert "no violations found" not in lines
    assert "no violations found before the error (the search did not finish)" in lines
    assert lines[-1] == "error: worker died: BrokenProcessPool"
    assert "no violations found" in report.fuzz_report(cell("v6.19", "pass", {}, [], origin=None), 1.0).splitlines()


def cli(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    """The CLI as a user runs it with output to files (stderr is not a terminal)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "sledfuzz", *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def progress_lines(err: str, label: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"sledfuzz: {label}: ")]


@pytest.mark.slow
def test_run_prints_progress_lines_and_the_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    # a lone bug configuration ends as soon as its bug is found: no time budget to miss under load
    code, out, err = cli(tmp_path, "run", "--time", "300", "--jobs", "1", "--out", str(out_dir), "--impl", BUG)
    assert code == 0, out + err
    assert progress_lines(err, "run") and "cases/s)" in progress_lines(err, "run")[0]
    lines = out.splitlines()
    assert lines[0] == "PASS: 0 unexpected; 1/1 declared bugs found; 0/0 clean configurations clean"
    assert " cases in " in lines[1] and "/s): " in lines[1] and all(len(line) <= report.WIDTH for line in lines)
    assert any(line.split()[:3] == [BUG, "9f1e16fb1fc9", "I-SIZE"] for line in lines)
    md = (out_dir / "matrix.md").read_text()
    assert "Legend" in md and "| configuration | expect | result |" in md
    code, out, err = cli(tmp_path, "run", "--time", "2", "--jobs", "1", "--out", str(out_dir), "--impl", "v6.19",
                         "--no-progress")
    assert code == 0 and err == "", err


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "label"), [
    (["exhaust", "--impl", "v6.19", "--max-links", "1", "--max-args", "1", "--jobs", "2"], "exhaust"),
    (["matrix", "--time-per-cell", "2", "--jobs", "2", "--impl", BUG, "--impl", "v6.19"], "matrix"),
    (["fuzz", "--impl", "v6.19", "--time", "2"], "fuzz"),
])
def test_searching_subcommands_show_progress_unless_told_not_to(tmp_path: Path, argv: list[str], label: str) -> None:
    code, _, err = cli(tmp_path, *argv, "--out", str(tmp_path / "a"))
    assert code in (0, 1) and progress_lines(err, label), err  # 1: a bug not found in 2 s on a loaded machine
    assert "Traceback" not in err
    code, _, err = cli(tmp_path, *argv, "--out", str(tmp_path / "b"), "--no-progress")
    assert code in (0, 1) and err == "", err


def test_the_first_kernel_build_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "linux-9.9"
    tree.mkdir()
    (tree / "README").write_text("not a kernel\n")
    tarball = tmp_path / "linux.tar.xz"
    with tarfile.open(tarball, "w:xz") as tf:
        tf.add(tree, arcname="linux-9.9")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("SLEDFUZZ_LINUX_SRC", str(tarball))  # fuzz --linux-src sets both: restored after
    monkeypatch.setattr("sledfuzz.emu.kernel.impl._default_tree", None)
    assert main(["impls", "--linux-src", str(tarball)]) == 0
    err = capsys.readouterr().err
    assert f"sledfuzz: reading the JIT sources from {tarball} (first time only" in err
    code = main(["fuzz", "--impl", "kernel", "--linux-src", str(tarball), "--no-progress", "--out",
                 str(tmp_path / "o")])
    # a tree that does not build: exit 125, so git bisect run skips it (docs/review.md)
    assert code == 125 and "reading the JIT sources" not in capsys.readouterr().err


def test_progress_sums_the_cells_of_one_configuration() -> None:
    """``fuzz --jobs 2`` runs two cells of one configuration: progress counts both."""
    display = progress.Display(["v6.19"], {"v6.19": "pass"}, enabled=False)
    base = {"judged": 0, "failed": 0, "refused": 0, "unspecified": 0, "invalid": 0}
    display.on_event(("progress", "v6.19", dict(base, cases=30, seed=0)))
    display.on_event(("progress", "v6.19", dict(base, cases=12, seed=1)))
    display.on_event(("progress", "v6.19", dict(base, cases=40, seed=0)))  # a later report of the first cell
    assert " 52 cases (" in display.line()
    assert display.partial("v6.19").counts.cases == 52
