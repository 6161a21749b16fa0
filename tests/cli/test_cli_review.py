"""``sledfuzz review`` re-creating the seed's situation on Debian's 6.12 tree, and ``git bisect run``.

The patches are written here as a kernel developer would write them (edits of the tree's own
files, turned into format-patch files at test time): the 2023 situation from both sides — the
ftrace call sequence changed while the JIT stays, and the JIT's skip of the original changed to
the pre-fix 16 bytes — must be flagged with a minimal case; a patch followed by its reverse and a
patch that only reformats code must give no regression and no behaviour change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sledfuzz.fuzz.cli import EXIT_CLEAN, EXIT_FINDINGS, EXIT_SKIP, EXIT_USAGE, main
from sledfuzz.fuzz.review_tree import prepare
from sledfuzz.model.case import Arg, Case, Function, Link
from tests.support.kpatch import DEBIAN_612, make_patch, reverse_patch

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
JIT = "arch/riscv/net/bpf_jit_comp64.c"
FTRACE_H = "arch/riscv/include/asm/ftrace.h"
SKIP_FIX = ("orig_call += RV_FENTRY_NINSNS * 4;", "orig_call += RV_FENTRY_NINSNS * 8;")


def review(capsys: pytest.CaptureFixture[str], out: Path, *patches: Path, time: str = "8") -> tuple[int, str, dict]:
    code = main(["review", "--linux-src", DEBIAN_612, *map(str, patches), "--time", time, "--minimize-time", "8",
                 "--out", str(out), "--no-progress"])
    text, err = capsys.readouterr()
    assert "Traceback" not in err
    report = json.loads((out / "review.json").read_text()) if (out / "review.json").exists() else {}
    return code, text, report


def test_an_ftrace_side_change_with_the_jit_left_alone_is_a_regression(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the ftrace side now links through ra (as the pre-2023 detour did) while the JIT still expects t0
    patch = make_patch(tmp_path / "0001-riscv-ftrace-link-ra.patch", FTRACE_H,
                       [("#define JALR_T0\t\t\t(0x000282e7)", "#define JALR_T0\t\t\t(0x000080e7)")],
                       "riscv: ftrace: link the patched call through ra")
    code, text, report = review(capsys, tmp_path / "out", patch)
    assert code == EXIT_FINDINGS, text
    assert report["regressions"], report
    first = report["regressions"][0]
    assert "patched sled bytes" in first["differs_in"] and first["patches"] == [str(patch)]
    assert Path(first["saved"]).is_file() and first["reproduce"].startswith("sledfuzz review --linux-src")
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert text.splitlines()[0].startswith("REGRESSION:")  # the verdict first


def test_the_pre_fix_jit_skip_is_a_regression_and_its_revert_is_not(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    patch = make_patch(tmp_path / "0001-skip.patch", JIT, [SKIP_FIX], "riscv, bpf: skip the whole detour")
    code, text, report = review(capsys, tmp_path / "out", patch)
    assert code == EXIT_FINDINGS, text
    assert any(r["invariant"] in {"I-RETURN-VALUE", "I-BODY-RUNS", "I-ARGS-PASSED", "I-UNWIND"}
               for r in report["regressions"])
    assert all("trampoline bytes" in r["differs_in"] for r in report["regressions"])
    revert = reverse_patch(tmp_path / "0002-revert.patch", patch)
    code, text, report = review(capsys, tmp_path / "out2", patch, revert, time="4")
    assert code == EXIT_CLEAN, text
    assert report["regressions"] == [] and report["behaviour_changes"] == [] and report["cases"] > 0


def test_a_reformatting_patch_changes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    patch = make_patch(tmp_path / "0001-style.patch", JIT,
                       [("\t/* skip to actual body of traced function */",
                         "\t/*\n\t * Skip to the actual body of the traced function.\n\t */")],
                       "riscv, bpf: comment style")
    code, text, report = review(capsys, tmp_path / "out", patch, time="6")
    assert code == EXIT_CLEAN, text
    assert report["regressions"] == [] and report["fixes"] == [] and report["behaviour_changes"] == []
    assert text.startswith("No regression")


def test_a_patch_that_does_not_apply_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    patch = make_patch(tmp_path / "0001-x.patch", JIT, [SKIP_FIX], "x")
    patch.write_text(patch.read_text().replace("orig_call += RV_FENTRY_NINSNS * 4;", "orig_call += 99;"))
    code = main(["review", "--linux-src", DEBIAN_612, str(patch), "--time", "1", "--out", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE and "0001-x.patch: does not apply to arch/riscv/net/bpf_jit_comp64.c" in err
    assert len(err.strip().splitlines()) == 1


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


def _skip_case() -> Case:
    """fexit on a kernel function: the trampoline calls the original past the sled (SKIP_FRAME)."""
    return Case(target="kernel_function", function=Function(args=(Arg(8),), values=(5,)), sled="4,0/c",
                links=(Link("fexit"),))


def test_git_bisect_run_finds_the_commit_that_broke_the_trampoline(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = tmp_path / "linux"
    shutil.copytree(prepare(DEBIAN_612, []).before, repo)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base: Debian 6.12")
    good = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "README").write_text("docs\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "docs")
    jit = repo / JIT
    jit.write_text(jit.read_text().replace(*SKIP_FIX))
    _git(repo, "commit", "-qam", "riscv, bpf: skip the whole detour")
    culprit = _git(repo, "rev-parse", "HEAD").strip()
    for i in range(2):
        (repo / "README").write_text(f"docs {i}\n")
        _git(repo, "commit", "-qam", f"docs {i}")
    case = tmp_path / "case.json"
    case.write_text(_skip_case().to_json())
    cmd = [sys.executable, "-m", "sledfuzz", "fuzz", "--impl", "kernel", "--linux-src", ".", "--case", str(case)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # the bisect command on both ends first: it must tell them apart
    assert subprocess.run(cmd, cwd=repo, env=env, capture_output=True, check=False).returncode == EXIT_FINDINGS
    _git(repo, "bisect", "start", "HEAD", good)
    run = subprocess.run(["git", "bisect", "run", *cmd], cwd=repo, env=env, capture_output=True, text=True,
                         check=False)
    assert f"{culprit} is the first bad commit" in run.stdout, run.stdout + run.stderr
    _git(repo, "bisect", "reset")


def test_a_tree_that_does_not_build_is_skipped_by_bisect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = tmp_path / "linux"
    shutil.copytree(prepare(DEBIAN_612, []).before, repo)
    jit = repo / JIT
    jit.write_text(jit.read_text().replace(SKIP_FIX[0], "orig_call += ;"))
    case = tmp_path / "case.json"
    case.write_text(_skip_case().to_json())
    code = main(["fuzz", "--impl", "kernel", "--linux-src", str(repo), "--case", str(case)])
    _, err = capsys.readouterr()
    assert code == EXIT_SKIP and "git bisect run skips this tree" in err
    code = main(["fuzz", "--impl", "kernel", "--linux-src", DEBIAN_612, "--case", str(case)])
    out, _ = capsys.readouterr()
    assert code == EXIT_CLEAN and "kernel: pass" in out


def test_libfuzzer_runs_on_the_tree_after_the_series_and_its_inputs_are_judged_on_both(tmp_path: Path) -> None:
    """The atheris source of ``review``: libFuzzer on the after tree, every input it flags judged
    before and after (a short share here; ``review`` gives it a quarter of ``--time``)."""
    from sledfuzz.emu.impls.registry import resolve
    from sledfuzz.emu.kernel.impl import set_default_tree
    from sledfuzz.fuzz.review import atheris_cases

    patch = make_patch(tmp_path / "0001-skip.patch", JIT, [SKIP_FIX], "riscv, bpf: skip the whole detour")
    trees = prepare(DEBIAN_612, [str(patch)])
    set_default_tree(trees.before)
    try:
        before = resolve("kernel")
    finally:
        set_default_tree(None)
    judged: list[str] = []
    notes: list[str] = []

    class Visit:
        def __call__(self, origin: str, case: Case, *, force: bool = False) -> bool:
            judged.append(origin)
            assert judge_case_status(case, before) in {"pass", "refused", "invalid", "unspecified", "fail"}
            return True

        def left(self) -> float:
            return 25.0

        def note(self, line: str) -> None:
            notes.append(line)

    atheris_cases(trees.after, 1, tmp_path / "atheris", min_seconds=5.0)(Visit())
    assert notes and notes[0].startswith("atheris: ") and "inputs on the tree after the series" in notes[0]
    assert judged and all(o.startswith("atheris crash-") for o in judged), (notes, judged)
    skipped: list[str] = []

    class Short(Visit):
        def left(self) -> float:
            return 3.0

        def note(self, line: str) -> None:
            skipped.append(line)

    atheris_cases(trees.after, 1, tmp_path / "atheris2")(Short())
    assert skipped == ["atheris: not run (its share of --time is 3 s, it needs 30 s)"]


def judge_case_status(case: Case, impl: object) -> str:
    from sledfuzz.fuzz.oracle import judge

    return judge(case, impl).status  # type: ignore[arg-type]
