"""The scenario's shared pieces: the per-object cache, and the optional mechanisms it drives only
when an implementation declares them (``emu.impls.api``: FtracePatched, TrampSkipper)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from sledfuzz.emu.impls.api import FtracePatched, Patcher, TrampSkipper
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.scenario import Scenario
from sledfuzz.emu.scenario.owned_cache import OwnedCache
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import Arg, Body, Case, Function, Link


@dataclass(frozen=True)
class _Owner:
    name: str


def test_owned_cache_hits_only_for_the_object_that_produced_the_entry() -> None:
    cache: OwnedCache[str] = OwnedCache(limit=3)
    a, twin = _Owner("jit"), _Owner("jit")  # equal, hashable alike: still two owners
    cache.put(a, "k", "a's image")
    assert cache.get(a, "k") == "a's image"
    assert cache.get(twin, "k") is None
    assert cache.get(a, "other key") is None


def test_owned_cache_is_bounded() -> None:
    cache: OwnedCache[int] = OwnedCache(limit=3)
    owner = _Owner("jit")
    for i in range(3):
        cache.put(owner, i, i)
    assert [cache.get(owner, i) for i in range(3)] == [0, 1, 2]
    cache.put(owner, 3, 3)  # past the limit: starts over
    assert [cache.get(owner, i) for i in range(4)] == [None, None, None, 3]


@pytest.mark.parametrize("name", ["v6.3", "v6.6", "v6.12", "v6.16", "v6.19", "v7.2", "v7.3"])
def test_every_era_declares_its_ftrace_mechanism_and_skip(name: str) -> None:
    impl = resolve(name)
    assert isinstance(impl.patcher, FtracePatched)
    assert isinstance(impl.jit, TrampSkipper)


class _PlainPatcher:
    """A plugin's patcher: the four ``Patcher`` methods and nothing else (no ``ftrace``)."""

    def __init__(self, inner: Patcher) -> None:
        self._inner = inner

    def compiler_sled(self, sled: SledLayout) -> bytes:
        return self._inner.compiler_sled(sled)

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self._inner.init_sled(sled, func, ftrace_caller)

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int) -> bytes:
        return self._inner.patch(sled, func, target, ftrace_caller)

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self._inner.unpatch(sled, func, ftrace_caller)


def test_without_an_ftrace_mechanism_only_its_experiments_are_skipped() -> None:
    """The same run on v6.19 and on v6.19 with a patcher that declares no ftrace mechanism: the
    run is the same, the torn states and ftrace_modify_call checks exist only for the first."""
    v619 = resolve("v6.19")
    plain = replace(v619, name="plain-patcher", patcher=_PlainPatcher(v619.patcher))
    assert not isinstance(plain.patcher, FtracePatched)
    case = Case(target="kernel_function", sled="8,4/c", links=(Link("fentry"),),
                function=Function(args=(Arg(8),), values=(1,), body=Body(k=1)))
    sc = Scenario()
    full, bare = sc.run(case, v619), sc.run(case, plain)
    assert full.torn and not bare.torn
    assert any(p.mechanism == "ftrace_modify_call" for p in full.pokes)
    assert [p.op for p in bare.pokes] == ["unpatch"]
    assert (bare.events, bare.final, bare.trap) == (full.events, full.final, full.trap)
