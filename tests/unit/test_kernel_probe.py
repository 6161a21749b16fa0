"""The feature probe and the build's text handling: each marker flips its feature, and only it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sledfuzz.emu.kernel.build import JIT_C, KernelBuildError, default_linux_src, kernel_version, read_tree, rewrite_jit
from sledfuzz.emu.kernel.probe import probe_source
from tests.support.tools import skip_if_missing


def _linux_src() -> Path | None:
    env = os.environ.get("SLEDFUZZ_LINUX_SRC")
    return Path(env) if env else default_linux_src()


needs_tree = skip_if_missing(
    _linux_src() is None,
    reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH",
)


def test_version_comes_from_the_makefile() -> None:
    makefile = "# x\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n"
    assert kernel_version(makefile) == "6.12.117"
    assert kernel_version(makefile.replace("EXTRAVERSION =", "EXTRAVERSION = -rc3")) == "6.12.117-rc3"
    with pytest.raises(KernelBuildError):
        kernel_version("all:\n\techo\n")


def test_rewrite_maps_both_casts() -> None:
    src = "emit_imm(RV_REG_A0, (const s64)p, ctx);\nemit_imm(RV_REG_A1, (const s64)p->insnsi, ctx);\n"
    out, counts, notes = rewrite_jit(src + "emit_imm(RV_REG_A0, ctx->insns ? (const s64)im : 0, ctx);\n")
    assert "(const s64)sf_kaddr(p)," in out
    assert "(const s64)p->insnsi" in out  # a field of the prog, not the prog: left alone
    assert dict(counts) == {"im": 1, "prog": 1} and notes == ()


def test_a_missing_cast_falls_back_to_mapping_every_emit_imm_and_says_so() -> None:
    src = ("static void emit_imm(u8 rd, s64 val, struct rv_jit_context *ctx)\n{\n\temit_imm(rd, val >> 12, ctx);\n}\n"
           "emit_imm(RV_REG_A0, (const s64)p, ctx);\n")
    out, counts, notes = rewrite_jit(src)
    assert "static void emit_imm(u8 rd" in out  # the definition keeps its name
    assert "SF_EMIT_IMM(rd, val >> 12, ctx)" in out and "SF_EMIT_IMM(RV_REG_A0, (const s64)sf_kaddr(p), ctx)" in out
    assert dict(counts)["emit_imm"] == 2
    assert len(notes) == 1 and "no im pointer" in notes[0] and "\n" not in notes[0]


def test_probe_reads_text_that_is_not_the_jit_with_notes_not_errors() -> None:
    f = probe_source("int main(void) { return 0; }\n")
    assert f.fentry_ninsns == 2 and f.poke_api == 2  # the newest interface
    assert f.orig_call is None and any("RV_FENTRY_NINSNS" in n for n in f.notes)


@pytest.fixture(scope="module")
def jit_source() -> str:
    src = _linux_src()
    assert src is not None
    files, _, _ = read_tree(src)
    return files[JIT_C].decode()


@pytest.mark.kernel
@needs_tree
def test_debian_6_12_carries_every_fix_the_brief_names(jit_source: str) -> None:
    f = probe_source(jit_source)
    assert f.stack_args and f.max_arg_slots == 24  # 6801b0aef79d (v6.11)
    assert f.saves_a0_and_a5  # 7112cd26e606
    assert f.indirect_frame  # 1732ebc4a261
    assert f.mv_s1_before_branch  # 10541b374aa0
    assert f.size_max_count_imm  # 9f1e16fb1fc9
    assert f.struct_ops_sign_extend and f.ret_convention == "btf"  # fd2e08128944, stable backport
    assert f.orig_call == "skip_frame"  # neither 47c9214dcbea nor 8f3e00af8e52
    assert not f.poke_old_new_types and f.poke_api == 1  # before ae4a3160d19c
    assert f.patch_text_bytes  # 51781ce8f448 (v6.11)
    assert f.fentry_ninsns == 2


def _one_line(src: str, old: str, new: str) -> str:
    assert src.count(old) >= 1, old
    return src.replace(old, new)


@pytest.mark.kernel
@needs_tree
def test_each_marker_flips_its_feature(jit_source: str) -> None:
    base = probe_source(jit_source)

    moved = _one_line(
        jit_source,
        "\t/* store prog start time */\n\temit_mv(RV_REG_S1, RV_REG_A0, ctx);\n",
        "",
    )
    moved = _one_line(
        moved,
        "\temit(rv_nop(), ctx);\n\n\t/* arg1: &args_off */",
        "\temit(rv_nop(), ctx);\n\temit_mv(RV_REG_S1, RV_REG_A0, ctx);\n\n\t/* arg1: &args_off */",
    )
    assert not probe_source(moved).mv_s1_before_branch

    orig_stack = _one_line(
        jit_source,
        "if (flags & BPF_TRAMP_F_SKIP_FRAME)\n\t\torig_call",
        "if (flags & BPF_TRAMP_F_ORIG_STACK)\n\t\torig_call",
    )
    assert probe_source(orig_stack).orig_call == "orig_stack"

    sizing = _one_line(jit_source, "ctx->insns ? (const s64)im : RV_MAX_COUNT_IMM", "(const s64)im")
    assert not probe_source(sizing).size_max_count_imm

    new_poke = _one_line(
        jit_source,
        "int bpf_arch_text_poke(void *ip, enum bpf_text_poke_type poke_type,",
        "int bpf_arch_text_poke(void *ip, enum bpf_text_poke_type old_t, enum bpf_text_poke_type new_t,",
    )
    assert probe_source(new_poke).poke_api == 2

    seed_bug = _one_line(jit_source, "orig_call += RV_FENTRY_NINSNS * 4;", "orig_call += RV_FENTRY_NINSNS * 8;")
    unread = probe_source(seed_bug)
    assert unread.orig_call is None and len(unread.notes) == 1 and "orig_call" in unread.notes[0]

    for variant in (moved, orig_stack, sizing, new_poke):
        changed = {k for k, v in vars(probe_source(variant)).items() if vars(base)[k] != v}
        assert len(changed) == 1, changed
