"""Patching experiments beside the run: text pokes (I-POKE), torn sled states (I-TORN), teardown.

The poke and torn-state experiments ask the implementation's own mechanisms what they do with
the case's sled and image (unpatch, re-patch, pokes with a wrong old site, every mixed old/new
sled a task can fetch while a patch is in flight); they are pure in (implementation, sled,
addresses), so their results are cached per implementation object. The teardown retires the
image while the traced function runs (from the first body entry), through the JIT's poke.

Beyond ``Patcher`` and ``Jit`` they drive the protocols declared in ``emu.impls.api``:
``FtracePatched`` (the ftrace mechanism behind kernel-function sleds) and ``TrampSkipper``
(7.x teardown); an implementation without them skips those experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sledfuzz.emu.engine import Engine
from sledfuzz.emu.impls.api import (
    FtraceMechanism,
    FtracePatched,
    Implementation,
    Patcher,
    PokeKind,
    PokeResult,
    TrampSkipper,
)
from sledfuzz.emu.impls.torn import torn_states
from sledfuzz.emu.scenario.address_space import AddressSpace
from sledfuzz.emu.scenario.host_calls import RunState
from sledfuzz.emu.scenario.owned_cache import OwnedCache
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.observation import PokeCheck, TornState

#: Moves of a call target that change only the jalr word (small) or only the auipc word (a page).
_ONE_WORD_MOVES = (-0x10, 0x10, -0x100, 0x100, -0x1000, 0x1000, -0x2000, 0x2000)


def ftrace_of(patcher: Patcher) -> FtraceMechanism | None:
    """The ftrace mechanism behind ``patcher``'s kernel-function sleds, if it declares one."""
    return patcher.ftrace if isinstance(patcher, FtracePatched) else None


@dataclass(frozen=True)
class _Mechanisms:
    """The optional mechanisms an implementation declares, looked up once per implementation
    object (a runtime protocol check costs 10-20 us, a run about 500)."""

    ftrace: FtraceMechanism | None
    skipper: TrampSkipper | None


