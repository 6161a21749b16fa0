"""Feature probe: what a tree's RV64 trampoline JIT contains, read from its source text.

Stable kernels carry backports (6.12.117 has fd2e08128944, which mainline only got later), so a
version number says little; each feature below is decided by the text that marks it, named in the
comment beside it. The probe reads ``arch/riscv/net/bpf_jit_comp64.c`` and nothing else, and
fails with ``ProbeError`` when a marker it needs is absent in every known spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

OrigCall = Literal["skip_frame", "orig_stack", "call_orig"]
RetConvention = Literal["raw", "sext32", "btf"]


class ProbeError(Exception):
    """The JIT source does not look like any RV64 trampoline JIT the probe knows."""


@dataclass(frozen=True)
class KernelFeatures:
    """Facts about one tree's trampoline JIT (SEMANTICS 3, 4), with the commit that brings each."""

    #: 6801b0aef79d: arguments beyond a0-a7 are copied from the caller's stack (12 args, 24 slots)
    stack_args: bool
    #: a5912c37faf7: the outgoing stack-argument area is reserved only with CALL_ORIG
    stack_args_only_call_orig: bool
    #: 7112cd26e606: save_ret stores both a0 and a5 (16-byte retval area)
    saves_a0_and_a5: bool
    #: 1732ebc4a261: BPF_TRAMP_F_INDIRECT selects the one-frame "called directly" layout
    indirect_frame: bool
    #: 10541b374aa0: ``mv s1, a0`` comes before the skip branch in invoke_bpf_prog
    mv_s1_before_branch: bool
    #: 9f1e16fb1fc9: the size pass loads RV_MAX_COUNT_IMM instead of the (absent) im pointer
    size_max_count_imm: bool
    #: fd2e08128944: struct_ops return values extended per BTF size and sign
    struct_ops_sign_extend: bool
    #: 2f1b0d3d7331: every BPF program's epilogue does ``addiw a0, a5, 0``
    prog_sext_return: bool
    #: when the JIT calls the original at func + RV_FENTRY_NBYTES (47c9214dcbea, 8f3e00af8e52)
    orig_call: OrigCall
    #: ae4a3160d19c: bpf_arch_text_poke takes an old and a new poke type
    poke_old_new_types: bool
    #: 51781ce8f448: patch_text() is given bytes, not instructions
    patch_text_bytes: bool
    #: words of the entry sled the trampoline skips
    fentry_ninsns: int

    @property
    def max_args(self) -> int:
        return 12

    @property
    def max_arg_slots(self) -> int:
        """8 register slots before 6801b0aef79d; 12 args of up to 2 slots after."""
        return 24 if self.stack_args else 8

    @property
    def ret_convention(self) -> RetConvention:
        if self.struct_ops_sign_extend:
            return "btf"
        return "sext32" if self.prog_sext_return else "raw"

    @property
    def poke_api(self) -> int:
        """1: ``(ip, type, old, new)``; 2: ``(ip, old_type, new_type, old, new)``."""
        return 2 if self.poke_old_new_types else 1


def _function_body(src: str, name: str) -> str:
    """Text of the definition of ``name`` (from its signature to the closing brace at column 0)."""
    m = re.search(rf"^[a-z].*\b{re.escape(name)}\(", src, re.MULTILINE)
    if m is None:
        raise ProbeError(f"no definition of {name}() in the JIT source")
    end = src.find("\n}\n", m.start())
    if end < 0:
        raise ProbeError(f"cannot find the end of {name}()")
    return src[m.start() : end + 3]


