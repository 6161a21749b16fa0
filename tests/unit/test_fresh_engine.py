"""No state crosses cases on a reused engine, and a finding that only the reused engine sees is
never reported (fuzz.fresh): it goes to ``harness-faults/`` and is counted.

The differential test is the small version of ``bench/fresh_vs_shared.py``: generated cases over
every shipped configuration, interleaved and aliased (struct_ops images where an earlier case's
body was), judged on one shared engine and on a fresh engine each. It failed with 9 differences
in 400 cases before the scenario removed the body observer for cases without a body (a struct_ops
image executing an earlier case's body address recorded a "body entry").
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.fresh_vs_shared import compare, interleaved_cases
from sledfuzz.emu.engine import EngineError, get_engine
from sledfuzz.emu.scenario import runner as S
from sledfuzz.fuzz.campaign import search_cell, shipped_configurations
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function, Layout, Link


def _kernel_case(layout: Layout, sled: str = "8,4/c") -> Case:
    fn = Function(args=(Arg(8),), values=(5,), body=Body(k=1, coeffs=(1,)))
    return Case(target="kernel_function", function=fn, sled=sled, links=(Link("fentry"),), layout=layout)


def _struct_ops_case(layout: Layout) -> Case:
    fn = Function(args=(Arg(8),), values=(5,), body=Body(k=1, coeffs=(1,)), ret_size=8)
    return Case(target="struct_ops", function=fn, sled="1,0/w", links=(Link("fentry", r0=3),), layout=layout)


def test_shared_engine_agrees_with_a_fresh_engine_per_case() -> None:
    n, diffs, lines = compare(interleaved_cases(shipped_configurations(), 300, seed=1))
    assert n == 300
    assert diffs == 0, "\n".join(lines)


def test_struct_ops_image_where_the_last_body_was_records_no_body_entry() -> None:
    """The measured false positive: I-SLED-CONSISTENT "body entry 0 at pc=image+8" on v6.12."""
    eng = get_engine()
    near = {"hosts": 0xFFFFFFFF00800000, "parent": 0xFFFFFFFF00C00000}
    first = _kernel_case(Layout(func=0xFFFFFFFF00000000, ftrace_caller=0xFFFFFFFF00000800,
                                image=0xFFFFFFFF00400000, **near), sled="4,0/c")
    assert judge(first, "v6.12", engine=eng).status == "pass"
    second = _struct_ops_case(Layout(image=first.layout.func, func=0xFFFFFFFF00400000,
                                     ftrace_caller=0xFFFFFFFF00400800, **near))
    shared = judge(second, "v6.12", engine=eng)
    assert shared.observation is not None and shared.observation.body_entries == ()
    assert shared.status == judge(second, "v6.12", fresh=True).status == "pass", shared.summary


def test_pages_of_an_earlier_case_are_unmapped() -> None:
    """A wild access to where an earlier case had memory faults, as on a fresh engine."""
    eng = get_engine()
    first = _kernel_case(Layout())
    judge(first, "v6.19", engine=eng)
    moved = Layout(func=0xFFFFFFFF90200000, ftrace_caller=0xFFFFFFFF90200800, image=0xFFFFFFFF90400000,
                   hosts=0xFFFFFFFF90600000, parent=0xFFFFFFFF90100000)
    judge(replace(first, layout=moved), "v6.19", engine=eng)
    with pytest.raises(EngineError):
        eng.read(Layout().func, 4)
    with pytest.raises(EngineError):
        eng.read(Layout().image, 4)


class _WorseWhenReused:
    """An engine that answers wrongly from its second run on (a0 at the return is off by one):
    only a reused engine misbehaves, a fresh one is right."""

    def __init__(self) -> None:
        self._inner = get_engine()
        self._runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._runs += 1
        return self._inner.run(*args, **kwargs)

    def regs(self, rs: Any) -> list[int]:
        out: list[int] = self._inner.regs(rs)
        if self._runs > 1 and tuple(rs) == S._FINAL_X:
            out[S.FINAL_REGS.index("a0")] ^= 1
        return out


def test_a_failure_only_the_reused_engine_sees_is_a_harness_fault(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "get_engine", lambda name="unicorn": _WorseWhenReused())
    monkeypatch.setattr(S, "_SCENARIOS", {})
    res = search_cell("v6.19", seconds=3.0, seed=1, out_dir=str(tmp_path), engine="random", minimize=False,
                      stop_when_found=False)
    assert res.error == ""
    assert res.findings == {}
    assert res.harness_faults >= 1
    assert res.to_json()["harness_faults"] == res.harness_faults
    faults = sorted((tmp_path / "harness-faults").glob("*.json"))
    assert faults, "no harness-fault file written"
    doc = json.loads(faults[0].read_text())
    assert doc["provenance"]["shared_engine"].startswith("fail")
    assert not doc["provenance"]["fresh_engine"].startswith("fail")
    assert not (tmp_path / "v6.19").exists()  # nothing written as a finding
