"""Memory an implementation might read before writing it starts each run with a per-case
non-zero pattern (emu.scenario.fill_pattern), so a missing clear shows.

The broken implementation is v6.19's JIT without the clear of the return-value slot before the
fmod_ret programs (``sd zero, -retval_off(fp)``): a program that is skipped leaves whatever was
on the stack, and the trampoline then takes it for a verdict. On a zeroed stack that is 0 and the
bug is invisible; with the pattern, a short search over generated cases finds it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sledfuzz.emu import scenario as S
from sledfuzz.emu.engine import get_engine
from sledfuzz.emu.impls.api import Image, Implementation, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.regs import S0, ZERO
from sledfuzz.fuzz.oracle import judge
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.model.case import DATA_SIZE, STACK_SIZE, Arg, Body, Case, Function, Layout, Link

SEARCH = 150  # generated cases; the first violation comes within the first few dozen


class _NoRetvalClear:
    """v6.19's JIT whose ``sd zero, -retval_off(fp)`` (the "cleanup" before fmod_ret) is a nop."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def size(self, req: TrampRequest) -> int | Refused:
        return self.inner.size(req)  # type: ignore[attr-defined, no-any-return]

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        img: Image | Refused = self.inner.emit(req, image_addr, image_size)  # type: ignore[attr-defined]
        if isinstance(img, Refused) or not req.of_kind("fmod_ret"):
            return img
        clear = E.sd(ZERO, S0, -self.inner.frame(req).retval_off).to_bytes(4, "little")  # type: ignore[attr-defined]
        code, i = bytearray(img.code), 0
        while i < img.used_len:
            if code[i] & 3 != 3:
                i += 2
                continue
            if bytes(code[i : i + 4]) == clear:
                code[i : i + 4] = E.addi(ZERO, ZERO, 0).to_bytes(4, "little")
            i += 4
        assert bytes(code) != img.code, "the clear was not found"
        return replace(img, code=bytes(code))

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        return self.inner.text_poke(ip, site, old, new, old_addr, new_addr)  # type: ignore[attr-defined, no-any-return]


def _broken() -> Implementation:
    good = resolve("v6.19")
    return replace(good, name="v6.19-no-retval-clear", jit=_NoRetvalClear(good.jit))


def _search(impl: Implementation) -> set[str]:
    """Invariants violated on ``impl`` but not on v6.19 over a fixed stream of fmod_ret cases."""
    good = resolve("v6.19")
    found: set[str] = set()
    for i in range(SEARCH):
        case = case_from_draw(RandomDraw(i), good.caps)
        if not any(lk.kind == "fmod_ret" for lk in case.links):
            continue
        v = judge(case, impl)
        if v.status == "fail" and judge(case, good).status != "fail":
            found |= v.invariants
    return found


def test_a_missing_retval_clear_is_found_with_the_fill_pattern() -> None:
    assert "I-RETVAL-SEEN" in _search(_broken())


def test_a_missing_retval_clear_is_invisible_on_zeroed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same search on the memory the scenario used to give (zeros) finds nothing: why the
    pattern is needed (and evidence that the test above fails without it)."""
    monkeypatch.setattr(S.memory_map, "fill_pattern", lambda seed: bytes(64))
    assert _search(_broken()) == set()


def test_stack_below_sp_and_data_hold_the_case_pattern() -> None:
    """What the body stores is observed against the pattern it overwrote; the rest of the data
    region and the stack below the entry sp are the seed's pattern, never zero."""
    pattern = S.fill_pattern(1234)
    assert len(pattern) == 64 and all(pattern[i : i + 8] != bytes(8) for i in range(0, 64, 8))
    assert S.fill_pattern(1235) != pattern
    case = Case(target="kernel_function", sled="8,4/c", links=(Link("fentry"),), seed=1234,
                function=Function(args=(Arg(8),), values=(1,), body=Body(k=1)))
    eng = get_engine()
    assert judge(case, "v6.19", engine=eng).status == "pass"
    lay = Layout()
    entry_sp = lay.stack + S.ENTRY_SP_OFFSET
    below = eng.read(lay.stack, 0x100)  # far below anything the trampoline touches
    assert below == (pattern * 4)[:0x100]
    assert eng.read(lay.data, DATA_SIZE) == pattern * (DATA_SIZE // 64)
    assert entry_sp < lay.stack + STACK_SIZE
