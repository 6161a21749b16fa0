"""The scenario: one case on one implementation, executed, as an Observation (DESIGN §1, §7).

Rooms, one job each:

* ``memory_map`` — where everything lives in a run (parent, sled and body, ftrace_caller, image,
  host thunks, data, stack), the thunks and the scramble table, what the parent plants;
* ``address_space`` — the engine's memory across cases: exactly this case's regions (shadow
  copy, stray guest writes zeroed, unused pages unmapped), so no run depends on the last;
* ``host_calls`` — the host-call ABI and what a run records: events, body entries, foreign entries;
* ``experiments`` — text pokes (I-POKE), torn sled states (I-TORN) and the teardown poke;
* ``owned_cache`` — the bounded per-implementation memo the runner and the experiments share;
* ``runner`` — the run itself (``Scenario``, ``scenario_for``, ``run_case``).

This package re-exports the names the rest of the code uses.
"""

from __future__ import annotations

from sledfuzz.emu.scenario.address_space import AddressSpace
from sledfuzz.emu.scenario.experiments import ftrace_of
from sledfuzz.emu.scenario.host_calls import (
    HOST_ARGS,
    VOID_ROLES,
    role_name,
)
from sledfuzz.emu.scenario.memory_map import (
    CANARY,
    ENTRY_SP_OFFSET,
    HOST_FIXED,
    N_ROLES,
    ROLE_HELPER,
    ROLE_PROG0,
    ROLE_PROG_ENTER,
    ROLE_PROG_EXIT,
    ROLE_TRAMP_ENTER,
    ROLE_TRAMP_EXIT,
    THUNK_STRIDE,
    LayoutError,
    fill_pattern,
    host_addr,
    host_role_at,
    thunk_role_at,
)
from sledfuzz.emu.scenario.runner import DEFAULT_BUDGET, Scenario, run_case, scenario_for

__all__ = [
    "CANARY",
    "DEFAULT_BUDGET",
    "ENTRY_SP_OFFSET",
    "HOST_ARGS",
    "HOST_FIXED",
    "N_ROLES",
    "ROLE_HELPER",
    "ROLE_PROG0",
    "ROLE_PROG_ENTER",
    "ROLE_PROG_EXIT",
    "ROLE_TRAMP_ENTER",
    "ROLE_TRAMP_EXIT",
    "THUNK_STRIDE",
    "VOID_ROLES",
    "AddressSpace",
    "LayoutError",
    "Scenario",
    "fill_pattern",
    "ftrace_of",
    "host_addr",
    "host_role_at",
    "role_name",
    "run_case",
    "scenario_for",
    "thunk_role_at",
]
