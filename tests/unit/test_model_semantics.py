"""expect() on the kernel selftest scenarios (SEMANTICS §6), with the selftests' own numbers,
plus refusals, reach, unspecified flags, struct_ops returns and the enter protocol."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import MASK64, Arg, Body, Case, Function, Link, Store
from sledfuzz.model.contract import (
    E2BIG,
    EINVAL,
    ENOTSUPP,
    ERANGE,
    F_CALL_ORIG,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
    PARENT_RET_OFFSET,
    PLANTED,
)
from sledfuzz.model.expectation import Expected, Invalid, Refusal, Unspecified
from sledfuzz.model.semantics import expect, parent_return
from tests.unit.test_model_support import CAPS, FUNC, LAYOUT, expected_of, selftest_case

IM = LAYOUT.im
PARENT_RET = LAYOUT.parent + 0x800
EINVAL_U64 = (-22) & MASK64

# bpf_fentry_test1..6 (net/bpf/test_run.c): BTF sizes, arguments, the selftests' results.
FENTRY_TESTS = {
    "bpf_fentry_test1": ((4,), (1,), 1, 2),  # a + 1
    "bpf_fentry_test2": ((4, 8), (2, 3), 0, 5),
    "bpf_fentry_test3": ((1, 4, 8), (4, 5, 6), 0, 15),
    "bpf_fentry_test4": ((8, 1, 4, 8), (7, 8, 9, 10), 0, 34),
    "bpf_fentry_test5": ((8, 8, 2, 4, 8), (11, 12, 13, 14, 15), 0, 65),
    "bpf_fentry_test6": ((8, 8, 2, 4, 8, 8), (16, 17, 18, 19, 20, 21), 0, 111),
}


def kinds_of(exp: Expected) -> list[tuple[str, int]]:
    return [(ev.kind, ev.link) for ev in exp.events]


def triple(i: int) -> list[tuple[str, int]]:
    return [("prog_enter", i), ("prog", i), ("prog_exit", i)]


@pytest.mark.parametrize("name", sorted(FENTRY_TESTS))
def test_fentry_test(name: str) -> None:
    sizes, values, k, ret = FENTRY_TESTS[name]
    exp = expected_of(selftest_case(sizes, values, ("fentry",), k=k))
    assert exp.flags == F_RESTORE_REGS
    assert kinds_of(exp) == triple(0)
    prog = exp.prog_event(0)
    assert prog is not None and prog.ctx == values and prog.nregs == len(values) and prog.retval is None
    assert exp.body_runs == 1 and exp.body_args == values
    assert exp.a0 == ret
    assert exp.frames == (FUNC + 8, PARENT_RET)


@pytest.mark.parametrize("name", sorted(FENTRY_TESTS))
def test_fexit_test(name: str) -> None:
    sizes, values, k, ret = FENTRY_TESTS[name]
    exp = expected_of(selftest_case(sizes, values, ("fexit",), k=k))
    assert exp.flags == F_CALL_ORIG | F_SKIP_FRAME
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(0), ("tramp_exit", -1)]
    assert exp.events[0].a0 == IM and exp.events[-1].a0 == IM
    prog = exp.prog_event(0)
    assert prog is not None and prog.ctx == values and prog.retval == ret
    assert exp.body_runs == 1 and exp.a0 == ret


@pytest.mark.parametrize("name", sorted(FENTRY_TESTS))
def test_fentry_fexit(name: str) -> None:
    sizes, values, k, ret = FENTRY_TESTS[name]
    exp = expected_of(selftest_case(sizes, values, ("fentry", "fexit"), k=k))
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(0), *triple(1), ("tramp_exit", -1)]
    fentry, fexit = exp.prog_event(0), exp.prog_event(1)
    assert fentry is not None and fentry.ctx == values and fentry.retval is None
    assert fexit is not None and fexit.ctx == values and fexit.retval == ret
    assert exp.a0 == ret


def modify_return(input_retval: int) -> Case:
    """bpf_modify_return_test(a=1, b=&2): *b += 1 (the side effect), return a + *b = 4."""
    ptr = LAYOUT.data + 0x40
    case = selftest_case((4, 8), (1, ptr), ("fentry", "fmod_ret", "fexit"), k=3, ret32=True,
                         store=Store(slot=1, value=3), r0=input_retval)
    body = replace(case.function.body, coeffs=(1,))  # the pointer is not summed
    return replace(case, function=replace(case.function, body=body))


def test_modify_return_zero_runs_the_original() -> None:
    exp = expected_of(modify_return(0))
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(0), *triple(1), *triple(2), ("tramp_exit", -1)]
    fmod, fexit = exp.prog_event(1), exp.prog_event(2)
    assert fmod is not None and fmod.retval == 0  # ret == 0 in the fmod_ret prog
    assert fexit is not None and fexit.retval == 4
    assert exp.body_runs == 1 and exp.store == (LAYOUT.data + 0x40, 3)  # one side effect
    assert exp.a0 == 4 and exp.short_circuit is None


def test_modify_return_einval_skips_the_original() -> None:
    exp = expected_of(modify_return(EINVAL_U64))
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(0), *triple(1), *triple(2), ("tramp_exit", -1)]
    fexit = exp.prog_event(2)
    assert fexit is not None and fexit.retval == EINVAL_U64
    assert exp.body_runs == 0 and exp.store is None  # no side effect
    assert exp.a0 == EINVAL_U64 and exp.short_circuit == 1


def test_fmod_ret_short_circuit_is_judged_on_the_sign_extended_a0() -> None:
    case = modify_return(0x1_0000_0000)  # low 32 bits zero: sext.w(R0) == 0
    exp = expected_of(case)
    assert exp.body_runs == 1 and exp.a0 == 4
    # the contract is the same on an era whose programs leave R0 raw in a0 (it declares 2f1b0d3d7331)
    raw = expected_of(case, replace(CAPS, ret_convention="raw"))
    assert raw.body_runs == 1 and raw.a0 == 4
    neg = expected_of(modify_return(0x8000_0000))
    assert neg.body_runs == 0 and neg.a0 == 0xFFFF_FFFF_8000_0000


def test_fmod_ret_skipped_by_enter_does_not_short_circuit() -> None:
    case = modify_return(EINVAL_U64)
    case = replace(case, links=(case.links[0], replace(case.links[1], enter=0), case.links[2]))
    exp = expected_of(case)
    assert ("prog", 1) not in kinds_of(exp) and exp.body_runs == 1 and exp.a0 == 4


def test_fmod_ret_stops_at_the_first_non_zero() -> None:
    case = selftest_case((4,), (1,), ("fmod_ret", "fmod_ret", "fmod_ret", "fexit"), k=1)
    lks = (case.links[0], replace(case.links[1], r0=9), replace(case.links[2], r0=5), case.links[3])
    exp = expected_of(replace(case, links=lks))
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(0), *triple(1), *triple(3), ("tramp_exit", -1)]
    fexit = exp.prog_event(3)
    assert fexit is not None and fexit.retval == 9 and exp.a0 == 9 and exp.body_runs == 0


def test_trampoline_count() -> None:
    """38 links accepted (cycling fentry/fmod_ret/fexit), the 39th refused with -E2BIG."""
    cycle = ("fentry", "fmod_ret", "fexit")
    ptr = LAYOUT.data
    case38 = replace(modify_return(0), links=tuple(Link(cycle[i % 3]) for i in range(38)))  # type: ignore[arg-type]
    exp = expected_of(case38)
    assert exp.body_runs == 1 and exp.a0 & 0xFFFF == 4 and exp.store is not None
    assert sum(1 for ev in exp.events if ev.kind == "prog") == 38
    case39 = replace(case38, links=(*case38.links, Link("fentry")))
    assert expect(case39, CAPS) == Refusal(E2BIG, "39 links > BPF_MAX_TRAMP_LINKS (38)")
    assert ptr == LAYOUT.data


@pytest.mark.parametrize("kind", ["fentry", "fexit", "fmod_ret"])
def test_get_func_ip(kind: str) -> None:
    exp = expected_of(selftest_case((4,), (1,), (kind,), k=1, wants_ip=True))
    assert exp.flags & F_IP_ARG
    prog = exp.prog_event(0)
    assert prog is not None and prog.ip == 0xFFFFFFFF80200000  # &bpf_fentry_test1, not the sled's end


def test_no_ip_without_ip_arg() -> None:
    prog = expected_of(selftest_case((4,), (1,), ("fentry",), k=1)).prog_event(0)
    assert prog is not None and prog.ip is None


def test_tracing_struct_arg_1() -> None:
    """bpf_testmod_test_struct_arg_1({2, 3}, 1, 4): 16-byte struct = 2 slots, nregs 4, ret 10."""
    case = selftest_case((16, 4, 4), (2, 3, 1, 4), ("fentry", "fexit"), structs=(0,))
    exp = expected_of(case)
    fexit = exp.prog_event(1)
    assert fexit is not None and fexit.nregs == 4 and fexit.ctx == (2, 3, 1, 4) and fexit.retval == 10
    assert exp.a0 == 10


def test_fentry_test11_sum_231() -> None:
    """bpf_testmod_fentry_test11(16..26): 11 slots, 3 on the stack, sum 231."""
    values = tuple(range(16, 27))
    case = selftest_case((8, 8, 2, 4, 8, 1, 4, 4, 8, 8, 8), values, ("fentry", "fexit"), ret32=False)
    exp = expected_of(case)
    fentry, fexit = exp.prog_event(0), exp.prog_event(1)
    assert fentry is not None and fentry.ctx == values and fentry.nregs == 11
    assert fexit is not None and fexit.retval == 231
    assert exp.body_args == values and exp.a0 == 231


# -- the enter protocol -----------------------------------------------------------------------


@pytest.mark.parametrize("enter", [0, 1, 2, 0x1234_5678_9ABC])
def test_enter_results(enter: int) -> None:
    case = selftest_case((4,), (1,), ("fentry",), k=1)
    case = replace(case, links=(replace(case.links[0], enter=enter, cookie=0xC0C0),))
    exp = expected_of(case)
    ran = [("prog", 0)] if enter else []
    assert kinds_of(exp) == [("prog_enter", 0), *ran, ("prog_exit", 0)]
    enter_ev, exit_ev = exp.events[0], exp.events[-1]
    assert enter_ev.a0 == exit_ev.a0 == LAYOUT.progs and enter_ev.returns == enter
    assert exit_ev.a1 == enter  # start: 0 when skipped (10541b374aa0), else what enter returned
    if enter:
        prog = exp.prog_event(0)
        assert prog is not None and prog.cookie == 0xC0C0
    assert exp.body_runs == 1


def test_prog_addresses_follow_link_index_not_run_order() -> None:
    case = selftest_case((4,), (1,), ("fexit", "fentry"), k=1)
    exp = expected_of(case)
    assert kinds_of(exp) == [("tramp_enter", -1), *triple(1), *triple(0), ("tramp_exit", -1)]
    assert exp.events[1].a0 == LAYOUT.progs + 0x100 and exp.events[4].a0 == LAYOUT.progs


# -- struct_ops --------------------------------------------------------------------------------


def struct_ops(r0: int, ret_size: int, signed: bool, enter: int = 1) -> Case:
    fn = Function(args=(Arg(8),), values=(5,), body=Body(), ret_size=ret_size, ret_signed=signed)
    return Case("struct_ops", fn, "2,0/w", links=(Link("fentry", r0=r0, enter=enter),))


@pytest.mark.parametrize(
    ("r0", "size", "signed", "btf"),
    [
        (0x80, 1, True, 0xFFFF_FFFF_FFFF_FF80),
        (0x1_2380, 1, False, 0x1_2380),  # unsigned 1/2 bytes: mv, no zero-extension
        (0x8000, 2, True, 0xFFFF_FFFF_FFFF_8000),
        (0x8000_0000, 4, False, 0xFFFF_FFFF_8000_0000),  # sext.w whatever the sign
        (0xFFFF_8000_0000_1234, 8, False, 0xFFFF_8000_0000_1234),  # fd2e08128944: pointers intact
    ],
)
def test_struct_ops_return_extension(r0: int, size: int, signed: bool, btf: int) -> None:
    exp = expected_of(struct_ops(r0, size, signed))
    assert exp.flags == 0x100 | 0x10
    assert kinds_of(exp) == triple(0) and exp.body_runs == 0
    assert exp.a0 == btf and exp.a5 is None and exp.a5_model == r0
    assert exp.frames == (PARENT_RET,)
    # The contract does not bend to an era's convention: a pre-fd2e08128944 era (sext.w of the
    # slot) or a raw-a0 era is judged against the same per-BTF value and declares its bug.
    for conv in ("sext32", "raw"):
        assert expected_of(struct_ops(r0, size, signed), replace(CAPS, ret_convention=conv)).a0 == btf


def test_struct_ops_void_and_skipped() -> None:
    void = expected_of(struct_ops(7, 0, False))
    assert void.flags == 0x100 and void.a0 is None
    skipped = expected_of(struct_ops(7, 8, False, enter=0))
    assert skipped.a0 is None and kinds_of(skipped) == [("prog_enter", 0), ("prog_exit", 0)]


# -- targets and sleds -------------------------------------------------------------------------


def test_bpf_prog_target_judges_a5() -> None:
    case = selftest_case((4,), (1,), ("fexit",), k=1, target="bpf_prog", sled="2,0/w")
    case = replace(case, function=replace(case.function, body=replace(case.function.body, a5=0x55)))
    exp = expected_of(case)
    assert exp.a0 == 2 and exp.a5 == 0x55
    assert expected_of(replace(case, target="kernel_function", sled="4,0/c")).a5 is None


def test_ra_detour_sled() -> None:
    case = selftest_case((4,), (1,), ("fentry",), k=1, target="bpf_prog", sled="4,0/w")
    exp = expected_of(case)
    assert exp.body_addr == FUNC + 16 and exp.frames == (FUNC + 12, PARENT_RET)


def test_teardown_skips_fexit_only_when_the_original_ran() -> None:
    case = selftest_case((4,), (1,), ("fentry", "fexit"), k=1, teardown=True)
    exp = expected_of(case)
    assert exp.teardown and kinds_of(exp) == [("tramp_enter", -1), *triple(0), ("tramp_exit", -1)]
    short = replace(modify_return(EINVAL_U64), teardown=True)
    exp = expected_of(short)
    assert not exp.teardown and ("prog", 2) in kinds_of(exp)


def test_parent_return_contract() -> None:
    assert PARENT_RET_OFFSET == 0x800 and parent_return(LAYOUT) == PARENT_RET
    exp = expected_of(selftest_case((4,), (1,), ("fentry",), k=1), parent_ret=0x1000)
    assert exp.parent_ret == 0x1000 and exp.frames == (FUNC + 8, 0x1000)
    assert len(set(PLANTED.values())) == 14 and set(PLANTED) >= {"s0", "s11", "gp", "tp"}


# -- refusals, invalid cases, reach ------------------------------------------------------------


def test_refusals() -> None:
    base = selftest_case((4,), (1,), ("fexit",), k=1)
    assert expect(replace(base, flags=F_CALL_ORIG | F_SKIP_FRAME | F_ORIG_STACK | 0x40), CAPS).errno == ENOTSUPP  # type: ignore[union-attr]
    many = selftest_case((8,) * 13, tuple(range(13)), ("fentry",))
    assert isinstance(r := expect(many, CAPS), Refusal) and r.errno == ENOTSUPP
    nine = selftest_case((8,) * 9, tuple(range(9)), ("fentry",))
    old = replace(CAPS, max_arg_slots=8)
    assert isinstance(r := expect(nine, old), Refusal) and r.errno == ENOTSUPP
    assert isinstance(expect(nine, CAPS), Expected)
    no_direct = replace(CAPS, kernel_direct_calls=False)
    assert isinstance(r := expect(base, no_direct), Refusal) and r.errno == ENOTSUPP


def test_invalid_cases() -> None:
    base = selftest_case((4,), (1,), ("fentry",), k=1)
    assert isinstance(expect(replace(base, sled="8,0/c"), CAPS), Invalid)  # not declared
    only_bpf = replace(CAPS, targets=frozenset({"bpf_prog"}))
    assert isinstance(expect(base, only_bpf), Invalid)
    far = replace(base, layout=replace(LAYOUT, image=FUNC - (1 << 31) - 0x1000))
    assert isinstance(expect(far, CAPS), Invalid)  # ftrace does not check reach
    edge_image = FUNC - (1 << 31) - 0x800  # exactly the lowest reachable offset
    edge = replace(base, layout=replace(LAYOUT, image=edge_image, hosts=edge_image + 0x10000))
    assert isinstance(expect(edge, CAPS), Expected)
    beyond = replace(edge, layout=replace(edge.layout, image=edge_image - 4))
    assert isinstance(expect(beyond, CAPS), Invalid)


def test_reach_refusal_and_allowance() -> None:
    bpf = selftest_case((4,), (1,), ("fentry",), k=1, target="bpf_prog", sled="2,0/w")
    far = replace(bpf, layout=replace(LAYOUT, image=FUNC - (1 << 31) - 0x1000))
    assert isinstance(r := expect(far, CAPS), Refusal) and r.errno == ERANGE and "text_poke" in r.reason
    near = replace(bpf, layout=replace(LAYOUT, image=FUNC - (1 << 31) - 0x800))
    # the image is in reach of the poke, but the host calls are not from any pc: refused
    assert isinstance(r := expect(near, CAPS), Refusal) and r.errno == ERANGE and "emit_call" in r.reason
    # host calls in reach from some pcs of the page only: ERANGE is allowed, not required
    image = LAYOUT.image
    partial = replace(bpf, layout=replace(LAYOUT, hosts=image - (1 << 31)))
    exp = expected_of(partial)
    assert exp.allowed_refusals == frozenset({ERANGE})
    assert expected_of(bpf).allowed_refusals == frozenset()
    # no links, RESTORE_REGS: the image makes no calls, so host reach does not matter
    bare = replace(partial, links=(), layout=replace(partial.layout, hosts=image - (1 << 32)))
    assert expected_of(bare).allowed_refusals == frozenset()
    # with CALL_ORIG the original (func+8) counts too: from the image's first pc it sits at
    # exactly 2^31 - 2^11 (one past the reach), from every later pc it is in reach
    fexit = selftest_case((4,), (1,), ("fexit",), k=1)
    img = FUNC - ((1 << 31) - 0x808)
    orig_edge = replace(fexit, layout=replace(LAYOUT, image=img, hosts=img + 0x10000))
    assert expected_of(orig_edge).allowed_refusals == frozenset({ERANGE})
    fentry_only = replace(orig_edge, links=(Link("fentry"),))
    assert expected_of(fentry_only).allowed_refusals == frozenset()


# -- flags -------------------------------------------------------------------------------------


def test_generated_flag_sets_are_judged() -> None:
    """TAIL_CALL_CTX is generated for a tail-call-reachable BPF program only (check_attach_btf_id):
    judged there, Invalid on a kernel function."""
    fentry = selftest_case((4,), (1,), ("fentry",), k=1, target="bpf_prog", sled="2,0/w")
    assert isinstance(expect(replace(fentry, flags=F_RESTORE_REGS | F_TAIL_CALL_CTX), CAPS), Expected)
    fexit = selftest_case((4,), (1,), ("fexit",), k=1, target="bpf_prog", sled="2,0/w")
    assert isinstance(expect(replace(fexit, flags=F_CALL_ORIG | F_SKIP_FRAME | F_TAIL_CALL_CTX), CAPS), Expected)
    kernel = selftest_case((4,), (1,), ("fentry",), k=1)
    assert isinstance(expect(replace(kernel, flags=F_RESTORE_REGS), CAPS), Expected)
    assert isinstance(expect(replace(kernel, flags=F_RESTORE_REGS | F_TAIL_CALL_CTX), CAPS), Invalid)


@pytest.mark.parametrize(
    ("links", "flags", "strict_errno"),
    [
        (("fexit",), F_CALL_ORIG, EINVAL),  # CALL_ORIG without SKIP_FRAME: body twice
        (("fentry",), F_RESTORE_REGS | F_SKIP_FRAME, EINVAL),
        (("fentry",), F_SKIP_FRAME, EINVAL),
        (("fentry",), 0, EINVAL),
        (("fexit",), F_RESTORE_REGS, EINVAL),
        (("fexit",), F_RESTORE_REGS | F_CALL_ORIG | F_SKIP_FRAME, EINVAL),
        (("fentry",), F_CALL_ORIG | F_SKIP_FRAME, None),  # well-formed: natural semantics
        (("fentry",), F_RESTORE_REGS | F_IP_ARG, None),
        (("fentry",), 0x200 | F_RESTORE_REGS, EINVAL),
    ],
)
def test_unspecified_flags(links: tuple[str, ...], flags: int, strict_errno: int | None) -> None:
    case = replace(selftest_case((4,), (1,), links, k=1), flags=flags)
    got = expect(case, CAPS)
    assert isinstance(got, Unspecified)
    strict = expect(case, CAPS, strict_flags=True)
    assert strict == got.strict
    if strict_errno is None:
        assert isinstance(strict, Expected) and strict.flags == flags and strict.a0 == 2 and strict.body_runs == 1
    else:
        assert isinstance(strict, Refusal) and strict.errno == strict_errno


def test_missing_ip_arg_is_strictly_refused() -> None:
    case = replace(selftest_case((4,), (1,), ("fentry",), k=1, wants_ip=True), flags=F_RESTORE_REGS)
    strict = expect(case, CAPS, strict_flags=True)
    assert isinstance(strict, Refusal) and strict.errno == EINVAL


def test_body_result_wraps_and_truncates() -> None:
    fn = Function(args=(Arg(8), Arg(8)), values=(MASK64, 3),
                  body=Body(k=5, coeffs=(2, -1)), ret_size=8)
    exp = expected_of(Case("kernel_function", fn, "4,0/c"))
    assert exp.a0 == (5 - 2 - 3) & MASK64  # 5 + 2*(2^64-1) - 3 mod 2^64 == 0
    fn32 = replace(fn, values=(0x7FFF_FFFF, 0), body=Body(k=1, coeffs=(1,), ret32=True))
    assert expected_of(Case("kernel_function", fn32, "4,0/c")).a0 == 0xFFFF_FFFF_8000_0000


def test_caps_without_struct_ops_sleds_ignore_the_key() -> None:
    case = replace(struct_ops(1, 8, False), sled="4,0/c")
    assert isinstance(expect(case, CAPS), Expected)
    caps = Capabilities(name="x", targets=CAPS.targets, sleds=CAPS.sleds)
    assert caps == CAPS.__class__(**{**CAPS.__dict__, "name": "x"})


def test_bpf_prog_targets_take_at_most_five_slots() -> None:
    """R1-R5 only; a6 is the tail-call counter the program's own prologue sets at func+8."""
    five = selftest_case((8,) * 5, tuple(range(5)), ("fexit",), target="bpf_prog", sled="2,0/w")
    assert isinstance(expect(five, CAPS), Expected)
    seven = selftest_case((8,) * 7, tuple(range(7)), ("fexit",), target="bpf_prog", sled="2,0/w")
    assert isinstance(expect(seven, CAPS), Invalid)
    assert isinstance(expect(replace(seven, target="kernel_function", sled="4,0/c"), CAPS), Expected)


def test_requests_no_kernel_makes_are_invalid() -> None:
    """fmod_ret on a BPF program (bpf_check_attach_target refuses it) and a struct_ops member
    with more than 8 argument slots (none exists; docs/invariants.md) are Invalid."""
    fmod = selftest_case((4,), (1,), ("fmod_ret",), k=1, target="bpf_prog", sled="2,0/w")
    assert isinstance(expect(fmod, CAPS), Invalid)
    assert isinstance(expect(replace(fmod, target="kernel_function", sled="4,0/c"), CAPS), Expected)
    eight = selftest_case((8,) * 8, tuple(range(8)), ("fentry",), target="struct_ops", sled="2,0/w")
    assert isinstance(expect(eight, CAPS), Expected)
    nine = selftest_case((8,) * 9, tuple(range(9)), ("fentry",), target="struct_ops", sled="2,0/w")
    assert isinstance(expect(nine, CAPS), Invalid)
