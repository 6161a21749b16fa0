"""``sledfuzz fuzz --elf`` on a user's own object file, built with each real cross compiler."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sledfuzz.fuzz.cli import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, main
from sledfuzz.fuzz.corpus import load_entry
from tests.support.cross import Build, compile_object, tools_present
from tests.support.tools import skip_if_missing

pytestmark = skip_if_missing(bool(tools_present()), reason=f"missing tools: {tools_present()} (scripts/setup.sh)")

SEED_BUG = "ftrace=v6.6,tramp=v6.3"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _own_object(tmp_path: Path, build: Build) -> Path:
    """A copy in the test's directory: the user's file, not the cache's."""
    dst = tmp_path / f"traced-{build.compiler}.o"
    shutil.copy(compile_object(build), dst)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_fuzz_elf_finds_the_seed_bug_and_the_minimal_case_replays(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, compiler: str) -> None:
    obj = _own_object(tmp_path, Build(compiler, "4"))
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "fuzz", "--impl", SEED_BUG, "--elf", str(obj), "--time", "12", "--no-progress",
                         "--out", str(out_dir))
    assert code == EXIT_FINDINGS, out + err
    found = sorted((out_dir / "ftrace_v6.6_tramp_v6.3").glob("I-*.json"))
    minimal = [p for p in found if not p.name.endswith(".raw.json")]
    assert minimal, out
    entry = load_entry(minimal[0])
    comp = entry.case.function.compiled
    assert comp is not None and comp.path == str(obj.resolve()) and comp.symbol.startswith("st_")
    assert entry.expect["ftrace=v6.6,tramp=v6.19"].status == "pass"  # passes where the pairing derives from
    code, out, _ = run(capsys, "replay", str(minimal[0]))
    assert code == EXIT_CLEAN and "0 changed" in out, out
    code, out, _ = run(capsys, "explain", str(minimal[0]), "--impl", SEED_BUG)
    assert code == EXIT_FINDINGS and f"sled {comp.symbol}+0x0" in out, out  # the object's own symbols
    # the object changes: the case no longer names the function it was made for
    obj.write_bytes(obj.read_bytes() + b"\0")
    code, _, err = run(capsys, "replay", str(minimal[0]))
    assert code == EXIT_USAGE and "the file changed since the case was made" in err and "Traceback" not in err


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_fuzz_elf_on_a_clean_configuration_reports_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, compiler: str) -> None:
    obj = _own_object(tmp_path, Build(compiler, "8,4", align8=True))
    code, out, err = run(capsys, "fuzz", "--impl", "v6.19", "--elf", str(obj), "--symbol", "st_test12",
                         "--symbol", "st_struct_arg2", "--symbol", "st_store", "--time", "3", "--no-progress",
                         "--out", str(tmp_path / "out"))
    assert code == EXIT_CLEAN, out + err
    assert "judged" in out


def test_one_line_refusals(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    obj = _own_object(tmp_path, Build("gcc", "4"))
    # 4,0/c is a v6.3..v6.15 layout: v6.19 traces none of it, and the message names who does
    code, _, err = run(capsys, "fuzz", "--impl", "v6.19", "--elf", str(obj), "--time", "1", "--out", str(tmp_path))
    assert code == EXIT_USAGE
    assert "skipped st_test1: sled layout 4,0/c is not one v6.19 supports" in err
    assert "supported by: " in err and "v6.12" in err and "Traceback" not in err
    code, _, err = run(capsys, "fuzz", "--impl", "v6.12", "--elf", str(obj), "--symbol", "nope", "--out", str(tmp_path))
    assert code == EXIT_USAGE and "no function symbol 'nope'" in err
    code, _, err = run(capsys, "fuzz", "--impl", "v6.12", "--symbol", "st_test1", "--out", str(tmp_path))
    assert code == EXIT_USAGE and "--symbol and --signature need --elf" in err
    nosled = _own_object(tmp_path, Build("clang", "0"))
    code, _, err = run(capsys, "fuzz", "--impl", "v6.12", "--elf", str(nosled), "--out", str(tmp_path))
    assert code == EXIT_USAGE and "no __patchable_function_entries sled" in err and "no function v6.12 can trace" in err


def test_objects_without_debug_info_need_signatures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    obj = _own_object(tmp_path, Build("gcc", "4", debug=False))
    code, _, err = run(capsys, "fuzz", "--impl", "v6.12", "--elf", str(obj), "--symbol", "st_test2",
                       "--out", str(tmp_path))
    assert code == EXIT_USAGE and "no debug info; give signatures for st_test2 with --signature" in err
    code, _, err = run(capsys, "fuzz", "--impl", "v6.12", "--elf", str(obj), "--symbol", "st_test2",
                       "--signature", "st_test2=(4s,9)->4s", "--out", str(tmp_path))
    assert code == EXIT_USAGE and "signature argument '9'" in err
    code, out, err = run(capsys, "fuzz", "--impl", "v6.12", "--elf", str(obj), "--symbol", "st_test2",
                         "--signature", "st_test2=(4s,8)->4s", "--time", "2", "--no-progress", "--out", str(tmp_path))
    assert code == EXIT_CLEAN, out + err