def one_word_olds(site: bytes, call_to: Callable[[int], bytes | None], target: int,
                  pre_bytes: int) -> list[tuple[int, int]]:
    """Wrong old targets for the poke experiments: for each instruction word of ``site`` (the call
    to ``target``), one target near it whose call, as the implementation itself encodes it
    (``call_to``; None when out of reach), differs from ``site`` in that word alone. A poke that
    compares only some words of the old sequence accepts one of them (I-POKE). Returns
    (word index from the function entry, wrong target) pairs."""
    found: dict[int, int] = {}
    words = range(0, len(site), 4)
    for move in _ONE_WORD_MOVES:
        wrong = (target + move) & MASK64
        enc = call_to(wrong)
        if enc is None or len(enc) != len(site):
            continue
        diff = [i for i in words if enc[i : i + 4] != site[i : i + 4]]
        if len(diff) == 1:
            found.setdefault((diff[0] - pre_bytes) // 4, wrong)
    return sorted(found.items())


class Experiments:
    """The experiments with their caches (per implementation object: ``OwnedCache``)."""

    def __init__(self) -> None:
        self._pokes: OwnedCache[PokeResult] = OwnedCache()
        self._checks: OwnedCache[tuple[PokeCheck, ...]] = OwnedCache()
        self._torn: OwnedCache[tuple[TornState, ...]] = OwnedCache()
        self._mechanisms: OwnedCache[_Mechanisms] = OwnedCache()

    def _mechanisms_of(self, impl: Implementation) -> _Mechanisms:
        hit = self._mechanisms.get(impl, None)
        if hit is None:
            jit = impl.jit
            hit = _Mechanisms(ftrace_of(impl.patcher), jit if isinstance(jit, TrampSkipper) else None)
            self._mechanisms.put(impl, None, hit)
        return hit

    def bpf_poke(self, impl: Implementation, ip: int, site: bytes, old: PokeKind, new: PokeKind,
                 old_addr: int, new_addr: int) -> PokeResult:
        """``impl.jit.text_poke``, cached (the NOP->CALL poke of a BPF program's prologue)."""
        key = ("poke", ip, site, old, new, old_addr, new_addr)
        hit = self._pokes.get(impl.jit, key)
        if hit is not None:
            return hit
        res = impl.jit.text_poke(ip, site, old, new, old_addr, new_addr)
        self._pokes.put(impl.jit, key, res)
        return res

    def poke_checks(self, case: Case, impl: Implementation, sled: SledLayout, image: int,
                    post_init: bytes, patched: bytes) -> tuple[PokeCheck, ...]:
        """I-POKE's experiments on the sled patched to ``image``: unpatch, re-patch, wrong olds."""
        lay = case.layout
        key = ("checks", case.target, sled, lay.func, lay.ftrace_caller, image)
        hit = self._checks.get(impl, key)
        if hit is not None:
            return hit
        if case.target == "bpf_prog":
            checks = _bpf_poke_checks(case, impl, sled, image, post_init, patched)
        elif case.target == "kernel_function":
            checks = _ftrace_poke_checks(case, impl.patcher, self._mechanisms_of(impl).ftrace, sled, image)
        else:
            checks = ()
        self._checks.put(impl, key, checks)
        return checks

    def torn_states(self, case: Case, impl: Implementation, sled: SledLayout, image: int) -> tuple[TornState, ...]:
        """I-TORN's states: every mixed sled while the sled is patched to ``image`` and back."""
        if case.target != "kernel_function":
            return ()
        ft = self._mechanisms_of(impl).ftrace
        if ft is None:
            return ()
        lay = case.layout
        key = (sled, lay.func, lay.ftrace_caller, image)
        hit = self._torn.get(ft, key)
        if hit is not None:
            return hit
        states = torn_states(ft, sled, lay.func, None, image, lay.ftrace_caller)
        states += torn_states(ft, sled, lay.func, image, None, lay.ftrace_caller)
        self._torn.put(ft, key, states)
        return states

    def teardown(self, engine: Engine, memory: AddressSpace, run: RunState) -> None:
        """Retire the image while the original runs: ip_after_call NOP -> JUMP ip_epilogue."""
        img = run.image
        skips = img.skips if img is not None else ()
        if img is not None and img.ip_after_call is None and skips:
            self._detach_fexit(engine, memory, run, skips)
            return
        if img is None or img.ip_after_call is None or img.ip_epilogue is None:
            return
        site = engine.read(img.ip_after_call, 8)
        res = run.impl.jit.text_poke(img.ip_after_call, site, "nop", "jump", 0, img.ip_epilogue)
        if res.rc == 0:
            memory.write(img.ip_after_call, res.site[:8])
            memory.forget(run.case.layout.image)
        else:
            run.teardown_pokes.append(PokeCheck("teardown", "bpf_arch_text_poke", res.rc, res.site, site))

    def _detach_fexit(self, engine: Engine, memory: AddressSpace, run: RunState,
                      skips: tuple[tuple[str, int, int], ...]) -> None:
        """7.x (no ip_after_call): the same outcome by detaching every fexit program while the
        original runs: the kernel patches each one's nop into a jump over its call
        (``arch_bpf_trampoline_skip``, docs/kernel.md)."""
        jit = self._mechanisms_of(run.impl).skipper
        if jit is None:
            return
        for kind, nop, target in skips:
            if kind not in ("fexit", "fsession"):  # a session program: both its nops (the first already ran)
                continue
            site = engine.read(nop, 8)
            res = jit.tramp_skip(nop, site, target)
            if res.rc == 0:
                memory.write(nop, res.site[:8])
                memory.forget(run.case.layout.image)
            else:
                run.teardown_pokes.append(PokeCheck("teardown", "arch_bpf_trampoline_skip", res.rc, res.site, site))


def _bpf_poke_checks(case: Case, impl: Implementation, sled: SledLayout, image: int, post_init: bytes,
                     patched: bytes) -> tuple[PokeCheck, ...]:
    """bpf_arch_text_poke: unpatch, call->call, wrong old kinds and targets, out of reach."""
    lay = case.layout
    mech = "bpf_arch_text_poke"
    jit = impl.jit
    out: list[PokeCheck] = []
    r = jit.text_poke(lay.func, patched, "call", "nop", image, 0)
    out.append(PokeCheck("unpatch", mech, r.rc, r.site, post_init))
    r = jit.text_poke(lay.func, patched, "call", "call", image, image)
    out.append(PokeCheck("call->call", mech, r.rc, r.site, patched))
    r = jit.text_poke(lay.func, patched, "nop", "call", 0, image)
    out.append(PokeCheck("wrong_old nop->call on a call site", mech, r.rc, r.site, patched))

    def call_to(target: int) -> bytes | None:
        enc = jit.text_poke(lay.func, post_init, "nop", "call", 0, target)
        return None if enc.rc else enc.site

    for k, wrong in one_word_olds(patched, call_to, image, sled.pre_bytes):
        r = jit.text_poke(lay.func, patched, "call", "call", wrong, image)
        out.append(PokeCheck(f"wrong_old call->call, old differs in word {k} only", mech, r.rc, r.site, patched))
    far = (lay.func + (1 << 31) + 0x1000) & MASK64
    r = jit.text_poke(lay.func, post_init, "nop", "call", 0, far)
    out.append(PokeCheck("out_of_reach nop->call", mech, r.rc, r.site, post_init))
    return tuple(out)


def _ftrace_poke_checks(case: Case, p: Patcher, ft: FtraceMechanism | None, sled: SledLayout,
                        image: int) -> tuple[PokeCheck, ...]:
    """ftrace_make_nop, then (with an ftrace mechanism) ftrace_modify_call: a wrong old site,
    wrong olds one word off, and call->call."""
    lay = case.layout
    fc = lay.ftrace_caller
    un = p.unpatch(sled, lay.func, fc)
    out = [PokeCheck("unpatch", "ftrace_make_nop", 0, un, p.init_sled(sled, lay.func, fc))]
    if ft is None:
        return tuple(out)
    mech = "ftrace_modify_call"
    plain = p.patch(sled, lay.func, image, fc)
    # a site the mechanism must refuse, per what it compares (patchers.wrong_old_site)
    bad, wrong = ft.wrong_old_site(sled, lay.func, plain, image, fc)
    if (bad, wrong) != (plain, image):
        r = ft.modify_call(sled, lay.func, bad, wrong, image, fc)
        out.append(PokeCheck("wrong_old modify_call", mech, r.rc, r.site, bad))
    # the whole call is compared (detour16: its auipc/jalr pair); the atomic scheme (v6.16+)
    # compares one word by design, which the check above covers
    atomic = ft.scheme == "atomic"
    olds = [] if atomic else one_word_olds(plain, lambda t: p.patch(sled, lay.func, t, fc), image, sled.pre_bytes)
    for k, wrong in olds:
        r = ft.modify_call(sled, lay.func, plain, wrong, image, fc)
        out.append(PokeCheck(f"wrong_old modify_call, old differs in word {k} only", mech, r.rc, r.site, plain))
    r = ft.modify_call(sled, lay.func, plain, image, image, fc)
    # v6.16+ always re-points the jalr at ftrace_caller (the literal reaches the target)
    via = fc if atomic else image
    out.append(PokeCheck("call->call", mech, r.rc, r.site, p.patch(sled, lay.func, via, fc)))
    return tuple(out)
