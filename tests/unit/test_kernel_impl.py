"""The ``kernel`` implementation: capabilities from the probe, the tree's ftrace words, errors.

The era tests need no tree (hand-written probe facts, expected eras from ``emu/impls/eras.py``);
the rest are marked ``kernel`` and need Debian's linux-source-6.12 or SLEDFUZZ_LINUX_SRC=PATH.
Expected ftrace words are assembled by hand from the ISA (auipc/jalr fields), not by the code.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

import sledfuzz.emu.kernel.ftrace as kftrace
import sledfuzz.emu.kernel.impl as kimpl
from sledfuzz.emu.impls.eras import ERAS
from sledfuzz.emu.impls.registry import ImplementationError, capabilities, resolve
from sledfuzz.emu.kernel.build import NEEDED, build, cache_root, default_linux_src
from sledfuzz.emu.kernel.probe import KernelFeatures
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.known_bugs import KNOWN_BUGS
from tests.support.tools import skip_if_missing

#: Debian 6.12.117 as docs/kernel.md's probe table lists it.
F_6_12_117 = KernelFeatures(
    stack_args=True, stack_args_only_call_orig=True, saves_a0_and_a5=True, indirect_frame=True,
    mv_s1_before_branch=True, size_max_count_imm=True, struct_ops_sign_extend=True, prog_sext_return=True,
    orig_call="skip_frame", poke_old_new_types=False, patch_text_bytes=True, fentry_ninsns=2,
)
#: v6.11: 6.12.117 without the fd2e08128944 backport.
F_6_11 = replace(F_6_12_117, struct_ops_sign_extend=False)
#: v6.8: before 6801b0aef79d, a5912c37faf7, 10541b374aa0, 9f1e16fb1fc9.
F_6_8 = replace(F_6_11, stack_args=False, stack_args_only_call_orig=False, mv_s1_before_branch=False,
                size_max_count_imm=False, patch_text_bytes=False)
T0_FACTS = kftrace.FtraceFacts(mcount_insn_size=8, direct_calls=True, stop_machine=True, preemptible=False)

T0, T1 = 5, 6


def _auipc(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17


def _jalr(rd: int, rs1: int, imm12: int) -> int:
    return ((imm12 & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67


def _caps_equal(era_name: str, derived_caps: object) -> None:
    want = capabilities("kernel", ERAS[era_name], ERAS[era_name])
    assert isinstance(derived_caps, type(want))
    assert replace(derived_caps, known_bugs=()) == replace(want, known_bugs=())
    assert set(derived_caps.known_bugs) == set(want.known_bugs)


# ---- capabilities from the probe (no tree needed) -------------------------------------------------


def test_6_12_117_facts_are_the_v612_era() -> None:
    era = kimpl.era_from_probe(F_6_12_117, T0_FACTS, summary="s")
    assert era == replace(ERAS["v6.12"], name="kernel", summary="s")
    assert capabilities("kernel", era, era) == replace(resolve("v6.12").caps, name="kernel")


@pytest.mark.parametrize(("features", "missing"), [
    (F_6_11, {"fd2e08128944"}),
    (F_6_8, {"fd2e08128944", "10541b374aa0", "9f1e16fb1fc9"}),
])
def test_older_markers_label_known_bugs_but_never_change_the_expectation(
        features: KernelFeatures, missing: set[str]) -> None:
    """A tree whose fix markers are missing is judged like the newest t0 era; the fixes only label."""
    era = kimpl.era_from_probe(features, T0_FACTS)
    assert era == kimpl.era_from_probe(F_6_12_117, T0_FACTS)
    assert {b.commit for b in kimpl.known_bug_labels(features, T0_FACTS)} == missing
    assert kimpl.known_bug_labels(F_6_12_117, T0_FACTS) == ()


def test_unread_markers_label_nothing() -> None:
    unread = replace(F_6_12_117, orig_call=None, mv_s1_before_branch=None)
    assert kimpl.era_from_probe(unread, T0_FACTS) == kimpl.era_from_probe(F_6_12_117, T0_FACTS)
    assert kimpl.known_bug_labels(unread, T0_FACTS) == ()


def test_a_preemptible_two_word_patch_is_labelled_as_its_bug() -> None:
    facts = replace(T0_FACTS, preemptible=True)
    assert kimpl.known_bug_labels(F_6_12_117, facts) == (KNOWN_BUGS["8547649981e6"],)
    assert kimpl.era_from_probe(F_6_12_117, facts).ftrace_preemptible  # the mechanism I-TORN judges


def test_no_direct_calls_means_kernel_functions_are_not_attachable() -> None:
    era = kimpl.era_from_probe(F_6_12_117, replace(T0_FACTS, direct_calls=False))
    assert capabilities("kernel", era, era).kernel_direct_calls is False


def test_the_atomic_ftrace_scheme_is_judged_against_v6_19() -> None:
    """MCOUNT_INSN_SIZE 4 (v6.16+): the newest atomic era, not a refusal; preemption is no bug there.
    The 7.x interface facts pick v7.2 (node API, fsession, no ip_after_call) and v7.3 (subprogram
    tail calls: the trampoline keeps the count)."""
    facts = replace(T0_FACTS, mcount_insn_size=4, stop_machine=False, preemptible=True)
    f619 = replace(F_6_12_117, orig_call="call_orig", poke_old_new_types=True)
    assert kimpl.era_from_probe(f619, facts, summary="s") == replace(ERAS["v6.19"], name="kernel", summary="s")
    f7 = replace(f619, tramp_nodes=True, fsession=True, teardown_poke=False)
    era = kimpl.era_from_probe(f7, facts, summary="s")
    assert era == replace(ERAS["v7.2"], name="kernel", summary="s")
    f73 = replace(f7, subprog_tailcalls=True)
    assert kimpl.era_from_probe(f73, facts, summary="s") == replace(ERAS["v7.3"], name="kernel", summary="s")
    assert kimpl.known_bug_labels(f7, facts) == ()
    # the t0-era orig_call condition on an atomic tree is 8f3e00af8e52's bug
    assert {b.commit for b in kimpl.known_bug_labels(replace(f7, orig_call="skip_frame"), facts)} == {"8f3e00af8e52"}


# ---- no tree: one line, no traceback ---------------------------------------------------------------


def test_no_tree_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kimpl, "_default_tree", None)
    monkeypatch.delenv(kimpl.ENV_VAR, raising=False)
    monkeypatch.setattr(kimpl, "default_linux_src", lambda: None)
    with pytest.raises(ImplementationError) as info:
        kimpl.factory()
    assert "\n" not in str(info.value) and "--linux-src" in str(info.value)
    line = kimpl.describe_kernel_impl()
    assert line.startswith("unavailable: no Linux tree") and "\n" not in line


def test_a_path_that_is_no_tree_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ImplementationError) as info:
        kimpl.factory(str(tmp_path / "nowhere"))
    assert "\n" not in str(info.value) and "nowhere" in str(info.value)
    (tmp_path / "Makefile").write_text("VERSION = 6\n")
    line = kimpl.describe_kernel_impl(str(tmp_path))
    assert line.startswith("unavailable: ") and "missing" in line and "\n" not in line


def test_set_default_tree_is_exported_to_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(kimpl.ENV_VAR, raising=False)
    monkeypatch.setattr(kimpl, "_default_tree", None)
    kimpl.set_default_tree(tmp_path)
    assert os.environ[kimpl.ENV_VAR] == str(tmp_path) and kimpl.default_tree() == tmp_path
    kimpl.set_default_tree(None)
    assert kimpl.ENV_VAR not in os.environ


# ---- on a real tree ----------------------------------------------------------------------------------


def _linux_src() -> Path | None:
    env = os.environ.get(kimpl.ENV_VAR)
    return Path(env) if env else default_linux_src()


@pytest.mark.kernel
@skip_if_missing(_linux_src() is None,
                    reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH")
class TestOnTheTree:
    def test_resolves_with_the_trees_version_and_the_v612_caps(self) -> None:
        ker = resolve("kernel")
        assert ker.name == "kernel"
        kb = build(_linux_src())
        assert ker.description == f"real JIT of linux {kb.version} ({_linux_src()})"
        if kb.features == F_6_12_117:
            assert ker.caps == replace(resolve("v6.12").caps, name="kernel")

    def test_ftrace_words_are_the_isas_auipc_t0_jalr_t0(self) -> None:
        ker = resolve("kernel")
        sled = SledLayout("kernel_function", 2, 0, 4, "t0")
        func = 0xFFFFFFFF80200000
        nop = 0x00000013  # addi zero, zero, 0
        for off, hi, lo in ((0x800, 1, -0x800), (0x7FF, 0, 0x7FF), (-0x800, 0, -0x800), (-0x801, -1, 0x7FF),
                            (0x1234_5678, 0x12345, 0x678), (-4, 0, -4)):
            got = ker.patcher.patch(sled, func, func + off, 0)
            want = _auipc(T0, hi).to_bytes(4, "little") + _jalr(T0, T0, lo).to_bytes(4, "little")
            assert got == want, (hex(off), got.hex(), want.hex())
        assert ker.patcher.init_sled(sled, func, 0) == nop.to_bytes(4, "little") * 2
        assert ker.patcher.unpatch(sled, func, 0) == nop.to_bytes(4, "little") * 2

    def test_ftrace_patch_equals_the_v612_era_patcher(self) -> None:
        ker, era = resolve("kernel"), resolve("v6.12")
        rnd = random.Random(6117)
        edges = (0x7FF, 0x800, 0x801, -0x800, -0x801, (1 << 31) - 0x801, (1 << 31) - 0x800, -(1 << 31),
                 -(1 << 31) - 0x800, 1 << 32, -(1 << 33))  # ftrace truncates far offsets to 32 bits
        for sled in era.caps.sleds_for("kernel_function"):
            for _ in range(3000):
                func = 0xFFFFFFFF80000000 + rnd.randrange(1 << 29) * 2
                off = rnd.choice(edges) + rnd.choice((0, 0, 2, -2)) if rnd.random() < 0.4 else rnd.randrange(-(1 << 32),
                                                                                                          1 << 32)
                target = (func + off) & ((1 << 64) - 1)
                assert ker.patcher.patch(sled, func, target, 0) == era.patcher.patch(sled, func, target, 0), (
                    sled.key, hex(func), hex(target))
            assert ker.patcher.init_sled(sled, 0xFFFFFFFF80200000, 0) == era.patcher.init_sled(sled, 0xFFFFFFFF80200000, 0)

    def test_a_work_tree_directory_and_a_header_without_make_call_t0(self, tmp_path: Path) -> None:
        src = _linux_src()
        assert src is not None
        kb = build(src)
        tree = tmp_path / "linux"
        for rel in NEEDED:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes((cache_root() / kb.content_hash / "tree" / rel).read_bytes())
        for rel, data in kftrace.read_ftrace_files(src, kb.tree_name).items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        ker = kimpl.factory(str(tree))
        assert ker.description == f"real JIT of linux {kb.version} ({tree})"
        assert ker.caps == resolve("kernel").caps
        header = tree / kftrace.FTRACE_H
        header.write_text(header.read_text().replace("#define make_call_t0", "#define sf_renamed_make_call_t0"))
        with pytest.raises(ImplementationError) as info:
            kimpl.factory(str(tree))
        assert "\n" not in str(info.value) and "make_call_t0" in str(info.value)

    def test_bpf_prologue_poke_goes_through_the_trees_text_poke(self) -> None:
        ker = resolve("kernel")
        sled = ker.caps.sleds_for("bpf_prog")[0]
        func = 0xFFFFFFFF01000000
        target = func + 0x1800
        got = ker.patcher.patch(sled, func, target, 0)
        # 25ad10658dc1: auipc t1, hi; jalr t0, lo(t1)
        want = _auipc(T1, 2).to_bytes(4, "little") + _jalr(T0, T1, -0x800).to_bytes(4, "little")
        assert got == want


# ---- the CLI's use of it -----------------------------------------------------------------------------


def test_impls_lists_kernel_as_unavailable_without_a_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sledfuzz.fuzz.cli import main

    assert main(["impls", "--linux-src", str(tmp_path)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("kernel ")]
    assert len(lines) == 1 and "unavailable: " in lines[0] and "missing Makefile" in lines[0]


@pytest.mark.kernel
@skip_if_missing(_linux_src() is None,
                    reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH")
def test_impls_lists_kernel_with_the_trees_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sledfuzz.fuzz.cli import main

    assert main(["impls"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("kernel ")]
    assert len(lines) == 1
    assert f"real JIT of linux {build(_linux_src()).version} " in lines[0]