def probe_source(src: str) -> KernelFeatures:
    """Read the features out of the text of ``bpf_jit_comp64.c``."""
    tramp = _function_body(src, "__arch_prepare_bpf_trampoline")
    invoke = _function_body(src, "invoke_bpf_prog")
    poke = _function_body(src, "bpf_arch_text_poke")
    epilogue = _function_body(src, "__build_epilogue")

    # 6801b0aef79d: store_args() loads slots >= 8 from the caller's stack,
    # "16 + (i - RV_MAX_REG_ARGS) * 8" off fp; before it, more than 8 slots were refused.
    stack_args = "(i - RV_MAX_REG_ARGS)" in src
    # a5912c37faf7: "if ((flags & BPF_TRAMP_F_CALL_ORIG) && (nr_arg_slots - RV_MAX_REG_ARGS > 0))"
    # guards the stack-argument area.
    stack_args_only_call_orig = bool(
        re.search(r"BPF_TRAMP_F_CALL_ORIG\)\s*&&\s*\(nr_arg_slots\s*-\s*RV_MAX_REG_ARGS", tramp)
    )
    # 7112cd26e606: invoke_bpf_prog's save_ret stores a0 at -retval_off and R0 (a5) at
    # "-(retval_off - 8)".
    saves_a0_and_a5 = bool(re.search(r"-\(retval_off - 8\)", invoke))
    # 1732ebc4a261: "is_struct_ops = flags & BPF_TRAMP_F_INDIRECT" picks the frame.
    indirect_frame = bool(re.search(r"=\s*flags\s*&\s*BPF_TRAMP_F_INDIRECT", tramp))
    # 10541b374aa0: "emit_mv(RV_REG_S1, RV_REG_A0" precedes "branch_off = ctx->ninsns".
    mv = invoke.find("emit_mv(RV_REG_S1, RV_REG_A0")
    branch = invoke.find("branch_off = ctx->ninsns")
    if mv < 0 or branch < 0:
        raise ProbeError("invoke_bpf_prog: no 'mv s1, a0' or no branch placeholder")
    # 9f1e16fb1fc9: "ctx->insns ? (const s64)im : RV_MAX_COUNT_IMM" in the trampoline.
    size_max_count_imm = "RV_MAX_COUNT_IMM" in tramp
    # fd2e08128944: "sign_extend(RV_REG_A0, regmap[BPF_REG_0], m->ret_size" for struct_ops.
    struct_ops_sign_extend = bool(re.search(r"sign_extend\(RV_REG_A0,[^;]*m->ret_size", tramp))
    # 2f1b0d3d7331: the program epilogue "emit_addiw(RV_REG_A0, RV_REG_A5, 0" (was emit_mv).
    prog_sext_return = "emit_addiw(RV_REG_A0, RV_REG_A5, 0" in epilogue
    # orig_call: the statement that adds the sled size, and the condition right before it:
    # "if (flags & BPF_TRAMP_F_SKIP_FRAME)" (25ad10658dc1), "... ORIG_STACK" (47c9214dcbea), or
    # none, inside the CALL_ORIG block (8f3e00af8e52).
    orig = re.search(r"\n([^\n]*)\n\s*orig_call \+= RV_FENTRY_NINSNS \* 4;", tramp)
    if orig is None:
        raise ProbeError("__arch_prepare_bpf_trampoline: no 'orig_call += RV_FENTRY_NINSNS * 4'")
    cond = orig.group(1)
    orig_call: OrigCall
    if "BPF_TRAMP_F_SKIP_FRAME" in cond:
        orig_call = "skip_frame"
    elif "BPF_TRAMP_F_ORIG_STACK" in cond:
        orig_call = "orig_stack"
    else:
        orig_call = "call_orig"
    # ae4a3160d19c: the definition's parameters name two "enum bpf_text_poke_type".
    signature = poke[: poke.find(")")]
    n_types = signature.count("enum bpf_text_poke_type")
    if n_types not in (1, 2):
        raise ProbeError("bpf_arch_text_poke: unknown signature")
    # 51781ce8f448: "patch_text(ip, new_insns, RV_FENTRY_NBYTES)" (was RV_FENTRY_NINSNS).
    patch_text_bytes = bool(re.search(r"patch_text\([^;]*RV_FENTRY_NBYTES", poke))
    ninsns = re.search(r"#define RV_FENTRY_NINSNS (\d+)", src)
    if ninsns is None:
        raise ProbeError("no '#define RV_FENTRY_NINSNS'")
    return KernelFeatures(
        stack_args=stack_args,
        stack_args_only_call_orig=stack_args_only_call_orig,
        saves_a0_and_a5=saves_a0_and_a5,
        indirect_frame=indirect_frame,
        mv_s1_before_branch=mv < branch,
        size_max_count_imm=size_max_count_imm,
        struct_ops_sign_extend=struct_ops_sign_extend,
        prog_sext_return=prog_sext_return,
        orig_call=orig_call,
        poke_old_new_types=n_types == 2,
        patch_text_bytes=patch_text_bytes,
        fentry_ninsns=int(ninsns.group(1)),
    )
