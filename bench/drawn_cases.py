"""A fixed, seeded set of generated cases for the benchmarks that re-judge the same cases.

``bench/verdict_stability.py``, ``bench/fresh_vs_shared.py`` and ``bench/profile_judge.py`` need
the campaign strategies' cases drawn up front and deterministic for a seed (drawing is not what
they measure); this is the one place that draws them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed

from sledfuzz.emu.impls.registry import resolve
from sledfuzz.fuzz.strategies import cases, search_cases
from sledfuzz.model.case import Case


def draw_cases(impl_name: str, n: int, seed: int, *, base: bool = False) -> list[Case]:
    """``n`` cases from the campaign strategies (or the base ones), deterministic for ``seed``."""
    impl = resolve(impl_name)
    out: list[Case] = []
    strategy = cases(caps=impl.caps) if base else search_cases(impl.caps)

    @hyp_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Case) -> None:
        out.append(case)

    collect()
    return out[:n]
