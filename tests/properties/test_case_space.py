"""Both generators cover the case space with the same edge biases (fuzz/space.py).

Draws a fixed-seed sample from the hypothesis strategies (``search_cases``) and from the fast
generator (``case_from_draw``) for ``v7.3`` (every target, fsession, the tail-call context) and
checks that every edge of every dimension is drawn often enough by *each* of them. The edges are
written here from the kernel facts (reach limits, BPF_MAX_TRAMP_LINKS, MAX_BPF_FUNC_ARGS, the
rounding edge), not read from the space; the shares are what the biases give, so an edge left to
chance (a bias removed) falls below its bound. Each bound is at most a third of the smaller share
the two generators drew when it was set (``-s`` prints the shares; hypothesis's swing several-fold
with its seed and the code's constants, hence five runs and loose bounds); exact values (a reach
limit) are essentially never drawn by chance, counts (38/39 links, 13 arguments) rarely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.shape import RandomDraw, case_from_draw
from sledfuzz.fuzz.strategies import search_cases
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import F_IP_ARG, F_ORIG_STACK, F_SHARE_IPMODIFY, F_TAIL_CALL_CTX
from sledfuzz.model.core_stage import effective_flags
from sledfuzz.model.expectation import Invalid
from sledfuzz.model.semantics import expect

CAPS = resolve("v7.3").caps
N = 1500
REACH_HI = (1 << 31) - (1 << 11)  # auipc+jalr: [-2^31 - 2^11, 2^31 - 2^11)
REACH_LO = -(1 << 31) - (1 << 11)


def signed(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def sled_call(c: Case) -> int:
    """The sled call's offset, measured from the auipc (func + 4 for the 16-byte detour)."""
    sled = CAPS.sled_for(c.target, c.sled)
    off = 4 if sled is not None and sled.scheme == "ra_detour" else 0
    return signed(c.layout.image - c.layout.func - off)


def high_bits_not_extension(v: int) -> bool:
    """The upper half is neither zero nor the sign extension of the lower half."""
    return v >> 32 not in (0, 0xFFFFFFFF if v & 0x80000000 else 0)


def first_slot_of_16_byte_struct(c: Case, slot: int) -> bool:
    at = 0
    for a in c.function.args:
        if a.is_struct and a.size == 16 and at == slot:
            return True
        at += a.slots
    return False


def struct_ops_sign_under_garbage(c: Case) -> bool:
    size = c.function.ret_size
    if c.target != "struct_ops" or size not in (1, 2, 4):
        return False
    r0, bits = c.links[0].r0, 8 * size
    return bool(r0 >> (bits - 1) & 1) and r0 >> bits not in (0, (1 << (64 - bits)) - 1)


def link_flags(c: Case) -> int:
    return effective_flags(c) if c.links else 0


#: (edge, predicate, the least share of the sample that must have it).
EDGES: list[tuple[str, Callable[[Case], bool], float]] = [
    ("sled call on the rounding edge (low 12 bits 0x800)", lambda c: sled_call(c) & 0xFFF == 0x800, 0.01),
    ("sled call just below it (0x7f8)", lambda c: sled_call(c) & 0xFFF == 0x7F8, 0.01),
    ("sled call at the last reachable offset", lambda c: sled_call(c) == REACH_HI - 8, 0.002),
    ("sled call at the first reachable offset", lambda c: sled_call(c) == REACH_LO, 0.002),
    ("sled call just out of reach (BPF program)",
     lambda c: c.target == "bpf_prog" and sled_call(c) in (REACH_HI, REACH_LO - 8), 0.002),
    ("host calls at the image's reach limit", lambda c: signed(c.layout.hosts - c.layout.image) >= REACH_HI - 0x1000,
     0.01),
    ("host calls on the rounding edge", lambda c: (c.layout.hosts - c.layout.image) & 0xFFF == 0x800, 0.01),
    ("no links", lambda c: c.target != "struct_ops" and not c.links, 0.05),
    ("38 links (BPF_MAX_TRAMP_LINKS)", lambda c: len(c.links) == 38, 0.01),
    ("39 links (-E2BIG)", lambda c: len(c.links) == 39, 0.01),
    ("fexit before fentry", lambda c: [lk.kind for lk in c.links][:2] == ["fexit", "fentry"], 0.01),
    ("fsession with its cookie", lambda c: any(lk.kind == "fsession" and lk.session_cookie for lk in c.links), 0.05),
    ("12 arguments (MAX_BPF_FUNC_ARGS)", lambda c: len(c.function.args) == 12, 0.01),
    ("13 arguments (-ENOTSUPP)", lambda c: len(c.function.args) == 13, 0.01),
    ("24 slots (twelve 16-byte structs)", lambda c: c.function.nr_slots == 24, 0.01),
    ("a 16-byte struct straddling a7 and the stack", lambda c: first_slot_of_16_byte_struct(c, 7), 0.005),
    ("stack arguments on a kernel function", lambda c: c.target == "kernel_function" and c.function.nr_slots > 8, 0.05),
    ("struct_ops member with 8 slots", lambda c: c.target == "struct_ops" and c.function.nr_slots == 8, 0.003),
    ("struct_ops R0 sign bit under garbage", struct_ops_sign_under_garbage, 0.015),
    ("argument value with high bits", lambda c: any(high_bits_not_extension(v) for v in c.function.values), 0.1),
    ("argument value 0x80000000", lambda c: 0x80000000 in c.function.values, 0.005),
    ("enter 0 (skipped)", lambda c: any(lk.enter == 0 for lk in c.links), 0.05),
    ("enter >= 2^31 (a start time)", lambda c: any(lk.enter >= 1 << 31 for lk in c.links), 0.02),
    ("a cookie", lambda c: any(lk.cookie for lk in c.links), 0.1),
    ("fmod_ret R0 with low 32 bits zero", lambda c: any(lk.kind == "fmod_ret" and lk.r0 and not lk.r0 & 0xFFFFFFFF
                                                        for lk in c.links), 0.01),
    ("IP_ARG", lambda c: bool(link_flags(c) & F_IP_ARG), 0.05),
    ("TAIL_CALL_CTX on a BPF program", lambda c: c.target == "bpf_prog" and bool(link_flags(c) & F_TAIL_CALL_CTX),
     0.005),
    ("ORIG_STACK", lambda c: bool(link_flags(c) & F_ORIG_STACK), 0.01),
    ("SHARE_IPMODIFY", lambda c: bool(link_flags(c) & F_SHARE_IPMODIFY), 0.01),
    ("teardown", lambda c: c.teardown and bool(c.links), 0.05),
]

