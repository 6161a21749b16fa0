"""sledfuzz.emu.scenario + fuzz.oracle: hand-built cases run end to end on the emulated eras and are judged.

Expected values here are computed in the test from the case (plain arithmetic), not taken from
the scenario or the model.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sledfuzz.emu import scenario as S
from sledfuzz.emu.engine import get_engine
from sledfuzz.emu.impls.api import Image, Implementation, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, CaseError, Function, Layout, Link, Store
from sledfuzz.model.contract import HOSTS_SPAN
from sledfuzz.model.observation import FINAL_REGS

M64 = (1 << 64) - 1
DATA = Layout().data


def fn(nargs: int = 3, *, body: Body | None = None, args: tuple[Arg, ...] | None = None) -> Function:
    a = args if args is not None else tuple(Arg(8) for _ in range(nargs))
    slots = sum(x.slots for x in a)
    values = tuple((0x1111 * (i + 1)) | (i << 40) for i in range(slots))
    b = body if body is not None else Body(k=7, coeffs=tuple(range(1, slots + 1)), uses_saved=3, a5=0x55)
    return Function(args=a, values=values, body=b)


def body_value(f: Function) -> int:
    """k + sum(c_i * slot_i) mod 2^64 (sext.w'd for ret32), computed independently."""
    acc = f.body.k
    for c, v in zip(f.body.coeffs, f.values, strict=False):
        acc = (acc + c * v) % (1 << 64)
    if f.body.ret32:
        low = acc & 0xFFFFFFFF
        acc = (low - (1 << 32)) % (1 << 64) if low >> 31 else low
    return acc


def kcase(links: tuple[Link, ...], *, sled: str = "8,4/c", f: Function | None = None, **kw: object) -> Case:
    return Case(target="kernel_function", function=f or fn(), sled=sled, links=links, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# contracts with the model


def test_host_thunks_fit_in_the_contracts_span() -> None:
    lay = Layout()
    top = max(S.host_addr(lay, r) for r in range(S.N_ROLES)) + S.THUNK_STRIDE
    assert top <= lay.hosts + HOSTS_SPAN


def test_bpf_tramp_run_ctx_cookie_is_at_offset_0() -> None:
    """struct bpf_run_ctx is empty, so bpf_cookie is the first field (6.12 include/linux/bpf.h);
    the program's cookie is read at the run_ctx address its enter call was given."""
    c = kcase((Link("fentry", cookie=0xC00C1E),), sled="8,4/c")
    obs = S.run_case(c, resolve("v6.19"))
    enter = next(e for e in obs.events if e.kind == "prog_enter")
    prog = next(e for e in obs.events if e.kind == "prog")
    assert prog.cookie == 0xC00C1E
    assert enter.a1 % 8 == 0


# ---------------------------------------------------------------------------------------------
# the clean era


@pytest.mark.parametrize("sled", ["8,4/c", "4,2/w"])
def test_fentry_only_kernel_function_on_v619(sled: str) -> None:
    f = fn(3)
    c = kcase((Link("fentry", r0=5, cookie=9),), sled=sled, f=f)
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    obs = v.observation
    assert obs is not None
    assert [e.kind for e in obs.events] == ["prog_enter", "prog", "prog_exit"]
    assert obs.body_runs == 1
    assert obs.final_reg("a0") == body_value(f)
    assert obs.final_reg("a5") == 0x55
    prog = obs.events[1]
    assert prog.ctx[:3] == f.values and prog.nregs == 3
    assert obs.return_pc == c.layout.parent + 0x800


def test_fexit_kernel_function_on_v619() -> None:
    f = fn(2, body=Body(k=100, coeffs=(3, -1), calls_helper=True, uses_saved=11, compressed=False, a5=1))
    c = kcase((Link("fentry"), Link("fexit", r0=77, enter=12345)), f=f)
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    obs = v.observation
    assert obs is not None
    kinds = [e.kind for e in obs.events]
    assert kinds == ["tramp_enter", "prog_enter", "prog", "prog_exit", "helper",
                     "prog_enter", "prog", "prog_exit", "tramp_exit"]
    fexit = obs.events[6]
    assert fexit.ctx[2] == body_value(f)  # ctx[slots]: the original's return value
    assert obs.events[7].a1 == 12345  # start handed from enter to exit
    assert obs.events[0].a0 == c.layout.im
    assert obs.final_reg("a0") == body_value(f)


def test_fmod_ret_short_circuit_on_v619() -> None:
    f = fn(1, body=Body(k=1, store=None))
    c = kcase((Link("fmod_ret", r0=0xFFFFFFFF_FFFFFFF2), Link("fexit")), f=f)
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    assert v.observation is not None
    assert v.observation.body_runs == 0
    assert v.observation.final_reg("a0") == 0xFFFFFFFF_FFFFFFF2  # sext.w(-14)


def test_teardown_skips_fexit_and_still_exits_the_image() -> None:
    c = kcase((Link("fentry"), Link("fexit"), Link("fexit")), teardown=True)
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    assert v.observation is not None
    kinds = [(e.kind, e.link) for e in v.observation.events]
    assert kinds[-1] == ("tramp_exit", -1)
    assert all(link != 1 and link != 2 for _, link in kinds)


def test_struct_ops_on_v619_and_before_1732ebc4a261() -> None:
    f = Function(args=(Arg(8), Arg(4)), values=(1, 2), body=Body(k=3), ret_size=8)
    c = Case(target="struct_ops", function=f, sled="1,0/w", links=(Link("fentry", r0=0x1_0000_0002),))
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    assert v.observation is not None
    assert v.observation.final_reg("a0") == 0x1_0000_0002  # 64-bit return kept (fd2e08128944)
    assert v.observation.body_runs == 0
    bad = judge(c, "v6.19-pre-1732ebc4a261")
    assert bad.status == "fail"
    assert bad.invariants & {"I-RETURN-TARGET", "I-NO-FAULT"}


def test_bpf_prog_target_on_v619() -> None:
    f = fn(3, body=Body(k=2, coeffs=(1, 1, 1), a5=0xA5))
    c = Case(target="bpf_prog", function=f, sled="2,0/w", links=(Link("fentry"), Link("fexit", r0=3)))
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    obs = v.observation
    assert obs is not None
    assert obs.body_addr == c.layout.func + 8
    assert obs.final_reg("a5") == 0xA5
    ops = {p.op: p for p in obs.pokes}
    assert ops["unpatch"].site == bytes.fromhex("13000000") * 2
    assert ops["wrong_old nop->call on a call site"].rc == 14  # -EFAULT


def test_more_than_eight_slots_use_the_callers_stack() -> None:
    args = (Arg(16, is_struct=True), *(Arg(8) for _ in range(9)), Arg(12, is_struct=True), Arg(4))
    f = fn(args=args)
    assert f.nr_slots == 14
    c = kcase((Link("fentry"), Link("fexit")), f=f)
    v = judge(c, "v6.19")
    assert v.status == "pass", v.summary
    obs = v.observation
    assert obs is not None
    assert obs.body_entries[0].stack == f.values[8:]
    prog = next(e for e in obs.events if e.kind == "prog")
    assert prog.ctx[:14] == f.values
    assert prog.nregs == 14
    # an era limited to 8 register slots refuses, and that is the expected answer
    old = judge(kcase((Link("fentry"),), f=f, sled="4,0/c"), "v6.8")
    assert old.status == "refused", old.summary
    assert old.observation is not None and old.observation.refused == 524


def test_store_and_helper_side_effects_are_observed() -> None:
    f = Function(args=(Arg(8), Arg(8)), values=(DATA + 0x40, 5),
                 body=Body(k=1, coeffs=(0, 1), store=Store(slot=0, value=0xFEED), calls_helper=True))
    v = judge(kcase((Link("fentry"),), f=f), "v6.19")
    assert v.status == "pass", v.summary
    assert v.observation is not None
    assert [(w.addr, w.value) for w in v.observation.writes] == [(DATA + 0x40, 0xFEED)]


# ---------------------------------------------------------------------------------------------
# bugs are caught


def test_seed_bug_pairing_fails_on_a_fexit_kernel_function() -> None:
    c = kcase((Link("fexit", r0=1),), sled="4,0/c")
    v = judge(c, "ftrace=v6.6,tramp=v6.3")
    assert v.status == "fail"
    assert v.invariants & {"I-BODY-RUNS", "I-RETURN-TARGET", "I-CALLEE-SAVED", "I-SLED-CONSISTENT", "I-NO-FAULT"}
    assert judge(c, "ftrace=v6.6,tramp=v6.19").status == "pass"


class _EpilogueViaT0:
    """v6.19's JIT with the final ``ret`` replaced by ``jr t0`` (return into the traced body)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def size(self, req: TrampRequest) -> int | Refused:
        return self.inner.size(req)  # type: ignore[attr-defined, no-any-return]

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        img: Image | Refused = self.inner.emit(req, image_addr, image_size)  # type: ignore[attr-defined]
        if isinstance(img, Refused):
            return img
        code = bytearray(img.code)
        end = img.used_len
        if code[end - 2 : end] == b"\x82\x80":  # c.jr ra
            code[end - 2 : end] = b"\x82\x82"  # c.jr t0
        else:
            assert code[end - 4 : end] == (0x00008067).to_bytes(4, "little")
            code[end - 4 : end] = (0x00028067).to_bytes(4, "little")
        return replace(img, code=bytes(code))

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        return self.inner.text_poke(ip, site, old, new, old_addr, new_addr)  # type: ignore[attr-defined, no-any-return]


def test_a_broken_epilogue_is_caught() -> None:
    good = resolve("v6.19")
    broken: Implementation = replace(good, name="v6.19-broken-epilogue", jit=_EpilogueViaT0(good.jit))
    c = kcase((Link("fexit"),))
    assert judge(c, good).status == "pass"
    v = judge(c, broken)
    assert v.status == "fail"
    assert "I-BODY-RUNS" in v.invariants


class _NoTeardown(_EpilogueViaT0):
    """v6.19's JIT whose poke at ip_after_call silently does nothing."""

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        return self.inner.emit(req, image_addr, image_size)  # type: ignore[attr-defined, no-any-return]

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        if new == "jump":
            return PokeResult(0, site)
        return super().text_poke(ip, site, old, new, old_addr, new_addr)


def test_a_teardown_poke_that_does_nothing_is_caught() -> None:
    good = resolve("v6.19")
    broken: Implementation = replace(good, name="v6.19-no-teardown", jit=_NoTeardown(good.jit))
    c = kcase((Link("fexit"),), teardown=True)
    v = judge(c, broken)
    assert v.status == "fail"
    assert "I-TEARDOWN" in v.invariants


def test_recursion_of_next_47c9214dcbea_is_caught() -> None:
    v = judge(kcase((Link("fexit"),)), "next-47c9214dcbea")
    assert v.status == "fail"
    assert v.invariants & {"I-NO-RECURSION", "I-TERMINATES"}


# ---------------------------------------------------------------------------------------------
# the runner itself


def test_runs_do_not_depend_on_what_ran_before() -> None:
    impl = resolve("v6.19")
    moved = Layout(func=0xFFFFFFFF80200000, ftrace_caller=0xFFFFFFFF80200960, hosts=0xFFFFFFFF80615BE0,
                   image=0xFFFFFFFF80478000)
    a = kcase((Link("fmod_ret"), Link("fentry")), sled="4,2/w")
    b = kcase((Link("fexit"), Link("fentry")), sled="8,4/c", layout=moved, teardown=True)
    c = Case(target="bpf_prog", function=fn(2), sled="2,0/w", links=(Link("fexit"),), layout=moved)
    shared = S.Scenario(get_engine())
    seq = [shared.run(x, impl) for x in (a, b, c, a, c, b)]
    fresh = {id(x): S.Scenario(get_engine()).run(x, impl) for x in (a, b, c)}
    for x, obs in zip((a, b, c, a, c, b), seq, strict=True):
        assert obs == fresh[id(x)]


def test_refusal_from_the_core_and_overlapping_layouts() -> None:
    many = kcase(tuple(Link("fentry") for _ in range(39)))
    v = judge(many, "v6.19")
    assert v.status == "refused" and v.observation is not None and v.observation.refused == 7  # -E2BIG
    overlapping = Layout(image=Layout().func + 0x40)
    with pytest.raises(CaseError, match=r"^layout\.image: .* overlaps layout\.func"):
        kcase((Link("fentry"),), layout=overlapping)
    clash = kcase((Link("fentry"),))
    object.__setattr__(clash, "layout", overlapping)  # past the case's own check: the scenario still refuses
    with pytest.raises(S.LayoutError):
        S.run_case(clash, resolve("v6.19"))


def test_scrambling_reaches_every_caller_saved_register_and_follows_the_seed() -> None:
    impl = resolve("v6.19")
    c = kcase((Link("fentry"), Link("fexit")))
    one = S.run_case(c, impl)
    two = S.run_case(replace(c, seed=12345), impl)
    same = S.run_case(c, impl)
    assert one == same
    assert [e.a1 for e in one.events] != [e.a1 for e in two.events]
    # a correct trampoline does not care (a6, a temporary of a kernel-function target, follows the seed)
    judged = [i for i, name in enumerate(FINAL_REGS) if name != "a6"]
    assert one.final is not None and two.final is not None
    assert [one.final[i] for i in judged] == [two.final[i] for i in judged]


def test_runaway_recursion_faults_at_the_same_place_whatever_ran_before() -> None:
    impl = resolve("next-47c9214dcbea")
    base = Layout()
    below = Layout(stack=base.stack - 0x4000)  # its stack ends where the next one's guard page is
    rec = kcase((Link("fexit"),))
    neighbour = kcase((Link("fentry"),), layout=below)
    fresh = S.Scenario(get_engine()).run(rec, impl)
    shared = S.Scenario(get_engine())
    shared.run(neighbour, impl)
    assert shared.run(rec, impl) == fresh
    assert fresh.trap is not None
