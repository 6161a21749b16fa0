"""An implementation that crashes is a finding on every front (exit 1, case saved and minimised);
an error of sledfuzz itself is exit 2, never 0.

The plugin is v6.19 whose JIT loads ``1024 * links`` into a 12-bit immediate: the encoder raises
EncodingError from two links on (a kernel would have emitted truncated bits).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sledfuzz.fuzz.oracle
from sledfuzz.fuzz.cli import EXIT_FINDINGS, EXIT_TOOL_ERROR, main
from sledfuzz.fuzz.corpus import load_entry

PLUGIN = '''
from dataclasses import replace
from sledfuzz.emu.impls.eras import ERAS
from sledfuzz.emu.impls.jit import EraJit
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64 import encode as E


class CrashyJit(EraJit):
    def emit(self, req, image_addr, image_size):
        E.addi(5, 0, 1024 * len(req.links))
        return super().emit(req, image_addr, image_size)


def factory():
    base = resolve("v6.19")
    return replace(base, name="crashy", caps=replace(base.caps, name="crashy"), jit=CrashyJit(ERAS["v6.19"]))
'''
NAME = "sf_crashy_plugin:factory"
CELL = "crashy"  # exhaust names its output by the plugin's own name, as every other command does
FINDINGS = "crashy"  # findings go under the plugin's own name (fuzz.campaign.dir_name)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = tmp_path / "plugin"
    src.mkdir()
    (src / "sf_crashy_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", str(src))  # for worker processes
    return tmp_path / "out"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_crash_entry(path: Path, *, links: int | None = None) -> None:
    entry = load_entry(path)
    verdict = entry.expect[NAME]
    assert verdict.status == "fail" and verdict.invariants == {"I-IMPL-CRASH"}, path
    assert len(entry.case.links) >= 2
    if links is not None:
        assert len(entry.case.links) == links, path


@pytest.mark.slow
def test_fuzz_saves_and_minimises_the_crash(capsys: pytest.CaptureFixture[str], plugin: Path) -> None:
    code, out, _ = run(capsys, "fuzz", "--impl", NAME, "--time", "3", "--out", str(plugin), "--no-progress")
    assert code == EXIT_FINDINGS, out
    assert "I-IMPL-CRASH: EncodingError in jit.emit" in out and "no violations found" not in out
    assert_crash_entry(plugin / FINDINGS / "I-IMPL-CRASH.raw.json")
    assert_crash_entry(plugin / FINDINGS / "I-IMPL-CRASH.json", links=2)  # the fewest links that crash


@pytest.mark.slow
def test_run_reports_the_crash_as_an_unexpected_finding(capsys: pytest.CaptureFixture[str], plugin: Path) -> None:
    code, out, _ = run(capsys, "run", "--impl", NAME, "--time", "3", "--jobs", "1", "--out", str(plugin),
                       "--no-progress")
    assert code == EXIT_FINDINGS, out
    (row,) = json.loads((plugin / "matrix.json").read_text())
    assert row["unexpected"] == ["I-IMPL-CRASH"] and not row["ok"]
    assert_crash_entry(Path(row["case"]), links=2)


@pytest.mark.slow
def test_exhaust_reports_every_crashing_shape(capsys: pytest.CaptureFixture[str], plugin: Path) -> None:
    code, out, _ = run(capsys, "exhaust", "--impl", NAME, "--max-links", "2", "--max-args", "0", "--jobs", "1",
                       "--out", str(plugin))
    assert code == EXIT_FINDINGS, out
    summary = json.loads((plugin / f"exhaust-{CELL}.json").read_text())
    bad = summary["violating"]
    assert bad and all(v["invariants"] == ["I-IMPL-CRASH"] for v in bad)
    assert all("links=[" in v["shape"] and v["shape"].split("links=[")[1].count(",") == 1 for v in bad)
    for v in bad[:3]:
        assert_crash_entry(Path(v["case"]))


def test_a_tool_error_is_exit_2_never_0(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("an invariant's own bug")

    monkeypatch.setattr(sledfuzz.fuzz.oracle, "check_all", broken)
    code, out, _ = run(capsys, "fuzz", "--impl", "v6.19", "--time", "2", "--out", str(tmp_path), "--no-progress")
    assert code == EXIT_TOOL_ERROR == 2, out
    assert "an invariant's own bug" in out
    code, out, err = run(capsys, "replay", str(Path(__file__).resolve().parents[2] / "corpus" / "regressions"
                                              / "9f1e16fb1fc9-size-pass-im.json"))
    assert code == EXIT_TOOL_ERROR, out
    assert "internal error: RuntimeError: an invariant's own bug" in err
