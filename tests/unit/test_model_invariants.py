"""Every invariant can fail and a correct run passes it (hand-built observations)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from sledfuzz.model.case import Case, Layout, Link, Store
from sledfuzz.model.contract import E2BIG, EINVAL, ENOTSUPP, ERANGE
from sledfuzz.model.expectation import Invalid, Refusal, Unspecified
from sledfuzz.model.invariants import ALL, BY_NAME, NAMES, Violation, check_all
from sledfuzz.model.observation import Event, Observation, PokeCheck, TornState, Trap, Write
from sledfuzz.model.semantics import expect
from tests.unit.test_model_support import (
    CAPS,
    FUNC,
    LAYOUT,
    expected_of,
    observation_from_expected,
    observation_refused,
    selftest_case,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = LAYOUT.data


def rich_case(**kw: object) -> Case:
    """10 slots (2 on the stack), a store, every link kind, enter 5/0/1, cookies, IP_ARG."""
    values = (DATA + 0x10, *range(2, 11))
    case = selftest_case((8,) * 10, values, ("fentry", "fmod_ret", "fmod_ret", "fexit"),
                         k=1, ret32=False, store=Store(0, 0x77), wants_ip=True)
    lks = (replace(case.links[0], cookie=7, enter=5), replace(case.links[1], enter=0),
           case.links[2], replace(case.links[3], cookie=9, enter=3))
    return replace(case, links=lks, **kw)  # type: ignore[arg-type]


CASE = rich_case()
EXP = expected_of(CASE)
GOOD = observation_from_expected(CASE, EXP)


def _events(obs: Observation, fn: Callable[[Event], Event]) -> Observation:
    return replace(obs, events=tuple(fn(ev) for ev in obs.events))


def _on(kind: str, link: int, **changes: object) -> Callable[[Event], Event]:
    def edit(ev: Event) -> Event:
        return replace(ev, **changes) if ev.kind == kind and ev.link == link else ev  # type: ignore[arg-type]
    return edit


def _final(obs: Observation, reg: str, value: int) -> Observation:
    from sledfuzz.model.observation import FINAL_REGS

    assert obs.final is not None
    regs = list(obs.final)
    regs[FINAL_REGS.index(reg)] = value
    return replace(obs, final=tuple(regs))


def _fire(name: str, obs: Observation, case: Case = CASE, exp: object = EXP) -> Violation:
    v = BY_NAME[name].check(case, CAPS, exp, obs)  # type: ignore[arg-type]
    assert v is not None, f"{name} did not fire"
    assert v.invariant == name
    assert str(v).startswith(f"{name}: ") and "\n" not in str(v)
    return v


def test_names_are_design_section_6() -> None:
    assert tuple(inv.name for inv in ALL) == NAMES
    assert len(NAMES) == 28 and set(BY_NAME) == set(NAMES)
    for inv in ALL:
        assert len(inv.doc) > 120, inv.name
        assert any(c.isdigit() for c in inv.doc), f"{inv.name} names no commit or section"


def test_invariants_carry_the_commits_they_catch() -> None:
    """``catches`` reads model/known_bugs.py (values written here from SEMANTICS 4)."""
    assert BY_NAME["I-SIZE"].catches == frozenset({"9f1e16fb1fc9"})
    assert BY_NAME["I-TORN"].catches == frozenset({"8547649981e6"})
    assert BY_NAME["I-NO-RECURSION"].catches == frozenset({"8f3e00af8e52", "25ad10658dc1"})
    assert BY_NAME["I-TAIL-CALL-COUNT"].catches == frozenset()


def test_docs_table_lists_every_invariant() -> None:
    text = (ROOT / "docs" / "invariants.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"| {name} |" in text, name


@pytest.mark.parametrize("name", NAMES)
def test_correct_observation_passes(name: str) -> None:
    assert BY_NAME[name].check(CASE, CAPS, EXP, GOOD) is None


def test_violation_renders_one_line() -> None:
    case = selftest_case((4,), (1,), ("fexit",), k=1)
    exp = expected_of(case)
    obs = _final(observation_from_expected(case, exp), "a0", 3)
    assert str(_fire("I-RETURN-VALUE", obs, case, exp)) == "I-RETURN-VALUE: parent got a0=0x3 want 0x2"


# -- one violating observation per invariant -------------------------------------------------


def test_return_target() -> None:
    v = _fire("I-RETURN-TARGET", replace(GOOD, return_pc=EXP.parent_ret + 4))
    assert "want the parent" in v.message
    _fire("I-RETURN-TARGET", replace(GOOD, return_pc=None, final=None))  # silently lost
    _fire("I-RETURN-TARGET", replace(GOOD, parent_ret=EXP.parent_ret + 0x10))  # scenario off contract


def test_return_value_a0_and_a5() -> None:
    _fire("I-RETURN-VALUE", _final(GOOD, "a0", 0))
    case = selftest_case((8, 8), (1, 2), ("fexit",), target="bpf_prog", sled="2,0/w", ret32=False)
    exp = expected_of(case)
    assert exp.a0 == 3 and exp.a5 == 0  # body.a5, the saved R0 slot
    obs = _final(observation_from_expected(case, exp), "a5", 5)
    assert "a5=0x5" in _fire("I-RETURN-VALUE", obs, case, exp).message
    # a5 is not judged on kernel functions
    assert BY_NAME["I-RETURN-VALUE"].check(CASE, CAPS, EXP, _final(GOOD, "a5", 5)) is None


def test_body_runs() -> None:
    twice = replace(GOOD, body_entries=GOOD.body_entries * 2)
    assert "2 times want 1" in _fire("I-BODY-RUNS", twice).message
    never = replace(GOOD, body_entries=())
    _fire("I-BODY-RUNS", never)
    no_store = replace(GOOD, writes=tuple(w for w in GOOD.writes if w.addr != DATA + 0x10))
    assert "store" in _fire("I-BODY-RUNS", no_store).message


def test_no_recursion() -> None:
    again = next(ev for ev in GOOD.events if ev.kind == "tramp_enter")
    deeper = replace(again, sp=again.sp - 0xB0)
    obs = replace(GOOD, events=(*GOOD.events[:3], deeper, *GOOD.events[3:]))
    assert "re-entered" in _fire("I-NO-RECURSION", obs).message


def test_args_seen() -> None:
    def bad(ev: Event) -> Event:
        if ev.kind != "prog" or ev.link != 0:
            return ev
        return replace(ev, ctx=(*ev.ctx[:9], 2989, *ev.ctx[10:]))
    assert "[9]=0xbad want 0xa" in _fire("I-ARGS-SEEN", _events(GOOD, bad)).message


def test_args_passed() -> None:
    entry = GOOD.body_entries[0]
    obs = replace(GOOD, body_entries=(replace(entry, stack=(entry.stack[0], 0)),))
    assert "stack arg" in _fire("I-ARGS-PASSED", obs).message
    obs = replace(GOOD, body_entries=(replace(entry, regs=(0, *entry.regs[1:])),))
    _fire("I-ARGS-PASSED", obs)


def test_nargs() -> None:
    _fire("I-NARGS", _events(GOOD, _on("prog", 0, nregs=9)))


def test_ip_arg() -> None:
    v = _fire("I-IP-ARG", _events(GOOD, _on("prog", 3, ip=FUNC + 8)))
    assert f"want {FUNC:#x}" in v.message


def test_retval_seen() -> None:
    def bad(ev: Event) -> Event:
        return replace(ev, ctx=(*ev.ctx[:10], 0)) if ev.kind == "prog" and ev.link == 3 else ev
    _fire("I-RETVAL-SEEN", _events(GOOD, bad))


def test_order() -> None:
    ev = list(GOOD.events)
    ev[1], ev[4] = ev[4], ev[1]
    _fire("I-ORDER", replace(GOOD, events=tuple(ev)))
    _fire("I-ORDER", replace(GOOD, events=GOOD.events[1:]))  # no __bpf_tramp_enter
    _fire("I-ORDER", _events(GOOD, _on("tramp_exit", -1, a0=0)))  # exit with the wrong im


def test_prog_protocol() -> None:
    v = _fire("I-PROG-PROTOCOL", _events(GOOD, _on("prog_exit", 1, a1=5)))  # stale s1 (10541b374aa0)
    assert "start=0x5 want 0x0" in v.message
    _fire("I-PROG-PROTOCOL", _events(GOOD, _on("prog", 0, cookie=0)))
    _fire("I-PROG-PROTOCOL", _events(GOOD, _on("prog_exit", 3, a2=0x1000)))


def test_callee_saved() -> None:
    assert "s1=" in _fire("I-CALLEE-SAVED", _final(GOOD, "s1", 0)).message
    _fire("I-CALLEE-SAVED", _final(GOOD, "tp", 0))


def test_sp() -> None:
    _fire("I-SP", _events(GOOD, _on("prog", 0, sp=GOOD.events[0].sp - 8)))
    _fire("I-SP", _final(GOOD, "sp", GOOD.entry_sp + 16))


def test_parent_ra() -> None:
    _fire("I-PARENT-RA", _final(GOOD, "ra", 0x1234))
    case = selftest_case((4,), (1,), ("fentry",), k=1)
    exp = expected_of(case)
    obs = observation_from_expected(case, exp)
    obs = replace(obs, body_entries=(replace(obs.body_entries[0], ra=FUNC + 12),))
    _fire("I-PARENT-RA", obs, case, exp)


def test_no_fault() -> None:
    obs = replace(GOOD, trap=Trap("fetch", pc=0x10, addr=0x10), return_pc=None, final=None)
    assert "fetch at pc=0x10" in _fire("I-NO-FAULT", obs).message


def test_terminates() -> None:
    _fire("I-TERMINATES", replace(GOOD, trap=Trap("budget", pc=FUNC), return_pc=None, steps=100_000))
    _fire("I-TERMINATES", replace(GOOD, return_pc=None, final=None, steps=100_000))


def test_stack_bounds() -> None:
    above = Write(addr=GOOD.entry_sp, size=8, value=0, pc=LAYOUT.image)
    _fire("I-STACK-BOUNDS", replace(GOOD, writes=(*GOOD.writes, above)))
    stray = Write(addr=DATA + 0x18, size=8, value=0, pc=LAYOUT.image)
    _fire("I-STACK-BOUNDS", replace(GOOD, writes=(*GOOD.writes, stray)))
    _fire("I-STACK-BOUNDS", replace(GOOD, canaries_ok=False))


def test_unwind() -> None:
    assert EXP.frames == (FUNC + 8, EXP.parent_ret)
    _fire("I-UNWIND", _events(GOOD, _on("prog_enter", 0, frames=(EXP.parent_ret,))))


def test_size() -> None:
    _fire("I-SIZE", replace(GOOD, sized_len=0x100, emitted_len=0x108))


def test_poke() -> None:
    site = GOOD.pokes[0].site
    _fire("I-POKE", replace(GOOD, pokes=(PokeCheck("wrong_old", "bpf_arch_text_poke", 0, site, site),)))
    _fire("I-POKE", replace(GOOD, pokes=(PokeCheck("call->nop", "bpf_arch_text_poke", 0, b"\1" * 8, site),)))


def test_reach() -> None:
    assert "every call is in reach" in _fire("I-REACH", observation_refused(ERANGE)).message
    far = selftest_case((8,), (1,), ("fexit",), target="bpf_prog", sled="2,0/w",
                        layout=replace(LAYOUT, image=FUNC - (1 << 31) - 0x1000))
    exp = expect(far, CAPS)
    assert isinstance(exp, Refusal) and exp.errno == ERANGE
    _fire("I-REACH", observation_from_expected(CASE, EXP), far, exp)
    assert BY_NAME["I-REACH"].check(far, CAPS, exp, observation_refused(ERANGE)) is None


def test_sled_consistent() -> None:
    obs = replace(GOOD, body_entries=(replace(GOOD.body_entries[0], pc=FUNC + 16),))
    assert "func+8" in _fire("I-SLED-CONSISTENT", obs).message


def test_torn() -> None:
    obs = replace(GOOD, torn=(TornState("auipc old, jalr new", True, 0x4000, (FUNC + 8,)),))
    _fire("I-TORN", obs)
    unreachable = replace(GOOD, torn=(TornState("under stop_machine", False, 0x4000, (FUNC + 8,)),))
    assert BY_NAME["I-TORN"].check(CASE, CAPS, EXP, unreachable) is None


def test_teardown() -> None:
    case = replace(CASE, teardown=True)
    exp = expected_of(case)
    assert exp.teardown and not any(ev.link == 3 for ev in exp.events)
    assert BY_NAME["I-TEARDOWN"].check(case, CAPS, exp, observation_from_expected(case, exp)) is None
    _fire("I-TEARDOWN", GOOD, case, exp)  # the fexit prog still ran
    no_exit = observation_from_expected(case, exp)
    _fire("I-TEARDOWN", replace(no_exit, events=no_exit.events[:-1]), case, exp)


def test_reject() -> None:
    refuse = Refusal(ENOTSUPP, "13 arguments")
    assert "accepted, want -524" in _fire("I-REJECT", GOOD, CASE, refuse).message
    _fire("I-REJECT", observation_refused(EINVAL), CASE, refuse)
    _fire("I-REJECT", replace(observation_refused(ENOTSUPP), events=GOOD.events), CASE, refuse)
    _fire("I-REJECT", observation_refused(ENOTSUPP))  # a legal request refused
    _fire("I-REJECT", replace(GOOD, sized_len=5000))  # over a page but emitted
    assert BY_NAME["I-REJECT"].check(CASE, CAPS, EXP, observation_refused(E2BIG, sized_len=5000)) is None
    assert BY_NAME["I-REJECT"].check(CASE, CAPS, refuse, observation_refused(ENOTSUPP)) is None


# -- what is not judged ----------------------------------------------------------------------


def test_refused_runs_are_not_judged_by_run_invariants() -> None:
    obs = observation_refused(E2BIG, sized_len=5000)
    assert check_all(CASE, CAPS, EXP, obs) == ()


def test_invalid_and_unspecified_judge_nothing() -> None:
    bad = replace(GOOD, return_pc=0, trap=Trap("fetch", 0), canaries_ok=False)
    assert check_all(CASE, CAPS, Invalid("x"), bad) == ()
    unspecified = Unspecified("x", Refusal(EINVAL, "x"))
    assert check_all(CASE, CAPS, unspecified, bad) == ()


def test_check_all_collects_in_design_order() -> None:
    obs = _final(replace(GOOD, sized_len=1, emitted_len=2), "a0", 0)
    names = [v.invariant for v in check_all(CASE, CAPS, EXP, obs)]
    assert names == ["I-RETURN-VALUE", "I-SIZE"]


def test_layout_default_is_what_the_helpers_use() -> None:
    assert Layout() == LAYOUT and CASE.links[1] == Link("fmod_ret", enter=0, wants_ip=True)
