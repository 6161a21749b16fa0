"""7.x trampolines: session programs and the tail-call count, judged on the v7.3 era and on JIT
variants with one slip each (every new invariant is shown failing on a broken implementation)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sledfuzz.emu.impls.api import Implementation, LinkReq
from sledfuzz.emu.impls.jit import EraJit, _Frame
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.emitter import Emitter
from sledfuzz.emu.rv64.regs import FP, T1
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function, Link
from sledfuzz.model.contract import F_CALL_ORIG, F_RESTORE_REGS, F_SKIP_FRAME, F_TAIL_CALL_CTX, MAX_TRAMP_LINKS
from sledfuzz.model.core_stage import CoreRefusal, core_stage, derive_flags
from sledfuzz.model.expectation import Expected, Invalid
from sledfuzz.model.semantics import expect

FN = Function(args=(Arg(8), Arg(16, True), Arg(4, signed=True)), values=(11, 22, 33, 44), body=Body(k=7))

SESSION_CASE = Case(
    target="kernel_function",
    function=FN,
    sled="4,2/w",
    links=(
        Link("fsession", r0=1, session_cookie=True),
        Link("fentry", r0=2),
        Link("fsession", r0=3),  # no cookie: no slot
        Link("fexit", r0=4),
        Link("fsession", r0=5, session_cookie=True, cookie=0x77),
    ),
)

TCC_CASES = (
    Case(target="bpf_prog", function=Function(args=(Arg(8),), values=(5,), body=Body(k=9)), sled="2,0/w",
         links=(Link("fentry", r0=1), Link("fexit", r0=2)), flags=F_CALL_ORIG | F_SKIP_FRAME | F_TAIL_CALL_CTX),
    Case(target="bpf_prog", function=Function(args=(Arg(8),), values=(5,), body=Body(k=9)), sled="2,0/w",
         links=(Link("fentry", r0=1),), flags=F_RESTORE_REGS | F_TAIL_CALL_CTX),
)


def _variant(jit: EraJit) -> Implementation:
    return replace(resolve("v7.3"), jit=jit)


def _failed(case: Case, impl: Implementation) -> set[str]:
    verdict = judge(case, impl)
    return {v.invariant for v in verdict.violations}


class _SharedCookie(EraJit):
    """Slip: every session program is given the first cookie slot (cur_cookie never decremented)."""

    def _invoke_phase(self, e: Emitter, req: object, links: tuple[LinkReq, ...], fr: _Frame, save_ret: bool,
                      func_meta: int, skips: list[tuple[str, int, int]]) -> None:
        first = (fr.cookie_off - fr.args_off) // 8
        for link in links:
            if link.session_cookie:
                e.emit_imm(T1, func_meta | (first << 8))
                e.emit_sd(FP, -fr.nregs_off, T1)
            self._invoke(e, req, link, fr, save_ret, skips)  # type: ignore[arg-type]


class _ReturnEarly(EraJit):
    """Slip: the fentry phase's func_meta already carries IS_RETURN."""

    def _invoke_phase(self, e: Emitter, req: object, links: tuple[LinkReq, ...], fr: _Frame, save_ret: bool,
                      func_meta: int, skips: list[tuple[str, int, int]]) -> None:
        super()._invoke_phase(e, req, links, fr, save_ret, func_meta | 1 << 63, skips)  # type: ignore[arg-type]


class _CookieNotZeroed(EraJit):
    """Slip: the zeroing loop clears one cookie slot fewer than it reserved."""

    def frame(self, req: object) -> _Frame:
        fr = super().frame(req)  # type: ignore[arg-type]
        return replace(fr, cookie_cnt=max(0, fr.cookie_cnt - 1))


class _TccOverS1(EraJit):
    """Slip: the tail-call count is saved in s1's slot (tcc_off = sreg_off)."""

    def frame(self, req: object) -> _Frame:
        fr = super().frame(req)  # type: ignore[arg-type]
        return replace(fr, tcc_off=fr.sreg_off) if fr.tcc_off else fr


class _NoTccStoreBack(EraJit):
    """Slip: the count the original left is not stored back (the reload before the call happens, the
    ``sd a6`` after it is emitted as a nop)."""

    def build(self, req: object, base: int | None, im: int) -> object:  # type: ignore[override]
        built = super().build(req, base, im)  # type: ignore[arg-type]
        fr = self.frame(req)  # type: ignore[arg-type]
        e = Emitter(rvc=self.rvc)
        e.emit_sd(FP, -fr.tcc_off, 16)  # sd a6, -tcc_off(fp)
        store = e.code
        code = bytearray(built.code)  # type: ignore[attr-defined]
        first = code.find(store)
        second = code.find(store, first + 1)  # entry save, then the store after the original's call
        nop = E.addi(0, 0, 0).to_bytes(4, "little")[: len(store)] if len(store) == 4 else bytes.fromhex("0100")
        code[second:second + len(store)] = nop
        return replace(built, code=bytes(code))  # type: ignore[type-var]


