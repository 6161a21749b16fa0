"""Cases with no links: the kernel never attaches an empty trampoline, so the function runs with
the sled as initialised. A configuration whose JIT mishandles an empty trampoline must not be
blamed for it (the seed pairing's minimal case once had no links), and the run must still be
judged (body once, the parent gets the body's result)."""

from __future__ import annotations

import pytest

from sledfuzz.fuzz.oracle import judge
from sledfuzz.model.case import Arg, Body, Case, Function

CASE = Case("kernel_function", Function(args=(Arg(8),), values=(41,), body=Body(k=1, coeffs=(1,))), "4,0/c")


@pytest.mark.parametrize("impl", ["v6.12", "ftrace=v6.6,tramp=v6.3", "ftrace=v6.6,tramp=v6.19", "v6.6"])
def test_no_links_runs_the_function_untraced(impl: str) -> None:
    v = judge(CASE, impl)
    assert v.status == "pass", v.summary
    obs = v.observation
    assert obs is not None and obs.refused is None and obs.sized_len is None
    assert obs.events == () and obs.body_runs == 1 and obs.final_reg("a0") == 42


def test_no_links_on_a_bpf_program_runs_through_the_tcc_init() -> None:
    case = Case("bpf_prog", Function(args=(Arg(8),), values=(1,), body=Body(k=7, coeffs=(2,), a5=9)), "2,0/w")
    v = judge(case, "v6.19")
    assert v.status == "pass", v.summary
    assert v.observation is not None and v.observation.final_reg("a0") == 9 and v.observation.final_reg("a5") == 9
