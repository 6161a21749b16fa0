"""Every invariant can fire: each one is shown violated by a deliberately broken implementation
run through the real scenario (hand-built observations are tests/unit/test_model_invariants.py).

Each entry is a broken implementation — an era JIT with one slip, a poke or a patcher that checks
too little — and a hand-built case on which the invariant must be violated, while the clean
configuration it was broken from passes the same case. Invariants a historical bug configuration
already breaks use that configuration and its regression case (corpus/regressions). I-SLED-
CONSISTENT is not here: whether the body is entered elsewhere than the sled says is observed by
the engine's body entries, which another change makes observable (see docs/invariants.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sledfuzz.emu.impls.api import Image, Implementation, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.impls.eras import ERAS
from sledfuzz.emu.impls.jit import EraJit
from sledfuzz.emu.impls.patchers import BpfPoker, FtracePatcher, bpf_poke_words, words
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.emitter import Emitter
from sledfuzz.emu.rv64.regs import FP, RA, T0, T1, ZERO
from sledfuzz.fuzz.corpus import load_entry
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function, Link
from sledfuzz.model.contract import EFAULT, EINVAL, ERANGE, F_CALL_ORIG, F_ORIG_STACK, F_SHARE_IPMODIFY, F_SKIP_FRAME
from sledfuzz.model.invariants import IMPL_CRASH, NAMES

REGRESSIONS = Path(__file__).resolve().parents[2] / "corpus" / "regressions"
ERA = ERAS["v6.19"]
S2 = 18


# ---------------------------------------------------------------------------------------------
# one slip each


class RestoreArgsSlip(EraJit):
    """v6.19 with extra instructions where the arguments are restored (RESTORE_REGS: just before
    the epilogue; CALL_ORIG: before the original is called)."""

    extra: Callable[[Emitter], None] = staticmethod(lambda e: None)

    def _restore_args(self, e: Emitter, n: int, args_off: int) -> None:
        super()._restore_args(e, n, args_off)
        self.extra(e)


class ArgsStoredFromA0(EraJit):
    def _store_args(self, e: Emitter, slots: int, args_off: int) -> None:
        for i in range(slots):
            e.emit_sd(FP, -(args_off - 8 * i), 10)  # every slot from a0


class LastArgNotRestored(EraJit):
    def _restore_args(self, e: Emitter, n: int, args_off: int) -> None:
        super()._restore_args(e, max(0, n - 1), args_off)


class NargsOffByOne(EraJit):
    def _store_args(self, e: Emitter, slots: int, args_off: int) -> None:
        super()._store_args(e, slots, args_off)
        e.emit_li(T1, slots + 1)
        e.emit_sd(FP, -(args_off + 8), T1)  # nregs sits just below the arguments


class IpSlotMisplaced(EraJit):
    def frame(self, req: TrampRequest) -> Any:
        fr = super().frame(req)
        return replace(fr, ip_off=fr.ip_off + 8) if fr.ip_off else fr


class FexitSeesZero(EraJit):
    def _invoke(self, e: Emitter, req: TrampRequest, link: Any, fr: Any, save_ret: bool, skips: Any) -> None:
        if link.kind == "fexit":
            e.emit_sd(FP, -fr.retval_off, ZERO)
        super()._invoke(e, req, link, fr, save_ret, skips)


class LinksReversed(EraJit):
    def build(self, req: TrampRequest, base: int | None, im: int) -> Any:
        return super().build(replace(req, links=tuple(reversed(req.links))), base, im)


class ScratchS2(EraJit):
    def _invoke(self, e: Emitter, req: TrampRequest, link: Any, fr: Any, save_ret: bool, skips: Any) -> None:
        super()._invoke(e, req, link, fr, save_ret, skips)
        e.emit_li(S2, 0)  # s2 as scratch, never saved


class FrameNotAligned(EraJit):
    def frame(self, req: TrampRequest) -> Any:
        fr = super().frame(req)
        return replace(fr, stack_size=fr.stack_size + 8)


class AcceptsIpmodify(EraJit):
    def build(self, req: TrampRequest, base: int | None, im: int) -> Any:
        return super().build(replace(req, flags=req.flags & ~(F_ORIG_STACK | F_SHARE_IPMODIFY)), base, im)


class LastWord(EraJit):
    """v6.19 without RVC whose final instruction (the epilogue's return) is replaced."""

    last: int = 0

    def __init__(self) -> None:
        super().__init__(ERA, rvc=False)

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        img = super().emit(req, image_addr, image_size)
        if isinstance(img, Refused):
            return img
        code = bytearray(img.code)
        code[img.used_len - 4 : img.used_len] = self.last.to_bytes(4, "little")
        return replace(img, code=bytes(code))


class ReturnsPastTheParent(LastWord):
    last = E.jalr(ZERO, RA, 4)  # SKIP_FRAME: jr 4(ra)


class ReturnsToTheParentDirectly(LastWord):
    last = E.jalr(ZERO, RA, 0)  # RESTORE_REGS: jr ra instead of jr t0, the body never runs


class NoTeardown(EraJit):
    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        if new == "jump":
            return PokeResult(0, site)
        return super().text_poke(ip, site, old, new, old_addr, new_addr)


class EmitTooFar(EraJit):
    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        E.addi(T0, ZERO, 1024 * len(req.links))  # EncodingError from two links on
        return super().emit(req, image_addr, image_size)


@dataclass(frozen=True)
class OneWordPoker(BpfPoker):
    """bpf_arch_text_poke comparing one word of the old sequence only."""

    word: int = 0

    def poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        old_seq = bpf_poke_words(self.scheme, old, ip, old_addr if old != "nop" else 0)
        new_seq = bpf_poke_words(self.scheme, new, ip, new_addr if new != "nop" else 0)
        if old_seq is None or new_seq is None:
            return PokeResult(ERANGE, site)
        at = 4 * self.word
        if site[at : at + 4] != words(old_seq[self.word]):
            return PokeResult(EFAULT, site)
        new_b = words(*new_seq)
        return PokeResult(0, new_b + site[len(new_b) :])


@dataclass(frozen=True)
class NoRangeCheckPoker(BpfPoker):
    """bpf_arch_text_poke that silently does nothing for an unreachable target."""

    def poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        res = super().poke(ip, site, old, new, old_addr, new_addr)
        return PokeResult(0, site) if res.rc == ERANGE else res


@dataclass(frozen=True)
class OneWordModifyCall(FtracePatcher):
    """ftrace_modify_call comparing one word of the t0 call only."""

    word: int = 0

    def modify_call(self, sled: Any, func: int, site: bytes, old_target: int, new_target: int,
                    ftrace_caller: int, *, ops: int = 0) -> PokeResult:
        old = words(*self.call_words(func, old_target, ftrace_caller))
        at = sled.pre_bytes + 4 * self.word
        if site[at : at + 4] != old[4 * self.word : 4 * self.word + 4]:
            return PokeResult(EINVAL, site)
        return PokeResult(0, self.patch(sled, func, new_target, ftrace_caller, ops=ops))


# ---------------------------------------------------------------------------------------------
# building the broken implementations and the cases


def jit_impl(jit: EraJit, name: str, base: str = "v6.19") -> Implementation:
    clean = resolve(base)
    return replace(clean, name=name, caps=replace(clean.caps, name=name), jit=jit)


def restore_slip(extra: Callable[[Emitter], None]) -> EraJit:
    jit = RestoreArgsSlip(ERA)
    jit.extra = extra  # type: ignore[method-assign]
    return jit


def poker_impl(poker: BpfPoker, name: str) -> Implementation:
    jit = EraJit(ERA)
    jit.poker = poker
    return jit_impl(jit, name)


def modify_impl(word: int) -> Implementation:
    clean = resolve("v6.12")
    ft = clean.patcher.ftrace  # type: ignore[attr-defined]
    patcher = replace(clean.patcher, ftrace=OneWordModifyCall(ft.scheme, ft.concurrency, ft.era, word))  # type: ignore[type-var]
    return replace(clean, name=f"v6.12-modify-call-word-{word}", patcher=patcher)


def fn(nargs: int = 3, **body: Any) -> Function:
    values = tuple(0x1111 * (i + 1) | (i + 3) << 40 for i in range(nargs))
    return Function(args=tuple(Arg(8) for _ in range(nargs)), values=values,
                    body=Body(**{"k": 7, "coeffs": tuple(range(1, nargs + 1)), **body}))


def kcase(*links: Link, sled: str = "8,4/c", nargs: int = 3, **kw: Any) -> Case:
    return Case(target="kernel_function", function=fn(nargs), sled=sled, links=links, **kw)


def bcase(*links: Link) -> Case:
    return Case(target="bpf_prog", function=fn(2), sled="2,0/w", links=links)


FENTRY = Link("fentry", r0=5, cookie=9)
FEXIT = Link("fexit", r0=6)


@dataclass(frozen=True)
class Firing:
    """``impl`` (a factory, or a registry name) violates ``invariant`` on ``case``; ``clean``
    passes it."""

    impl: Callable[[], Implementation] | str
    case: Callable[[], Case]
    clean: str = "v6.19"


def regression(file: str, impl: str, clean: str) -> Firing:
    return Firing(impl, lambda: load_entry(REGRESSIONS / file).case, clean)


FIRINGS: dict[str, list[Firing]] = {
    "I-RETURN-TARGET": [Firing(lambda: jit_impl(ReturnsPastTheParent(), "ret-past-parent"),
                               lambda: kcase(FEXIT))],
    "I-RETURN-VALUE": [regression("2f1b0d3d7331-raw-a0.json", "v6.19-pre-2f1b0d3d7331", "v6.19")],
    "I-BODY-RUNS": [Firing(lambda: jit_impl(ReturnsToTheParentDirectly(), "skips-body"), lambda: kcase(FENTRY))],
    "I-NO-RECURSION": [Firing(lambda: jit_impl(EraJit(replace(ERA, skip=0)), "orig-at-func"),
                              lambda: kcase(FEXIT))],
    "I-ARGS-SEEN": [Firing(lambda: jit_impl(ArgsStoredFromA0(ERA), "args-from-a0"), lambda: kcase(FENTRY))],
    "I-ARGS-PASSED": [Firing(lambda: jit_impl(LastArgNotRestored(ERA), "last-arg-lost"), lambda: kcase(FENTRY))],
    "I-NARGS": [Firing(lambda: jit_impl(NargsOffByOne(ERA), "nargs+1"), lambda: kcase(FENTRY))],
    "I-IP-ARG": [Firing(lambda: jit_impl(IpSlotMisplaced(ERA), "ip-slot"),
                        lambda: kcase(replace(FENTRY, wants_ip=True)))],
    "I-RETVAL-SEEN": [Firing(lambda: jit_impl(FexitSeesZero(ERA), "fexit-sees-0"), lambda: kcase(FEXIT))],
    "I-ORDER": [Firing(lambda: jit_impl(LinksReversed(ERA), "links-reversed"),
                       lambda: kcase(FENTRY, replace(FENTRY, cookie=10)))],
    "I-PROG-PROTOCOL": [Firing(lambda: jit_impl(EraJit(replace(ERA, mv_s1_before_branch=False)), "mv-s1-late"),
                               lambda: kcase(Link("fentry", enter=5), Link("fentry", enter=0)))],
    "I-CALLEE-SAVED": [Firing(lambda: jit_impl(ScratchS2(ERA), "scratch-s2"), lambda: kcase(FENTRY))],
    "I-SP": [Firing(lambda: jit_impl(FrameNotAligned(ERA), "frame+8"), lambda: kcase(FENTRY))],
    "I-PARENT-RA": [Firing(lambda: jit_impl(restore_slip(lambda e: e.emit_sd(FP, 8, ZERO)), "parent-ra-0"),
                           lambda: kcase(FENTRY))],
    "I-NO-FAULT": [Firing(lambda: jit_impl(restore_slip(lambda e: e.emit_ld(T1, 0, ZERO)), "load-null"),
                          lambda: kcase(FENTRY))],
    "I-TERMINATES": [Firing(lambda: jit_impl(restore_slip(lambda e: e.emit(E.jal(ZERO, 0))), "spins"),
                            lambda: kcase(FENTRY))],
    "I-STACK-BOUNDS": [Firing(lambda: jit_impl(restore_slip(lambda e: e.emit_sd(FP, 16, ZERO)), "writes-entry-sp"),
                              lambda: kcase(FENTRY))],
    "I-UNWIND": [regression("25ad10658dc1-unwind-one-frame.json", "v6.3", "ftrace=v6.6,tramp=v6.19")],
    "I-SIZE": [regression("9f1e16fb1fc9-size-pass-im.json", "v6.19-pre-9f1e16fb1fc9", "v6.19")],
    "I-POKE": [
        Firing(lambda: poker_impl(OneWordPoker(ERA.bpf_sled, ERA.poke_kinds, 0), "poke-word-0"),
               lambda: bcase(FENTRY)),
        Firing(lambda: poker_impl(OneWordPoker(ERA.bpf_sled, ERA.poke_kinds, 1), "poke-word-1"),
               lambda: bcase(FENTRY)),
        Firing(lambda: modify_impl(0), lambda: kcase(FENTRY, sled="4,0/c"), "v6.12"),
        Firing(lambda: modify_impl(1), lambda: kcase(FENTRY, sled="4,0/c"), "v6.12"),
    ],
    "I-REACH": [Firing(lambda: poker_impl(NoRangeCheckPoker(ERA.bpf_sled, ERA.poke_kinds), "no-range-check"),
                       lambda: bcase(FENTRY))],
    "I-TORN": [regression("8547649981e6-torn-t0-sled-preemptible.json", "v6.6-pre-8547649981e6", "v6.6")],
    "I-TEARDOWN": [Firing(lambda: jit_impl(NoTeardown(ERA), "no-teardown"), lambda: kcase(FEXIT, teardown=True))],
    "I-REJECT": [Firing(lambda: jit_impl(AcceptsIpmodify(ERA), "accepts-ipmodify"),
                        lambda: kcase(FEXIT, flags=F_CALL_ORIG | F_SKIP_FRAME | F_SHARE_IPMODIFY))],
    IMPL_CRASH: [Firing(lambda: jit_impl(EmitTooFar(ERA), "emit-too-far"), lambda: kcase(FENTRY, FEXIT))],
}
#: Shown elsewhere, each on deliberately broken implementations through the real scenario:
#: I-SLED-CONSISTENT (tests/unit/test_sled_consistent_entry.py: entries at func+4 and func+16) and
#: the 7.x invariants (tests/unit/test_fsession_invariants.py: v7.3 JIT variants with one slip each).
ELSEWHERE = frozenset({"I-SLED-CONSISTENT", "I-SESSION-COOKIE", "I-IS-RETURN", "I-TAIL-CALL-COUNT"})

CASES = [pytest.param(inv, i, f, id=f"{inv}-{i}") for inv, fs in FIRINGS.items() for i, f in enumerate(fs)]


@pytest.mark.parametrize(("invariant", "index", "firing"), CASES)
def test_the_invariant_fires_on_a_broken_implementation(invariant: str, index: int, firing: Firing) -> None:
    case = firing.case()
    clean = judge(case, firing.clean)
    assert clean.passed, f"the case itself must be correct on {firing.clean}: {clean.summary}"
    impl = resolve(firing.impl) if isinstance(firing.impl, str) else firing.impl()
    v = judge(case, impl)
    assert v.status == "fail" and invariant in v.invariants, v.summary


def test_every_invariant_has_a_firing() -> None:
    assert set(FIRINGS) | ELSEWHERE == {*NAMES, IMPL_CRASH}
    assert not set(FIRINGS) & ELSEWHERE
