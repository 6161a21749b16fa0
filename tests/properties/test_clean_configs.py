"""On the clean configurations every invariant holds, over generated cases and the edge examples.

Runs under the active hypothesis profile (``ci``: derandomized, fixed budget, no database). The
edge examples pin what random integers never hit: call offsets exactly at the auipc/jalr reach
limits and on the bit-11 rounding edge.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emu.impls.registry import resolve
from fuzz.campaign import judge_case
from fuzz.strategies import edge_examples, search_cases
from model.case import Case

CLEAN = ("v6.19", "v6.12", "ftrace=v6.6,tramp=v6.19")
COUNTS: dict[str, Counter[str]] = {name: Counter() for name in CLEAN}


def _judge(name: str, case: Case) -> None:
    impl = resolve(name)
    assert not impl.caps.known_bugs, f"{name} is meant to be clean"
    j = judge_case(case, impl)
    COUNTS[name][j.status] += 1
    assert j.status != "fail", f"{name}: {'; '.join(j.messages)}\n{case.to_json()}"


def _with_edges(name: str):  # type: ignore[no-untyped-def]
    def deco(fn):  # type: ignore[no-untyped-def]
        for case in edge_examples(resolve(name).caps):
            fn = example(case=case)(fn)
        return fn

    return deco


@settings(deadline=None)
@_with_edges("v6.19")
@given(case=search_cases(resolve("v6.19").caps))
def test_v6_19_all_invariants_hold(case: Case) -> None:
    _judge("v6.19", case)


@settings(deadline=None)
@_with_edges("v6.12")
@given(case=search_cases(resolve("v6.12").caps))
def test_v6_12_all_invariants_hold(case: Case) -> None:
    _judge("v6.12", case)


@settings(deadline=None)
@_with_edges("ftrace=v6.6,tramp=v6.19")
@given(case=search_cases(resolve("ftrace=v6.6,tramp=v6.19").caps))
def test_t0_sleds_with_the_fixed_jit_hold(case: Case) -> None:
    _judge("ftrace=v6.6,tramp=v6.19", case)


@pytest.mark.parametrize("name", CLEAN)
@given(data=st.data())
@settings(deadline=None, max_examples=1)
def test_edge_examples_are_judged_on(name: str, data: st.DataObject) -> None:
    """Every edge example runs (or is refused as the model says) on every clean configuration."""
    statuses = Counter(judge_case(c, resolve(name)).status for c in edge_examples(resolve(name).caps))
    assert statuses["fail"] == 0 and statuses["invalid"] == 0
    assert statuses["pass"] > 0 and statuses["refused"] > 0  # the out-of-reach ones are refused (-ERANGE)
