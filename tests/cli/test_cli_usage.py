"""CLI usage and input errors: exit code 2, one line on stderr, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sledfuzz.fuzz.cli import EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert "Traceback" not in err
    assert "error:" in lines[0]
    return lines[0]


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == EXIT_USAGE
    assert "usage: sledfuzz" in err


def test_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == EXIT_USAGE
    assert "invalid choice: 'frobnicate'" in one_error_line(err)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fuzz", "--impl", "v6.19", "--time", "-3"], "argument --time: expected a positive number of seconds, got '-3'"),
        (["fuzz", "--impl", "v6.19", "--time", "soon"], "argument --time: expected a number of seconds, got 'soon'"),
        (["fuzz", "--impl", "v6.19", "--jobs", "0"], "--jobs: expected a number of worker processes in 1..256, got 0"),
        (["fuzz", "--impl", "v6.19", "--seed", "x"], "argument --seed: expected a seed, got 'x'"),
        (["fuzz", "--impl", "v6.19", "--engine", "afl"], "argument --engine: invalid choice: 'afl'"),
        (["fuzz"], "the following arguments are required: --impl"),
        (["matrix", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["matrix", "--time-per-cell", "0"], "argument --time-per-cell: expected a positive number of seconds, got '0'"),
        (["exhaust", "--impl", "v6.19", "--max-links", "9"], "--max-links: expected a number of links in 0..6, got 9"),
        (["exhaust", "--impl", "v6.19", "--max-args", "13"], "--max-args: expected a number of arguments in 0..12, got 13"),
        (["run", "--time", "nan"], "argument --time: expected a positive number of seconds, got 'nan'"),
        (["replay"], "the following arguments are required: PATH"),
        (["explain"], "the following arguments are required: CASE.json"),
    ],
)
def test_bad_option_values(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert needle in one_error_line(err)


@pytest.mark.parametrize("cmd", [["fuzz", "--time", "1"], ["exhaust", "--count-only"], ["run", "--time", "1"],
                                 ["matrix", "--time-per-cell", "1"]])
def test_unknown_implementation(capsys: pytest.CaptureFixture[str], cmd: list[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, *cmd, "--impl", "v6.20", *(["--out", str(tmp_path)] if cmd[0] != "exhaust" else []))
    assert code == EXIT_USAGE
    line = one_error_line(err)
    assert "unknown implementation 'v6.20'" in line


@pytest.mark.parametrize("cmd", ["explain", "minimize", "replay"])
def test_missing_file(capsys: pytest.CaptureFixture[str], cmd: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = run(capsys, cmd, str(missing), *(["--impl", "v6.19"] if cmd != "replay" else []))
    assert code == EXIT_USAGE
    line = one_error_line(err)
    assert str(missing) in line and "no such file" in line


@pytest.mark.parametrize("cmd", ["explain", "minimize", "replay"])
def test_bad_json(capsys: pytest.CaptureFixture[str], cmd: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, cmd, str(bad), *(["--impl", "v6.19"] if cmd != "replay" else []))
    assert code == EXIT_USAGE
    line = one_error_line(err)
    assert "not valid JSON" in line and "line 1" in line


def test_bad_case_field_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sledfuzz.model.case import Case, Function, Link

    data = Case(target="bpf_prog", function=Function(), sled="2,0/w", links=(Link("fentry"),)).to_dict()
    data["links"][0]["kind"] = "fentri"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "explain", str(path), "--impl", "v6.19")
    assert code == EXIT_USAGE
    assert "links[0].kind: expected one of fentry, fmod_ret, fexit, fsession, got 'fentri'" in one_error_line(err)


def test_plain_case_without_impl_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sledfuzz.model.case import Case, Function

    path = tmp_path / "case.json"
    path.write_text(Case(target="bpf_prog", function=Function(), sled="2,0/w").to_json())
    code, _, err = run(capsys, "minimize", str(path))
    assert code == EXIT_USAGE
    assert "pass --impl NAME" in one_error_line(err)


def test_replay_of_a_corpus_entry_with_bad_expect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sledfuzz.model.case import Case, Function

    path = tmp_path / "entry.json"
    path.write_text(json.dumps({"corpus": 1, "case": Case(target="bpf_prog", function=Function(), sled="2,0/w").to_dict(),
                                "expect": {"v6.19": {"status": "passed"}}}))
    code, _, err = run(capsys, "replay", str(path))
    assert code == EXIT_USAGE
    assert "expect.v6.19.status: expected one of pass, fail" in one_error_line(err)


def test_replay_of_an_empty_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "replay", str(tmp_path))
    assert code == EXIT_USAGE
    assert "no corpus files" in one_error_line(err)


def test_out_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    code, _, err = run(capsys, "fuzz", "--impl", "v6.19", "--time", "1", "--out", str(f))
    assert code == EXIT_USAGE
    assert "exists and is not a directory" in one_error_line(err)


def test_impls_lists_every_era_pairing_and_bug_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "impls")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    for name in ("v6.3", "v6.6", "v6.8", "v6.11", "v6.12", "v6.16", "next-47c9214dcbea", "v6.19",
                 "ftrace=v6.6,tramp=v6.3", "v6.19-pre-9f1e16fb1fc9", "v6.6-pre-8547649981e6"):
        assert name in names


def test_help_and_version_via_the_module() -> None:
    res = subprocess.run([sys.executable, "-m", "sledfuzz", "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0
    for sub in ("run", "fuzz", "replay", "explain", "minimize", "impls", "matrix", "exhaust"):
        assert sub in res.stdout
    assert "Exit codes: 0" in res.stdout
    res = subprocess.run([sys.executable, "-m", "sledfuzz", "--version"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0 and res.stdout.startswith("sledfuzz ")
