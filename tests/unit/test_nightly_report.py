"""The nightly reports rendered from a summary: junit per implementation x invariant, the PNG, the morning read."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import pytest

from sledfuzz.fuzz.nightly_report import PLOT_PIXELS, render_junit, render_markdown, write_reports
from sledfuzz.fuzz.nightly_run import exit_code

INVARIANTS = ["I-SIZE", "I-BODY-RUNS", "I-ORDER"]


def _summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "started": "2026-11-29T02:17:00Z", "interrupted": False, "elapsed_seconds": 118.0, "time_budget_seconds": 120.0,
        "jobs": 2, "seed": 1, "shard": "1/1", "database": "directory /tmp/db",
        "versions": {"sledfuzz": "0.1.0", "unicorn": "2.1.4", "hypothesis": "6", "kernel_trees": {}},
        "configurations": [{"name": "v6.19"}, {"name": "v6.19-pre-9f1e16fb1fc9"}, {"name": "v6.12"}],
        "invariants": INVARIANTS,
        "phases": {"replay": {"line": "11 files", "changed": []}, "properties": {"line": "ok", "failed": []}},
        "cases": {"v6.19": {"mixed": {"cases": 500, "rate": 50.0, "judged": 400, "failed": 0, "refused": 100,
                                      "invalid": 0}},
                  "v6.19-pre-9f1e16fb1fc9": {"mixed": {"cases": 300, "rate": 30.0, "judged": 250, "failed": 20,
                                                       "refused": 50, "invalid": 0}}},
        "findings": [
            {"impl": "v6.19-pre-9f1e16fb1fc9", "invariant": "I-SIZE", "signature": "aaaaaaaaaaaa", "status": "declared",
             "source": "search", "seconds": 3.0, "case": "/o/a.json", "message": "I-SIZE: x", "reproduce": "cmd-a"},
            {"impl": "v6.19", "invariant": "I-ORDER", "signature": "bbbbbbbbbbbb", "status": "new", "source": "atheris",
             "seconds": 50.0, "case": "/o/b.json", "message": "I-ORDER: y", "reproduce": "sledfuzz explain /o/b.json",
             "explain": "case: bpf_prog\nVIOLATION I-ORDER"},
        ],
        "declared_bugs": [{"impl": "v6.19-pre-9f1e16fb1fc9", "commit": "9f1e16fb1fc9", "invariants": ["I-SIZE"],
                           "found": True, "seconds": 3.0, "case": "/o/a.json"}],
        "deaths": [], "errors": [], "not_run": [],
        "timeline": [{"t": 1.0, "impl": "v6.19", "cases": 0, "findings": 0}, {"t": 11.0, "impl": "v6.19", "cases": 500,
                                                                               "findings": 1},
                     {"t": 2.0, "impl": "v6.19-pre-9f1e16fb1fc9", "cases": 10, "findings": 1}],
    }
    s.update(over)
    s["exit_code"] = exit_code(s)
    return s


def _cases(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)
    return {(tc.get("classname", ""), tc.get("name", "")): tc for tc in root.iter("testcase")}


def test_junit_has_one_testcase_per_implementation_and_invariant() -> None:
    cases = _cases(render_junit(_summary()))
    assert set(cases) == {(c, i) for c in ("v6.19", "v6.19-pre-9f1e16fb1fc9", "v6.12") for i in INVARIANTS}
    failed = {k for k, tc in cases.items() if tc.find("failure") is not None}
    skipped = {k for k, tc in cases.items() if tc.find("skipped") is not None}
    assert failed == {("v6.19", "I-ORDER")}  # the undeclared finding; the declared bug found is a pass
    assert skipped == {("v6.12", i) for i in INVARIANTS}  # no case ran there


def test_junit_fails_a_declared_bug_that_was_not_found() -> None:
    s = _summary(findings=[], declared_bugs=[{"impl": "v6.19-pre-9f1e16fb1fc9", "commit": "9f1e16fb1fc9",
                                              "invariants": ["I-SIZE", "I-ORDER"], "found": False}])
    failed = {k for k, tc in _cases(render_junit(s)).items() if tc.find("failure") is not None}
    assert failed == {("v6.19-pre-9f1e16fb1fc9", "I-SIZE"), ("v6.19-pre-9f1e16fb1fc9", "I-ORDER")}
    assert s["exit_code"] == 1


def test_morning_read_puts_new_findings_first_with_reproduction_and_explain() -> None:
    md = render_markdown(_summary())
    new, declared, ran = md.index("## New findings"), md.index("## Declared bugs"), md.index("## What ran")
    assert new < declared < ran
    section = md[new:declared]
    assert "v6.19 · I-ORDER · bbbbbbbbbbbb" in section
    assert "sledfuzz explain /o/b.json" in section and "VIOLATION I-ORDER" in section
    assert "I-SIZE" not in section  # a declared bug is not news
    assert "| v6.19-pre-9f1e16fb1fc9 | 9f1e16fb1fc9 | I-SIZE | yes |" in md


@pytest.mark.parametrize(("over", "code"), [
    ({}, 1),
    ({"findings": []}, 0),
    ({"findings": [], "interrupted": True}, 130),
    ({"error": "redis down"}, 2),
    ({"findings": [], "phases": {"replay": {"changed": ["x"]}}}, 1),
    ({"findings": [], "phases": {"properties": {"failed": [{"test": "t"}]}}}, 1),
])
def test_exit_codes(over: dict[str, Any], code: int) -> None:
    assert _summary(**over)["exit_code"] == code


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    ihdr = data[16:16 + 13]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + ihdr)  # an intact chunk
    w, h = struct.unpack(">II", ihdr[:8])
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"  # and a complete file
    return w, h


def test_four_reports_are_written_and_the_plot_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    paths = write_reports(_summary(interrupted=True), tmp_path)
    assert sorted(p.name for p in paths) == ["junit.xml", "progress.png", "summary.json", "summary.md"]
    assert _png_size((tmp_path / "progress.png").read_bytes()) == PLOT_PIXELS == (1200, 800)
    assert "INTERRUPTED" in (tmp_path / "summary.md").read_text()
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert {p.get("name"): p.get("value") for p in root.iter("property")}["interrupted"] == "true"