#: What neither generator may draw: requests no kernel makes (model.semantics judges them Invalid).
NEVER: list[tuple[str, Callable[[Case], bool]]] = [
    ("fmod_ret on a BPF program", lambda c: c.target == "bpf_prog" and any(lk.kind == "fmod_ret" for lk in c.links)),
    ("TAIL_CALL_CTX off a BPF program", lambda c: c.target != "bpf_prog" and bool(link_flags(c) & F_TAIL_CALL_CTX)),
    ("struct_ops member over 8 slots", lambda c: c.target == "struct_ops" and c.function.nr_slots > 8),
    ("BPF program over 5 slots", lambda c: c.target == "bpf_prog" and c.function.nr_slots > 5),
]


def hypothesis_sample(n: int, seed: int) -> list[Case]:
    """``n`` cases from five seeded runs: one run's cases come in clumps (hypothesis mutates what
    it drew before), and the share of a rare edge in one run swings several-fold with the seed."""
    return [c for k in range(5) for c in hypothesis_run(n // 5, seed * 5 + k)]


def hypothesis_run(n: int, seed: int) -> list[Case]:
    out: list[Case] = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(search_cases(CAPS))
    def collect(case: Case) -> None:
        out.append(case)

    with contextlib.suppress(Exception):
        collect()
    return out


def fast_sample(n: int, seed: int) -> list[Case]:
    return [case_from_draw(RandomDraw((seed << 40) ^ i), CAPS) for i in range(n)]


SAMPLES: dict[str, Callable[[int, int], list[Case]]] = {"hypothesis": hypothesis_sample, "fast": fast_sample}
_CACHE: dict[str, list[Case]] = {}


def sample(generator: str) -> list[Case]:
    if generator not in _CACHE:
        _CACHE[generator] = SAMPLES[generator](N, 3)
    return _CACHE[generator]


def shares(cases: list[Case]) -> dict[str, float]:
    return {name: sum(1 for c in cases if pred(c)) / len(cases) for name, pred, _ in EDGES}


@pytest.mark.parametrize("generator", SAMPLES)
def test_every_edge_is_drawn_often_enough(generator: str) -> None:
    cases = sample(generator)
    assert len(cases) >= N * 0.9, f"{generator}: only {len(cases)} cases drawn"
    got = shares(cases)
    print("\n".join(f"{generator}: {got[name]:6.2%} (>= {least:.2%}) {name}" for name, _, least in EDGES))
    low = {name: f"{got[name]:.2%} < {least:.2%}" for name, _, least in EDGES if got[name] < least}
    assert not low, f"{generator}: edges drawn too rarely: {low}"


@pytest.mark.parametrize("generator", SAMPLES)
def test_nothing_unreachable_is_drawn(generator: str) -> None:
    cases = sample(generator)
    for what, pred in NEVER:
        assert not any(pred(c) for c in cases), f"{generator} drew {what}"
    invalid = [expect(c, CAPS) for c in cases]
    assert not any(isinstance(v, Invalid) for v in invalid), next(v for v in invalid if isinstance(v, Invalid))
