"""The property suite on real compiled functions (GCC and Clang, every kernel sled layout).

Clean configurations must pass on every compiled function; every historical bug configuration
whose bug can reach a kernel function must be found. The expected body behaviour is measured by
running each function untraced (fuzz.elf_cases), never written by hand."""

from __future__ import annotations

import collections

import pytest

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.campaign import shipped_configurations
from sledfuzz.fuzz.elf_cases import draw_elf_case, elf_targets
from sledfuzz.fuzz.oracle import judge
from sledfuzz.fuzz.shape import RandomDraw
from tests.support.cross import Build, compile_object, tools_present
from tests.support.tools import skip_if_missing

pytestmark = skip_if_missing(bool(tools_present()), reason=f"missing tools: {tools_present()} (scripts/setup.sh)")

#: the kernel's sled layouts as (-fpatchable-function-entry, -march) -> layout key
BUILD_FOR_LAYOUT = {
    "4,0/c": ("4", "rv64gc"),  # v6.3 .. v6.15, RVC kernels
    "2,0/w": ("2", "rv64g"),
    "8,4/c": ("8,4", "rv64gc"),  # v6.16+ (CALL_OPS: the literal before the symbol)
    "4,2/w": ("4,2", "rv64g"),
    "8,0/c": ("8", "rv64gc"),  # v6.2 and earlier: the 16-byte ra detour
    "4,0/w": ("4", "rv64g"),
}
#: bugs that only struct_ops trampolines can reach (no traced kernel function can show them)
STRUCT_OPS_ONLY = {"fd2e08128944", "1732ebc4a261"}
CLEAN = ("v6.12", "v6.19", "ftrace=v6.6,tramp=v6.19")


def _build(compiler: str, layout: str) -> Build:
    pfe, march = BUILD_FOR_LAYOUT[layout]
    return Build(compiler, pfe, march, align8=layout in ("8,4/c", "4,2/w"))


def _cases(impl_name: str, compiler: str, layout: str, n: int, seed: int):  # type: ignore[no-untyped-def]
    impl = resolve(impl_name)
    targets, skipped = elf_targets(str(compile_object(_build(compiler, layout))), impl)
    assert len(targets) == 19 and skipped == [], skipped
    draw = RandomDraw(seed)
    for _ in range(n):
        case = draw_elf_case(draw, impl, targets)
        if case is not None:
            yield impl, case


@pytest.mark.slow
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("impl_name", CLEAN)
def test_clean_configurations_pass_on_compiled_functions(impl_name: str, compiler: str) -> None:
    layouts = [s.key for s in resolve(impl_name).caps.sleds_for("kernel_function")]
    assert layouts
    statuses: collections.Counter[str] = collections.Counter()
    functions: set[str] = set()
    for layout in layouts:
        for impl, case in _cases(impl_name, compiler, layout, 100, seed=len(layout)):
            v = judge(case, impl)
            assert v.status != "fail", f"{case.function.compiled}: {v.summary}\n{case.to_json()}"
            statuses[v.status] += 1
            assert case.function.compiled is not None
            functions.add(case.function.compiled.symbol)
    assert statuses["pass"] >= 100, statuses  # a configuration that refuses everything cannot pass
    assert len(functions) == 19


def _bug_configurations() -> list[str]:
    """Bug configurations that can trace a kernel function (direct calls) and carry a bug a
    kernel function can reach."""
    out = []
    for name in shipped_configurations():
        caps = resolve(name).caps
        if caps.kernel_direct_calls and any(b.commit not in STRUCT_OPS_ONLY for b in caps.known_bugs):
            out.append(name)
    return out


def test_the_bug_configuration_list_is_the_expected_one() -> None:
    """Written from docs/eras.md: the eras before v6.8 attach no kernel function; the two
    struct_ops-only bugs leave v6.11, v6.16 and their single-revert configurations out."""
    assert set(_bug_configurations()) == {
        "ftrace=v6.6,tramp=v6.3", "ftrace=v6.2,tramp=v6.3", "v6.8", "next-47c9214dcbea",
        "v6.19-pre-7112cd26e606", "v6.19-pre-10541b374aa0", "v6.19-pre-9f1e16fb1fc9",
        "v6.19-pre-8f3e00af8e52", "v6.19-pre-2f1b0d3d7331",
    }


@pytest.mark.slow
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("impl_name", _bug_configurations())
def test_historical_bugs_are_found_on_compiled_functions(impl_name: str, compiler: str) -> None:
    impl = resolve(impl_name)
    declared = {inv for b in impl.caps.known_bugs if b.commit not in STRUCT_OPS_ONLY for inv in b.invariants}
    known = impl.caps.known_invariants
    for layout in [s.key for s in impl.caps.sleds_for("kernel_function")]:
        found: set[str] = set()
        for i, (_, case) in enumerate(_cases(impl_name, compiler, layout, 1500, seed=7)):
            v = judge(case, impl)
            names = {x.invariant for x in v.violations}
            assert names <= known, f"{impl_name}: violation outside its declared bugs: {v.summary}\n{case.to_json()}"
            found |= names & declared
            if found and i > 50:
                break
        assert found, f"{impl_name} ({compiler}, {layout}): no declared bug found on compiled functions in 1500 cases"