def test_session_case_is_clean_on_v73_and_invalid_before_7x() -> None:
    impl = resolve("v7.3")
    assert judge(SESSION_CASE, impl).status == "pass"
    assert isinstance(expect(SESSION_CASE, resolve("v6.19").caps), Invalid)
    exp = expect(SESSION_CASE, impl.caps)
    assert isinstance(exp, Expected)
    runs = [(e.link, e.is_return, e.session_cookie) for e in exp.events if e.kind == "prog"]
    # both phases in link order; cookies: zero in the fentry run, the program's own token back
    assert runs == [(0, False, 0), (1, None, None), (2, False, None), (4, False, 0),
                    (0, True, 0x5E55100000000000), (2, True, None), (3, None, None), (4, True, 0x5E55100000000004)]


def test_fsession_counts_twice_toward_the_link_limit() -> None:
    half = tuple(Link("fsession") for _ in range(MAX_TRAMP_LINKS // 2))
    ok = replace(SESSION_CASE, links=half)
    assert not isinstance(core_stage(ok), CoreRefusal)
    over = replace(SESSION_CASE, links=(*half, Link("fentry")))
    refused = core_stage(over)
    assert isinstance(refused, CoreRefusal) and refused.errno == 7
    assert derive_flags(replace(SESSION_CASE, links=(Link("fsession"),))) == F_CALL_ORIG | F_SKIP_FRAME


@pytest.mark.parametrize(("jit", "invariant"), [
    (_SharedCookie, "I-SESSION-COOKIE"),
    (_ReturnEarly, "I-IS-RETURN"),
])
def test_session_slips_are_caught(jit: type[EraJit], invariant: str) -> None:
    era = resolve("v7.3").jit
    assert isinstance(era, EraJit)
    assert invariant in _failed(SESSION_CASE, _variant(jit(era.era)))


def test_unzeroed_cookie_is_caught_on_a_dirty_stack() -> None:
    """A kernel stack is not zeroed, and neither is the scenario's: every run starts with the case's
    fill pattern below the entry sp (emu.scenario.fill_pattern). The correct JIT passes; the one
    that skips a cookie's zeroing leaves the pattern in the slot and fails."""
    era = resolve("v7.3").jit
    assert isinstance(era, EraJit)
    assert judge(SESSION_CASE, resolve("v7.3")).status == "pass"
    assert "I-SESSION-COOKIE" in _failed(SESSION_CASE, _variant(_CookieNotZeroed(era.era)))


def test_func_meta_slot_count_is_judged_by_i_nargs(monkeypatch: pytest.MonkeyPatch) -> None:
    import sledfuzz.emu.impls.jit as jit_mod

    monkeypatch.setattr(jit_mod, "COOKIE_INDEX_SHIFT", 4)  # slip: the index overlaps the count
    era = resolve("v7.3").jit
    assert isinstance(era, EraJit)
    assert "I-NARGS" in _failed(SESSION_CASE, _variant(EraJit(era.era)))


@pytest.mark.parametrize("case", TCC_CASES)
def test_tail_call_count_crosses_the_v73_trampoline(case: Case) -> None:
    assert judge(case, resolve("v7.3")).status == "pass"
    exp = expect(case, resolve("v7.3").caps)
    assert isinstance(exp, Expected) and exp.body_a6 is not None and exp.a6 == 33


@pytest.mark.parametrize("jit", [_TccOverS1, _NoTccStoreBack])
def test_tail_call_slips_are_caught(jit: type[EraJit]) -> None:
    era = resolve("v7.3").jit
    assert isinstance(era, EraJit)
    broken = _variant(jit(era.era))
    assert "I-TAIL-CALL-COUNT" in _failed(TCC_CASES[0], broken)


def test_v72_does_not_keep_the_count_and_is_not_judged_on_it() -> None:
    """7.2 ignores TAIL_CALL_CTX (its subprograms reset the count); the model only judges the count
    where the capabilities declare it, so the same JIT passes on v7.2 and fails as v7.3."""
    v72 = resolve("v7.2")
    assert judge(TCC_CASES[0], v72).status == "pass"
    assert "I-TAIL-CALL-COUNT" in _failed(TCC_CASES[0], replace(resolve("v7.3"), jit=v72.jit))


def test_session_links_round_trip_and_cookie_is_fsession_only() -> None:
    from sledfuzz.model.case import CaseError

    assert Case.from_json(SESSION_CASE.to_json()) == SESSION_CASE
    plain = replace(SESSION_CASE, links=(Link("fentry"),))
    assert "session_cookie" not in plain.to_json()  # schema-1 form of older cases unchanged
    with pytest.raises(CaseError) as info:
        replace(SESSION_CASE, links=(Link("fexit", session_cookie=True),))
    assert info.value.path == "links[0].session_cookie"
