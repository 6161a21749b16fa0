"""Shared helpers for the model tests: capabilities, selftest functions, and a correct Observation.

``observation_from_expected`` plays a correct implementation: it turns an ``Expected`` into the
Observation a faithful run would produce. It lives in tests because the model must never build
its own evidence. The tests at the bottom check that it passes every invariant on generated cases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings

from sledfuzz.fuzz.strategies import cases
from sledfuzz.model.caps import Capabilities, SledLayout
from sledfuzz.model.case import MASK64, STACK_SIZE, Arg, Body, Case, Function, Layout, Link, Store
from sledfuzz.model.contract import EFAULT, PLANTED
from sledfuzz.model.expectation import Expected, Refusal
from sledfuzz.model.invariants import check_all
from sledfuzz.model.observation import FINAL_REGS, BodyEntry, Event, Observation, PokeCheck, TornState, Write
from sledfuzz.model.semantics import expect

SLEDS = (
    SledLayout("kernel_function", 4, 0, 2, "t0"),
    SledLayout("kernel_function", 2, 0, 4, "t0"),
    SledLayout("kernel_function", 8, 4, 2, "t0", call_ops=True),
    SledLayout("kernel_function", 4, 2, 4, "t0", call_ops=True),
    SledLayout("bpf_prog", 2, 0, 4, "t0"),
    SledLayout("bpf_prog", 4, 0, 4, "ra_detour"),
)

CAPS = Capabilities(
    name="model-test",
    targets=frozenset({"kernel_function", "bpf_prog", "struct_ops"}),
    sleds=SLEDS,
)
LAYOUT = Layout()
FUNC = LAYOUT.func  # the symbol address every selftest case uses

SCRAMBLE = 0xDEAD_BEEF_0BAD_F00D


def selftest_case(
    sizes: tuple[int, ...],
    values: tuple[int, ...],
    kinds: tuple[str, ...],
    *,
    k: int = 0,
    ret32: bool = True,
    structs: tuple[int, ...] = (),
    store: Store | None = None,
    r0: int = 0,
    wants_ip: bool = False,
    target: Any = "kernel_function",
    sled: str = "4,0/c",
    **case_kw: Any,
) -> Case:
    """A case for a selftest function whose body is ``k + sum(args)`` (every coefficient 1)."""
    fargs = tuple(Arg(size=s, is_struct=i in structs) for i, s in enumerate(sizes))
    nslots = sum(a.slots for a in fargs)
    body = Body(k=k, coeffs=(1,) * nslots, ret32=ret32, store=store)
    fn = Function(args=fargs, values=values, body=body, ret_size=4 if ret32 else 8, ret_signed=ret32)
    lks = tuple(Link(kind=kd, r0=r0 if kd == "fmod_ret" else 0, wants_ip=wants_ip) for kd in kinds)  # type: ignore[arg-type]
    return Case(target=target, function=fn, sled=sled, links=lks, **case_kw)


def expected_of(case: Case, caps: Capabilities = CAPS, **kw: Any) -> Expected:
    exp = expect(case, caps, **kw)
    assert isinstance(exp, Expected), exp
    return exp


def observation_from_expected(case: Case, exp: Expected, **overrides: Any) -> Observation:
    """The Observation a correct implementation produces for ``exp`` (then ``overrides`` applied)."""
    lay = case.layout
    entry_sp = (lay.stack + STACK_SIZE - 0x200) & ~0xF
    tramp_fp = entry_sp - 16
    tramp_sp = entry_sp - 0xA0
    run_ctx = tramp_fp - 0x58
    ctx_ptr = tramp_fp - 0x30
    tramp_pc = lay.image + 0x40
    slots = exp.nr_slots
    events: list[Event] = []
    for ev in exp.events:
        link = case.links[ev.link] if ev.link >= 0 else None
        common: dict[str, Any] = {"sp": tramp_sp, "fp": tramp_fp, "ra": tramp_pc, "frames": (*exp.frames, 4660)}
        if ev.kind in ("tramp_enter", "tramp_exit"):
            events.append(Event(ev.kind, -1, a0=ev.a0 or 0, a1=SCRAMBLE, a2=SCRAMBLE, **common))
        elif ev.kind == "prog_enter":
            assert link is not None
            events.append(Event(ev.kind, ev.link, a0=ev.a0 or 0, a1=run_ctx, a2=SCRAMBLE, returned=link.enter, **common))
        elif ev.kind == "prog":
            assert link is not None and ev.ctx is not None
            ctx = (*ev.ctx, ev.retval if ev.retval is not None else SCRAMBLE)
            events.append(Event(ev.kind, ev.link, a0=ctx_ptr, a1=SCRAMBLE, a2=SCRAMBLE, ctx=ctx, nregs=slots,
                                ip=ev.ip, cookie=link.cookie, returned=link.r0, **common))
        elif ev.kind == "prog_exit":
            assert link is not None
            events.append(Event(ev.kind, ev.link, a0=ev.a0 or 0, a1=link.enter, a2=run_ctx, **common))
        else:  # the body's helper call
            events.append(Event("helper", -1, a0=0, a1=0, a2=0, sp=entry_sp - 0x40, fp=entry_sp - 0x30,
                                ra=exp.body_addr + 0x20))
    values = case.function.values
    nreg = min(len(values), 8)
    regs = values[:nreg] + (SCRAMBLE,) * (8 - nreg)
    on_restore_path = exp.restore_regs and not exp.call_orig
    entries = tuple(
        BodyEntry(
            regs=regs,
            stack=values[nreg:],
            sp=entry_sp if on_restore_path else tramp_sp,
            ra=exp.parent_ret if on_restore_path else tramp_pc + 0x80,
            pc=exp.body_addr,
        )
        for _ in range(exp.body_runs)
    )
    writes = [Write(addr=tramp_fp - 8, size=8, value=exp.body_addr, pc=lay.image + 8),
              Write(addr=entry_sp - 8, size=8, value=exp.parent_ret, pc=lay.image + 4)]
    if exp.store is not None:
        writes += [Write(addr=exp.store[0], size=8, value=exp.store[1], pc=exp.body_addr + 0x10)] * exp.body_runs
    final_vals = {
        "a0": exp.a0 if exp.a0 is not None else SCRAMBLE,
        "a5": exp.a5 if exp.a5 is not None else (exp.a5_model if exp.a5_model is not None else SCRAMBLE),
        "ra": exp.parent_ret,
        "sp": entry_sp,
        **PLANTED,
        "a6": exp.a6 if exp.a6 is not None else SCRAMBLE,
    }
    site = bytes.fromhex("13000000" * 2)
    obs = Observation(
        refused=None,
        sized_len=0x200,
        emitted_len=0x1F8,
        events=tuple(events),
        body_entries=entries,
        final=tuple(final_vals[r] & MASK64 for r in FINAL_REGS),
        return_pc=exp.parent_ret,
        trap=None,
        writes=tuple(writes),
        steps=500,
        budget=100_000,
        entry_sp=entry_sp,
        canaries_ok=True,
        pokes=(
            PokeCheck("call->nop", "bpf_arch_text_poke", 0, site, site),
            PokeCheck("wrong_old", "bpf_arch_text_poke", EFAULT, site, site),
        ),
        torn=(TornState("auipc new, jalr old", True, exp.body_addr, (exp.body_addr, lay.image)),),
        parent_ret=exp.parent_ret,
        body_addr=exp.body_addr,
        image_addr=lay.image,
    )
    return replace(obs, **overrides)


def observation_refused(errno: int, **overrides: Any) -> Observation:
    """What a correct implementation reports when it refuses."""
    return replace(Observation(refused=errno, refused_reason="model test", sized_len=0x200), **overrides)


def test_correct_observation_passes_every_invariant_on_a_selftest() -> None:
    case = selftest_case((4, 8, 8), (4, 5, 6), ("fentry", "fmod_ret", "fexit"), wants_ip=True)
    exp = expected_of(case)
    assert check_all(case, CAPS, exp, observation_from_expected(case, exp)) == ()


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(cases(caps=CAPS))
def test_correct_observation_passes_every_invariant(case: Case) -> None:
    """Generated cases: the faithful observation of any judged expectation has no violation."""
    exp = expect(case, CAPS)
    if isinstance(exp, Expected):
        obs = observation_from_expected(case, exp)
    elif isinstance(exp, Refusal):
        obs = observation_refused(exp.errno)
    else:
        return
    assert check_all(case, CAPS, exp, obs) == ()
