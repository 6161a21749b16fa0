"""I-SLED-CONSISTENT sees where the body is really entered.

The scenario watches the whole traced function (sled and body) and records every transfer of
control into it from outside: the parent's call at ``func``, the body's first instruction, and
the return address of a call the function made are the only legal ones. Broken implementations
here call the original at the wrong place (func+16 past an 8-byte sled; func+4, the middle of
the sled); the observer at the body's first instruction alone never fires for them, so before
the whole function was watched I-SLED-CONSISTENT could not fire (shown by switching it off).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sledfuzz.emu import scenario as S
from sledfuzz.emu.impls.api import Image, Implementation, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.impls.registry import available, resolve
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function, Link


class _OrigCallShifted:
    """v6.19's JIT, told the traced function is ``shift`` bytes from where it is: its call to
    the original lands at func + 8 + shift."""

    def __init__(self, inner: object, shift: int) -> None:
        self.inner, self.shift = inner, shift

    def size(self, req: TrampRequest) -> int | Refused:
        return self.inner.size(req)  # type: ignore[attr-defined, no-any-return]

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        moved = replace(req, func_addr=req.func_addr + self.shift) if req.func_addr else req
        return self.inner.emit(moved, image_addr, image_size)  # type: ignore[attr-defined, no-any-return]

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        return self.inner.text_poke(ip, site, old, new, old_addr, new_addr)  # type: ignore[attr-defined, no-any-return]


def _shifted(shift: int) -> Implementation:
    good = resolve("v6.19")
    return replace(good, name=f"v6.19-orig-call{shift:+d}", jit=_OrigCallShifted(good.jit, shift))


def _fexit_case() -> Case:
    fn = Function(args=(Arg(8), Arg(8)), values=(3, 4), body=Body(k=5, coeffs=(1, 1), calls_helper=True))
    return Case(target="kernel_function", function=fn, sled="8,4/c", links=(Link("fexit"),))


@pytest.mark.parametrize(("shift", "entered"), [(8, 16), (-4, 4)])
def test_a_wrong_entry_into_the_function_is_caught(shift: int, entered: int) -> None:
    case = _fexit_case()
    assert judge(case, "v6.19").status == "pass"
    v = judge(case, _shifted(shift))
    assert v.status == "fail"
    assert "I-SLED-CONSISTENT" in v.invariants, v.summary
    assert v.observation is not None and case.layout.func + entered in v.observation.foreign_entries
    msg = next(x for x in v.violations if x.invariant == "I-SLED-CONSISTENT")
    assert f"func+{entered}" in str(msg)


def test_without_watching_the_function_the_wrong_entry_is_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.Scenario, "_foreign_entries", lambda self, *a: ())
    v = judge(_fexit_case(), _shifted(8))
    assert "I-SLED-CONSISTENT" not in v.invariants


@pytest.mark.parametrize("name", ["v6.3", "v6.12", "v6.16", "v6.19"])
def test_correct_eras_have_no_foreign_entries(name: str) -> None:
    """The legal entries of every sled scheme (detour16's return past its jalr, t0's, CALL_OPS
    through ftrace_caller, a BPF program's prologue) and the helper call's return are not flagged."""
    impl = resolve(name)
    assert name in {n if isinstance(n, str) else n[0] for n in available()}
    fn = Function(args=(Arg(8),), values=(9,), body=Body(k=1, coeffs=(2,), calls_helper=True))
    for sled in impl.caps.sleds:
        if sled.target == "struct_ops":
            continue
        for links in ((Link("fentry"),), (Link("fexit"),), (Link("fmod_ret"), Link("fexit")), ()):
            case = Case(target=sled.target, function=fn, sled=sled.key, links=links)
            v = judge(case, impl)
            assert v.observation is None or v.observation.foreign_entries == (), (sled.key, links, v.summary)
            assert "I-SLED-CONSISTENT" not in v.invariants, v.summary
