"""Replay every corpus/regressions file: each implementation it names must give the recorded verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.campaign import judge_case
from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.model.known_bugs import KNOWN_BUGS

REGRESSIONS = Path(__file__).resolve().parents[2] / "corpus" / "regressions"
FILES = sorted(REGRESSIONS.glob("*.json"))

#: Known differences (as pyelftools keeps for readelf): (file, implementation) -> why. Each is an
#: expected failure that must start passing (strict) once the cause is fixed.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


def _params() -> list[object]:
    out: list[object] = []
    for f in FILES:
        for impl in load_entry(f).expect:
            marks = []
            why = KNOWN_DIFFERENCES.get((f.name, impl))
            if why:
                marks.append(pytest.mark.xfail(reason=why, strict=True))
            out.append(pytest.param(f, impl, id=f"{f.stem}[{impl}]", marks=marks))
    return out


def test_there_is_a_corpus() -> None:
    assert FILES, f"no corpus files under {REGRESSIONS}"


@pytest.mark.parametrize(("path", "impl"), _params())
def test_replay(path: Path, impl: str) -> None:
    entry = load_entry(path)
    got = judge_case(entry.case, resolve(impl)).verdict
    assert got == entry.expect[impl], f"{path.name} on {impl}: expected {entry.expect[impl].render()}, got {got.render()}"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_provenance(path: Path) -> None:
    entry = load_entry(path)
    for key in ("bug", "invariant", "found_by", "configuration"):
        assert entry.provenance.get(key), f"{path.name}: provenance.{key} missing"
    assert entry.expect[entry.provenance["configuration"]].status == "fail"
    assert entry.provenance["invariant"] in entry.expect[entry.provenance["configuration"]].invariants


def test_one_minimal_case_per_historical_bug() -> None:
    bugs = {load_entry(f).provenance.get("bug") for f in FILES}
    assert set(KNOWN_BUGS) <= bugs, f"historical bugs without a regression case: {sorted(set(KNOWN_BUGS) - bugs)}"
