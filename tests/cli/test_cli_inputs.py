"""Inputs a user (or an attacker's file) can hand the CLI: help text, hostile files, output
directories. Every malformed input is one line on stderr with exit 2, quickly, never a traceback."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from sledfuzz.fuzz.cli import EXIT_USAGE, build_parser, main
from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.model.case import Case, Function, Link

ROOT = Path(__file__).resolve().parents[2]


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_every_option_has_help_naming_its_default() -> None:
    checked = 0
    for parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            where = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where}: no help text"
            text = formatter._expand_help(action)
            checked += 1
            if action.required or not action.option_strings:
                continue  # a required option or a positional has no default to state
            assert "default" in text, f"{where}: the help does not say what happens by default: {text!r}"
            if action.default not in (None, False, []):  # an empty list (append) is said in words
                assert _shown(action.default) in text, f"{where}: default {action.default!r} not in {text!r}"
    assert checked > 30  # every subcommand's options were walked


# -- hostile input files: one line, exit 2, for every command that reads a case ---------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert "Traceback" not in err and lines[0].startswith("sledfuzz: error: ")
    assert len(lines[0]) < 400
    return lines[0]


def _case_text(**changes: Any) -> str:
    data = Case(target="kernel_function", function=Function(), sled="2,0/w", links=(Link("fentry"),)).to_dict()
    data.update(changes)
    return json.dumps(data)


def _layout(**fields: str) -> dict[str, str]:
    return {**Case(target="kernel_function", function=Function(), sled="2,0/w").to_dict()["layout"], **fields}


HOSTILE: dict[str, tuple[str, str]] = {
    "bigint.json": (_case_text(seed=12345).replace("12345", "9" * 5000),
                    "seed: expected an integer of at most 64 bits, got a 5000-digit number"),
    "deep.json": ("[" * 100_000 + "]" * 100_000, "nested more than 32 levels deep"),
    "huge.json": (" " * (2 << 20), "larger than 1 MiB"),
    "stack.json": (_case_text(layout=_layout(stack="0xffffffffffffffff")), "layout.stack: expected a 16-byte aligned"),
    "func.json": (_case_text(layout=_layout(func="0x1")), "layout.func: expected a 2-byte aligned address, got 0x1"),
    "overlap.json": (_case_text(layout=_layout(data="0xffffffff80a00000")), "layout.stack: [0xffffffff80a00000"),
    "binary.json": ("\udcff", "not UTF-8"),
}


@pytest.mark.parametrize("cmd", ["replay", "explain", "minimize"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, cmd: str,
                                               name: str) -> None:
    text, needle = HOSTILE[name]
    path = tmp_path / name
    if cmd == "replay" and text.startswith("{"):  # replay wants a corpus entry around the case
        text = '{"corpus": 1, "expect": {"v6.19": {"status": "pass"}}, "case": ' + text + "}"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, _, err = run(capsys, cmd, str(path), *(["--impl", "v6.19"] if cmd != "replay" else []))
    assert code == EXIT_USAGE
    line = one_error_line(err)
    assert str(path) in line and needle in line


@pytest.mark.parametrize("cmd", ["replay", "explain", "minimize"])
def test_a_device_is_refused_before_reading(capsys: pytest.CaptureFixture[str], cmd: str) -> None:
    code, _, err = run(capsys, cmd, "/dev/zero", *(["--impl", "v6.19"] if cmd != "replay" else []))
    assert code == EXIT_USAGE
    assert "/dev/zero: is a device, expected a regular JSON file" in one_error_line(err)


@pytest.mark.parametrize("cmd", ["replay", "explain", "minimize"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, cmd: str) -> None:
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)
    # the timeout is only a safety net: reading the FIFO would block forever
    impl = ["--impl", "v6.19"] if cmd != "replay" else []
    res = subprocess.run([sys.executable, "-m", "sledfuzz", cmd, str(fifo), *impl],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == EXIT_USAGE
    assert f"{fifo}: is a FIFO, expected a regular JSON file" in one_error_line(res.stderr)


# -- replay: directories, recursively; every error names its file ----------------------------------------


def test_replay_walks_a_fuzz_output_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = ROOT / "corpus" / "regressions" / "9f1e16fb1fc9-size-pass-im.json"
    (tmp_path / "v6.19-pre-9f1e16fb1fc9").mkdir()
    shutil.copy(src, tmp_path / "v6.19-pre-9f1e16fb1fc9" / "I-SIZE.json")
    (tmp_path / "matrix.json").write_text("[]\n")  # a summary, not an entry: skipped
    code, out, err = run(capsys, "replay", str(tmp_path))
    assert code == 0, err
    assert "I-SIZE.json" in out and out.splitlines()[-1].startswith("1 files, ")
    assert "1 other JSON files skipped (matrix.json)" in out


def test_replay_names_the_file_holding_an_unknown_implementation(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    entry = json.loads((ROOT / "corpus" / "regressions" / "9f1e16fb1fc9-size-pass-im.json").read_text())
    entry["expect"] = {"v6.20": {"status": "pass"}}
    bad = tmp_path / "deeper" / "entry.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(entry))
    code, _, err = run(capsys, "replay", str(tmp_path))
    assert code == EXIT_USAGE
    line = one_error_line(err)
    assert str(bad) in line and "unknown implementation 'v6.20'" in line


# -- minimize: the file's own invariant, sizes by name, bad -o ---------------------------------------------


SEED_ENTRY = ROOT / "corpus" / "regressions" / "25ad10658dc1-seed-pairing.json"  # I-BODY-RUNS, I-RETURN-VALUE, I-UNWIND


def _seed_entry_recording(tmp_path: Path, invariant: str) -> Path:
    entry = json.loads(SEED_ENTRY.read_text())
    entry["provenance"]["invariant"] = invariant
    path = tmp_path / f"{invariant}.raw.json"
    path.write_text(json.dumps(entry))
    return path


@pytest.mark.slow
def test_minimize_keeps_the_invariant_the_file_records(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = _seed_entry_recording(tmp_path, "I-UNWIND")  # not the alphabetically first one
    out = tmp_path / "small.json"
    code, _, err = run(capsys, "minimize", str(raw), "-o", str(out), "--time", "20")
    assert code == 0, err
    small = load_entry(out)
    assert small.provenance["invariant"] == "I-UNWIND"
    assert "I-UNWIND" in small.expect["ftrace=v6.6,tramp=v6.3"].invariants
    assert small.provenance["sledfuzz"].startswith("sledfuzz ")
    assert "(I-UNWIND on ftrace=v6.6,tramp=v6.3; links 1, args 1 -> 0, slots 1 -> 0," in err


def test_minimize_refuses_a_file_whose_invariant_is_gone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = _seed_entry_recording(tmp_path, "I-SIZE")
    code, _, err = run(capsys, "minimize", str(raw))
    assert code == EXIT_USAGE
    assert "records I-SIZE but the case now violates I-BODY-RUNS, I-RETURN-VALUE, I-UNWIND" in one_error_line(err)


@pytest.mark.parametrize(("target", "needle"), [("", "is a directory"), ("missing/x.json", "does not exist"),
                                                ("file/x.json", "does not exist")])
def test_minimize_output_must_be_a_writable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str,
                                                 needle: str) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "minimize", str(SEED_ENTRY), "-o", str(tmp_path / target))
    assert code == EXIT_USAGE
    assert needle in one_error_line(err)


# -- output directories ---------------------------------------------------------------------------------------


SEARCHES = [["run", "--time", "1", "--impl", "v6.19"], ["fuzz", "--impl", "v6.19", "--time", "1"],
            ["fuzz", "--impl", "v6.19", "--time", "1", "--engine", "atheris"], ["exhaust", "--impl", "v6.19"],
            ["matrix", "--time-per-cell", "1", "--impl", "v6.19"]]


@pytest.mark.parametrize("cmd", SEARCHES, ids=lambda c: "-".join(c[:1] + c[-1:]))
def test_an_out_under_a_file_is_refused_before_the_run(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       cmd: list[str]) -> None:
    (tmp_path / "file").write_text("")
    code, out, err = run(capsys, *cmd, "--out", str(tmp_path / "file" / "out"))
    assert code == EXIT_USAGE
    assert "not writable: Not a directory (ENOTDIR)" in one_error_line(err)
    assert "no violations" not in out


@pytest.mark.parametrize("cause", [errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("cmd", SEARCHES, ids=lambda c: "-".join(c[:1] + c[-1:]))
def test_an_unwritable_out_is_refused_naming_the_cause(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, cmd: list[str],
                                                       cause: int) -> None:
    def refuse(*_args: object, **_kw: object) -> tuple[int, str]:  # as a read-only mount or a 0555 dir (for non-root)
        raise OSError(cause, os.strerror(cause))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, out, err = run(capsys, *cmd, "--out", str(tmp_path))
    assert code == EXIT_USAGE
    assert f"--out {tmp_path}: not writable: {os.strerror(cause)} ({errno.errorcode[cause]})" in one_error_line(err)
    assert "no violations" not in out


@pytest.mark.parametrize("engine", ["random", "hypothesis"])
def test_a_disk_filling_mid_search_is_an_error_naming_enospc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             engine: Literal["random", "hypothesis"]) -> None:
    from sledfuzz.fuzz import corpus
    from sledfuzz.fuzz.campaign import search_cell

    def full(*_args: object, **_kw: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(corpus.tempfile, "mkstemp", full)
    res = search_cell("ftrace=v6.6,tramp=v6.3", seconds=30, seed=1, out_dir=str(tmp_path), engine=engine)
    assert "No space left on device (ENOSPC)" in res.error
    assert "Flaky" not in res.error and "\n" not in res.error
    assert not res.findings  # nothing claimed that is not on disk


@pytest.mark.slow
def test_hypothesis_writes_nothing_into_the_working_directory(tmp_path: Path) -> None:
    cwd, cache = tmp_path / "cwd", tmp_path / "cache"
    out = cwd / "out"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env.update(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(cache))
    res = subprocess.run([sys.executable, "-m", "sledfuzz", "fuzz", "--impl", "v6.19", "--time", "2", "--no-progress",
                          "--engine", "hypothesis", "--out", str(out)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr  # 1: a finding, still a run
    assert [p.name for p in cwd.iterdir()] == ["out"]  # no .hypothesis/ (constants cache, database)
    assert (cache / "sledfuzz" / "hypothesis").is_dir()  # where its files went instead


# -- explain: hex, counts in words, --max-insns, one line per host call, folded thunks, torn states ------------


REG = ROOT / "corpus" / "regressions"


def test_explain_prints_hex_one_line_per_host_call_and_folds_thunks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", str(SEED_ENTRY))
    assert code == 1
    assert "['0x" not in out and "Trap(" not in out and "pc=" not in out.replace("pc=0x", "")
    # what the unwinder reads is a stack word nothing wrote: the case's fill pattern (non-zero)
    assert re.search(r"the unwinder saw \[0x[0-9a-f]{16}\] want \[0xffffffff80200008, 0xffffffff80100800\]", out)
    assert "body runs once at 0x" in out
    host = [line for line in out.splitlines() if "HOST CALL" in line]
    assert [h.split("HOST CALL")[1].split("(")[0].strip() for h in host] == ["__bpf_prog_enter", "prog[0]",
                                                                             "__bpf_prog_exit"]
    assert "__bpf_prog_enter(prog=0xffffffff81100000, run_ctx=0x" in host[0] and ") -> 0x1 (clobbers a1)" in host[0]
    assert host[2].split(") -> ")[1].startswith("void")
    thunks = [line for line in out.splitlines() if " thunk " in line]
    assert len(thunks) == 3 and all("14 instructions: per-case values into a3-a7, t0-t5" in t for t in thunks)
    assert not any(" ld a3, " in line for line in out.splitlines())  # the scrambling is folded


def _recursing_case(tmp_path: Path) -> Path:
    path = tmp_path / "recursion.json"
    path.write_text(Case(target="kernel_function", function=Function(), sled="8,4/c", links=(Link("fexit"),)).to_json())
    return path


@pytest.mark.parametrize("limit", [1, 3, 30, 200])
def test_explain_shows_at_most_max_insns_and_marks_what_it_cut(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               limit: int) -> None:
    code, out, _ = run(capsys, "explain", str(_recursing_case(tmp_path)), "--impl", "next-47c9214dcbea",
                       "--max-insns", str(limit))
    assert code == 1
    header = next(line for line in out.splitlines() if line.startswith("execution: "))
    total = int(header.split()[1])
    assert total > 1000 and f"(showing {limit}: --max-insns {limit})" in header
    assert "stop: write_unmapped at pc=0x" in header
    numbered = [line for line in out.splitlines() if line[:8].strip().isdigit() or line[2:8].strip().isdigit()]
    shown = sum(int(line.split("thunk")[1].split("instructions")[0].split()[-1]) if " thunk " in line else 1
                for line in numbered)
    assert 0 < shown <= limit
    assert f"instructions not shown (--max-insns {limit})" in out
    last = int(numbered[-1][2:8])
    assert last == total - 1  # the tail, where it faulted, is always shown


def test_explain_traces_the_torn_state_it_judges(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", str(REG / "8547649981e6-torn-two-word-patch.json"))
    assert code == 1
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("  torn state 0: ")))
    assert "fetch states (0, 0, 0, 4) of M0..M4" in lines[first]
    fetched = lines[first + 1: first + 5]
    assert [f.split("from ")[1].split(":")[0] for f in fetched] == ["M0", "M0", "M0", "M4"]
    assert fetched[3].endswith("ld ra, -8(sp)")
    assert lines[first + 5] == "    -> control reaches nowhere defined"
    assert "the run below is the consistent sled's, for reference" in out
    assert ">>" not in out  # the run is not where I-TORN parts from the model
