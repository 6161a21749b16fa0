"""Eras are diffs and their known bugs are derived: the derivation gives what docs/eras.md lists."""

from __future__ import annotations

import pytest

from sledfuzz.emu.impls.eras import ERAS, FTRACE_ONLY, REVERTS, V6_3, V6_6, V6_19, RevertError, revert

#: docs/eras.md, "Eras" table: the fixing commits of each era's known bugs (written by hand).
DECLARED: dict[str, set[str]] = {
    "v6.3": {"7112cd26e606", "2f1b0d3d7331", "10541b374aa0", "25ad10658dc1", "fd2e08128944"},
    "v6.6": {"10541b374aa0", "1732ebc4a261"},
    "v6.8": {"10541b374aa0", "9f1e16fb1fc9", "fd2e08128944"},
    "v6.11": {"fd2e08128944"},
    "v6.12": set(),
    "v6.16": {"fd2e08128944"},
    "next-47c9214dcbea": {"8f3e00af8e52"},
    "v6.19": set(),
    "v7.2": set(),
    "v7.3": set(),
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_era_declares_the_bugs_docs_list(name: str) -> None:
    assert {bug.commit for bug in ERAS[name].known_bugs} == DECLARED[name]


def test_exceptions_are_the_listed_ones() -> None:
    # v6.3's 25ad10658dc1 is the one-frame unwinding bug only, not the sled mismatch
    (unwind,) = [b for b in V6_3.known_bugs if b.commit == "25ad10658dc1"]
    assert unwind.invariants == frozenset({"I-UNWIND"})
    # v6.6 shows fd2e08128944 in its fields but does not declare it (masked by 1732ebc4a261)
    assert V6_6.struct_ops_ret == "slot" and "fd2e08128944" not in V6_6.fixes
    assert [key for key, _ in V6_6.not_declared] == ["fd2e08128944"]
    # the ftrace-only era carries only its sled bug, not v6.3's JIT bugs it inherits fields from
    assert [b.commit for b in FTRACE_ONLY["v6.2"].known_bugs] == ["8547649981e6"]


def test_with_fixes_adds_each_commit_with_its_fields() -> None:
    assert V6_6.fixes - V6_3.fixes == {"25ad10658dc1", "2f1b0d3d7331", "7112cd26e606"}
    assert (V6_6.frames, V6_6.skip, V6_6.retval, V6_6.prog_a0) == ("two", 8, "a0_a5", "sext32")
    assert V6_6.max_arg_slots == V6_3.max_arg_slots  # what no fix touched is inherited


@pytest.mark.parametrize("commit", sorted(set(REVERTS) - {"8547649981e6"}))
def test_a_revert_from_the_clean_era_brings_exactly_its_bug(commit: str) -> None:
    assert [b.commit for b in revert(V6_19, commit).known_bugs] == [commit]


def test_reverting_what_the_fields_already_show_is_refused() -> None:
    with pytest.raises(RevertError, match="changes nothing"):
        revert(V6_19, "8547649981e6")  # the atomic scheme is preemptible by design
