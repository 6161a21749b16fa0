"""The three benchmarks run end to end with a tiny budget and keep their output format.

Figures are not checked (timing on loaded CI cores means nothing); what is checked is that each
script runs to completion and ends with the line other tools and docs/results.md rely on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}: {proc.stderr[-2000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing"
    return lines


@pytest.mark.slow
def test_throughput_prints_the_per_core_rate() -> None:
    lines = bench("throughput.py", "--engine", "random", "--seconds", "1")
    assert re.fullmatch(r"cases_per_s_per_core: \d+", lines[-1]), lines[-1]
    assert any(line.startswith("random: ") and "cases per CPU-second" in line for line in lines), lines


@pytest.mark.slow
def test_ttf_prints_the_median_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ttf.json"
    lines = bench("ttf.py", "--config", "v6.19-pre-9f1e16fb1fc9", "--engine", "random", "--seeds", "1",
                  "--budget-seconds", "3", "--minimize-seconds", "0", "--json", str(out))
    assert re.fullmatch(r"median_s: (\d+\.\d+|>\d+(\.\d+)?)", lines[-1]), lines[-1]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["configuration"], r["engine"]) for r in rows] == [("v6.19-pre-9f1e16fb1fc9", "random")]


@pytest.mark.slow
def test_mutants_prints_the_score() -> None:
    lines = bench("mutants.py", "--mutant", "nregs-off-by-one", "--budget-seconds", "3", "--no-baseline")
    assert re.fullmatch(r"mutation_score: \d+/1", lines[-1]), lines[-1]
    assert any(line.split()[:2] in (["KILLED", "nregs-off-by-one:"], ["SURVIVED", "nregs-off-by-one:"])
               for line in lines), lines


def test_every_mutant_applies_to_the_current_sources() -> None:
    """A mutant whose old text no longer occurs exactly once is stale (the file was edited)."""
    from bench.mutants import ROOT as SRC
    from bench.mutants import load_mutants

    mutants = load_mutants()
    assert len(mutants) >= 40
    stale = [m.name for m in mutants if (SRC / m.file).read_text(encoding="utf-8").count(m.old) != 1]
    assert not stale, f"stale mutants (update bench/mutants/*.toml): {stale}"
    assert all(m.old != m.new for m in mutants)


def test_verdict_stability_records_checks_and_catches_a_changed_verdict(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "verdicts.json"
    lines = bench("verdict_stability.py", "record", str(path), "--cases", "8", "--per-impl", "2")
    assert any(re.match(r"judged \d+ \(case, impl\) pairs", line) for line in lines), lines
    assert bench("verdict_stability.py", "check", str(path))[-1] == "verdict_differences: 0"
    with gzip.open(path, "rt") as f:
        data = json.load(f)
    first = data["sets"][0]["results"][0]
    first["status"] = "fail" if first["status"] != "fail" else "pass"
    with gzip.open(path, "wt") as f:
        json.dump(data, f)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "verdict_stability.py"), "check", str(path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1 and proc.stdout.strip().endswith("verdict_differences: 1"), proc.stdout
