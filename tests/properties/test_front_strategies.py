"""The fuzzing front's generators: valid for every shipped configuration, edges reachable,
shrinking to small cases, the minimiser and the exhaustive shape enumeration. (Every dimension's
edges, drawn by both generators: tests/properties/test_case_space.py.)"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.exhaust import arg_shapes, enumerate_shapes
from sledfuzz.fuzz.minimize import minimize
from sledfuzz.fuzz.shape import RandomDraw, build_case, case_from_draw
from sledfuzz.fuzz.strategies import edge_examples, edge_layouts, fuzz_cases
from sledfuzz.model.case import Arg, Body, Case, Function, Layout, Link
from sledfuzz.model.expectation import Invalid, Refusal, Unspecified
from sledfuzz.model.flags import classify_flags
from sledfuzz.model.semantics import REACH_HI, REACH_LO, expect

CONFIGS = ("v6.3", "v6.6", "v6.11", "v6.19", "ftrace=v6.6,tramp=v6.3", "v6.19-pre-8f3e00af8e52", "ftrace=v6.2,tramp=v6.3")
SHRINK = settings(database=None, max_examples=2000, suppress_health_check=list(HealthCheck), deadline=None)


def reaches(strategy: st.SearchStrategy[object], pred: object, n: int = 400) -> bool:
    """True when ``pred`` holds for some generated example (no shrinking: cheap)."""

    class Hit(Exception):
        pass

    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=True, report_multiple_bugs=False)
    @given(strategy)
    def probe(x: object) -> None:
        if pred(x):  # type: ignore[operator]
            raise Hit

    try:
        probe()
    except Hit:
        return True
    return False


@pytest.mark.parametrize("name", CONFIGS)
def test_generated_cases_are_valid_and_never_unspecified_by_default(name: str) -> None:
    caps = resolve(name).caps

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(fuzz_cases(caps=caps))
    def check(case: Case) -> None:
        assert Case.from_json(case.to_json()) == case
        verdict = expect(case, caps)
        assert not isinstance(verdict, Invalid), verdict
        assert not isinstance(verdict, Unspecified), verdict

    check()


def test_strict_flags_reach_the_unspecified_sets() -> None:
    caps = resolve("v6.19").caps
    assert reaches(fuzz_cases(caps=caps, strict_flags=True),
                   lambda c: classify_flags(c) == "unspecified" and isinstance(expect(c, caps), Unspecified))


def _sled_offset(layout: Layout) -> int:
    off = (layout.image - layout.func) & ((1 << 64) - 1)
    return off - (1 << 64) if off >> 63 else off


@pytest.mark.parametrize("limit", [REACH_HI - 8, REACH_LO, REACH_HI, REACH_LO - 8])
def test_edge_layouts_hit_the_exact_reach_limits(limit: int) -> None:
    assert reaches(edge_layouts(target="bpf_prog"), lambda lay: _sled_offset(lay) == limit)


def test_edge_layouts_put_the_sled_call_on_the_rounding_edge() -> None:
    assert reaches(edge_layouts(target="kernel_function"), lambda lay: _sled_offset(lay) & 0xFFF == 0x800)
    assert reaches(edge_layouts(target="kernel_function"), lambda lay: _sled_offset(lay) & 0xFFF == 0x7F8)


def test_edge_examples_cover_both_limits_and_are_judged_or_refused() -> None:
    caps = resolve("v6.19").caps
    examples = edge_examples(caps)
    offsets = {_sled_offset(e.layout) for e in examples}
    assert {REACH_HI - 8, REACH_LO, REACH_HI, REACH_LO - 8} <= offsets
    for e in examples:
        verdict = expect(e, caps)
        assert not isinstance(verdict, Invalid | Unspecified)
        if e.target == "bpf_prog" and _sled_offset(e.layout) in (REACH_HI, REACH_LO - 8):
            assert isinstance(verdict, Refusal) and verdict.errno == 34  # -ERANGE


@pytest.mark.slow
def test_shrinking_reaches_small_cases() -> None:
    caps = resolve("v6.19").caps
    small = find(fuzz_cases(caps=caps), lambda c: len(c.links) >= 2 and c.target == "kernel_function", settings=SHRINK,
                 random=random.Random(0))
    assert len(small.links) == 2
    assert small.function.args == ()
    assert small.flags is None
    assert all(lk.r0 == 0 and lk.cookie == 0 for lk in small.links)


@given(st.integers(0, 2**32))
@settings(max_examples=200, deadline=None)
def test_shape_builder_is_always_valid(seed: int) -> None:
    for name in ("v6.19", "v6.3", "ftrace=v6.6,tramp=v6.3"):
        caps = resolve(name).caps
        case = case_from_draw(RandomDraw(seed), caps)
        assert not isinstance(expect(case, caps), Invalid | Unspecified)


def test_minimize_reaches_the_smallest_case_with_the_property() -> None:
    big = Case(
        target="kernel_function",
        function=Function(args=(Arg(8), Arg(16, True), Arg(4, signed=True), Arg(8)), values=(5, 6, 7, 8, 9),
                          body=Body(k=99, coeffs=(1, 2, 3), calls_helper=True, uses_saved=3, a5=0x1234)),
        sled="4,0/c",
        links=(Link("fentry", r0=3, cookie=4), Link("fexit", r0=0xFFFF, enter=7), Link("fmod_ret", r0=1)),
        layout=Layout(im=0x1234567812345678),
        teardown=True,
        seed=77,
    )

    def keep(c: Case) -> bool:
        return any(lk.kind == "fexit" for lk in c.links) and len(c.function.args) >= 2

    small = minimize(big, keep)
    assert [lk.kind for lk in small.links] == ["fexit"]
    assert small.links[0] == Link("fexit")
    assert small.function.args == (Arg(8), Arg(8))
    assert small.function.values == (0, 0)
    assert small.function.body == Body()
    assert small.layout == Layout() and small.seed == 0 and not small.teardown


def test_exhaust_shapes_cover_every_ordered_mix_and_slot_count() -> None:
    caps = resolve("v6.19").caps
    shapes = enumerate_shapes(caps, max_links=3, max_args=12)
    assert len(shapes) == len(set(shapes))
    kf = [s for s in shapes if s.target == "kernel_function"]
    mixes = {s.kinds for s in kf}
    want = {tuple(p) for k in range(4) for p in itertools.product(("fentry", "fmod_ret", "fexit"), repeat=k)}
    assert mixes == want
    assert {s.slots for s in kf} == set(range(25)) | {13}
    assert any(len(s.args) == 13 for s in kf)
    assert {s.sled for s in kf} == {sl.key for sl in caps.sleds_for("kernel_function")}
    assert {s.flags for s in kf} >= {"derived", "ip_arg", "orig_stack", "share_ipmodify"}
    assert not any(isinstance(s.flags, str) and "tail_call" in s.flags for s in kf)  # BPF-program targets only
    bp = [s for s in shapes if s.target == "bpf_prog"]
    assert {s.flags for s in bp} >= {"tail_call", "ip_arg+tail_call"}
    assert not any("fmod_ret" in s.kinds for s in bp)  # the verifier refuses fmod_ret on a BPF program
    assert {s.enter for s in kf} == {"run", "stats", "skip", "stats-then-skip"}
    for nslots in range(1, 25):
        with_struct = [a for a in arg_shapes(12) if sum((sz + 7) // 8 for sz, _ in a) == nslots and any(s for _, s in a)]
        assert with_struct or nslots < 2


def test_exhaust_values_are_valid_for_every_shape() -> None:
    caps = resolve("v6.19").caps
    shapes = enumerate_shapes(caps, max_links=2, max_args=12)
    for i, shape in enumerate(shapes[::37]):
        case = build_case(RandomDraw(i), caps, shape)
        assert not isinstance(expect(case, caps), Invalid | Unspecified), shape.describe()


def test_no_examples_phase_in_search() -> None:
    """The campaign searches with the generate phase only (finding is searching), no database."""
    from sledfuzz.fuzz.search import hypothesis_run

    run = hypothesis_run(st.just(0), lambda _: None, 0)  # type: ignore[arg-type]
    used = run._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert tuple(used.phases) == (Phase.generate,) and used.database is None
