"""I-IMPL-CRASH: what an implementation raises is a finding; what the harness raises is not.

Each broken implementation below is v6.19 with one entry point that raises on some cases: the
JIT's emit (the encoder's EncodingError on an immediate that does not fit), the teardown poke
(raised in the middle of a run, from an engine callback), ftrace's modify_call (a poke
experiment after the run). The harness's own errors must propagate instead.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import sledfuzz.emu.scenario.memory_map
import sledfuzz.fuzz.oracle
from sledfuzz.emu.engine import get_engine
from sledfuzz.emu.impls.api import Implementation, PokeKind, PokeResult
from sledfuzz.emu.impls.eras import ERAS
from sledfuzz.emu.impls.guard import ImplementationCrash, guarded
from sledfuzz.emu.impls.jit import EraJit
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.fuzz.campaign import minimize_finding
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function, Link
from sledfuzz.model.invariants import IMPL_CRASH, crash_exception

V619 = resolve("v6.19")
KSLED = next(s.key for s in V619.caps.sleds if s.target == "kernel_function")


class EmitTooFar(EraJit):
    """Loads 1024 * links into a 12-bit immediate: EncodingError from two links on."""

    def emit(self, req: Any, image_addr: int, image_size: int) -> Any:
        E.addi(5, 0, 1024 * len(req.links))
        return super().emit(req, image_addr, image_size)


class TeardownPokeRaises(EraJit):
    """The NOP -> JUMP teardown poke (made while the original runs) raises."""

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int,
                  new_addr: int) -> PokeResult:
        if new == "jump":
            raise OverflowError("jump offset does not fit")
        return super().text_poke(ip, site, old, new, old_addr, new_addr)


def with_jit(jit: EraJit, name: str) -> Implementation:
    return replace(V619, name=name, caps=replace(V619.caps, name=name), jit=jit)


def kcase(*kinds: str, teardown: bool = False, **body: Any) -> Case:
    return Case(target="kernel_function", sled=KSLED,
                function=Function(args=(Arg(8), Arg(8)), values=(3, 4), body=Body(**body)),
                links=tuple(Link(k) for k in kinds), teardown=teardown)  # type: ignore[arg-type]


def test_a_raising_jit_is_a_finding_with_the_exception_type_and_the_call() -> None:
    impl = with_jit(EmitTooFar(ERAS["v6.19"]), "emit-too-far")
    v = judge(kcase("fentry", "fexit"), impl)
    assert v.status == "fail" and v.invariants == {IMPL_CRASH}
    line = str(v.violations[0])
    assert line.startswith("I-IMPL-CRASH: EncodingError in jit.emit: 12-bit immediate 2048")
    assert crash_exception(line) == "EncodingError"
    assert not v.ok and v.observation is None
    # one link fits: the same implementation judges normally
    assert judge(kcase("fentry"), impl).status == "pass"


def test_a_crash_in_the_middle_of_a_run_leaves_nothing_behind() -> None:
    """The teardown poke raises from inside the engine's run; the next case on the same engine
    must be judged exactly as on a fresh one."""
    impl = with_jit(TeardownPokeRaises(ERAS["v6.19"]), "teardown-raises")
    engine = get_engine()
    crash = judge(kcase("fentry", "fexit", teardown=True), impl, engine=engine)
    assert crash.invariants == {IMPL_CRASH}
    assert "OverflowError in jit.text_poke: jump offset does not fit" in crash.summary
    after = kcase("fentry", "fexit", k=7, coeffs=(1, 2))
    shared = judge(after, V619, engine=engine)
    fresh = judge(after, V619, engine=get_engine())
    assert shared.status == fresh.status == "pass"
    assert shared.observation == fresh.observation


def test_a_raising_poke_experiment_names_its_path() -> None:
    """ftrace_modify_call is reached through ``patcher.ftrace``: the guard follows sub-objects."""
    ft = V619.patcher.ftrace  # type: ignore[attr-defined]

    class ModifyRaises(type(ft)):  # type: ignore[misc]
        def modify_call(self, *args: Any, **kwargs: Any) -> PokeResult:
            raise KeyError("no such call site")

    patcher = replace(V619.patcher, ftrace=ModifyRaises(ft.scheme, ft.concurrency, ft.era))  # type: ignore[type-var]
    impl = replace(V619, name="modify-raises", patcher=patcher)
    v = judge(kcase("fentry"), impl)
    assert v.invariants == {IMPL_CRASH}
    assert "KeyError in patcher.ftrace.modify_call" in v.summary


class TwoWays(EraJit):
    """Raises ZeroDivisionError with exactly two links, EncodingError from three on."""

    def emit(self, req: Any, image_addr: int, image_size: int) -> Any:
        n = len(req.links)
        if n == 2:
            raise ZeroDivisionError("two links")
        E.addi(5, 0, 700 * n)
        return super().emit(req, image_addr, image_size)


def test_minimisation_keeps_the_exception_type() -> None:
    impl = with_jit(TwoWays(ERAS["v6.19"]), "two-ways")
    big = replace(kcase("fentry", "fmod_ret", "fexit", "fentry", k=99, coeffs=(3, 4)), seed=12345)
    assert crash_exception(str(judge(big, impl).violations[0])) == "EncodingError"
    small = minimize_finding(big, impl, IMPL_CRASH, origin=None, strict_flags=False, seconds=20)
    assert len(small.links) == 3  # two links would crash too, with another exception
    assert crash_exception(str(judge(small, impl).violations[0])) == "EncodingError"


def test_harness_and_model_errors_are_not_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception of the scenario or of the invariants propagates (the tool stops, exit 2)."""
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("harness bug")

    monkeypatch.setattr(sledfuzz.emu.scenario.memory_map, "compile_body", broken)
    with pytest.raises(RuntimeError, match="harness bug"):
        judge(kcase("fentry"), V619)
    monkeypatch.undo()
    monkeypatch.setattr(sledfuzz.fuzz.oracle, "check_all", broken)
    with pytest.raises(RuntimeError, match="harness bug"):
        judge(kcase("fentry"), V619)


def test_an_interrupt_inside_the_implementation_is_not_a_crash() -> None:
    class Interrupted(EraJit):
        def size(self, req: Any) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        judge(kcase("fentry"), with_jit(Interrupted(ERAS["v6.19"]), "interrupted"))


def test_the_guard_is_made_once_and_forwards_data() -> None:
    g = guarded(V619)
    assert guarded(V619) is g and guarded(g) is g
    assert g.caps is V619.caps and g.name == V619.name
    assert g.jit.era.name == "v6.19" and type(g.jit.era.name) is str  # type: ignore[attr-defined]
    assert g.patcher.ftrace is g.patcher.ftrace  # type: ignore[attr-defined]  # one proxy per sub-object
    with pytest.raises(AttributeError):
        g.jit.no_such_attribute  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImplementationCrash) as info:
        g.jit.size(None)
    assert info.value.call == "jit.size" and isinstance(info.value.error, AttributeError)
