"""Feature probe: what a tree's RV64 trampoline JIT offers, and which known fixes it seems to carry.

Two kinds of fact, kept apart because they are used differently:

* **interface facts** decide what the tree is judged against (the sled the JIT emits and pokes,
  the poke API, the trampoline's node/link API, whether the JIT accepts fsession programs). They
  are declarations a developer does not edit while working on the code: ``RV_FENTRY_NINSNS``,
  ``bpf_arch_text_poke``'s declared parameters, ``struct bpf_tramp_nodes``,
  ``bpf_jit_supports_fsession``.
* **fix markers** (the text a known fix left in the JIT, commit named beside each) are only
  labels: a tree that lacks one gets the fix's known bug named next to its findings. They never
  change what is expected, so a work tree whose JIT was edited is judged, never refused.

Nothing here raises on a tree it cannot read: an unreadable fact takes the newest value and adds
one line to ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

OrigCall = Literal["skip_frame", "orig_stack", "call_orig"]
RetConvention = Literal["raw", "sext32", "btf"]


class ProbeError(Exception):
    """Kept for callers that catch it; the probe itself no longer raises."""


@dataclass(frozen=True)
class KernelFeatures:
    """Facts about one tree's trampoline JIT (SEMANTICS 3, 4), with the commit that brings each.

    The fix markers are None when the probe could not read them (see ``notes``).
    """

    #: 6801b0aef79d: arguments beyond a0-a7 are copied from the caller's stack (12 args, 24 slots)
    stack_args: bool
    #: a5912c37faf7: the outgoing stack-argument area is reserved only with CALL_ORIG
    stack_args_only_call_orig: bool
    #: 7112cd26e606: save_ret stores both a0 and a5 (16-byte retval area)
    saves_a0_and_a5: bool
    #: 1732ebc4a261: BPF_TRAMP_F_INDIRECT (or, 7.3, is_struct_ops_tramp) selects the one-frame layout
    indirect_frame: bool
    #: 10541b374aa0: ``mv s1, a0`` comes before the skip branch in invoke_bpf_prog
    mv_s1_before_branch: bool | None
    #: 9f1e16fb1fc9: the size pass loads RV_MAX_COUNT_IMM instead of the (absent) im pointer
    size_max_count_imm: bool
    #: fd2e08128944: struct_ops return values extended per BTF size and sign
    struct_ops_sign_extend: bool
    #: 2f1b0d3d7331: every BPF program's epilogue does ``addiw a0, a5, 0``
    prog_sext_return: bool
    #: when the JIT calls the original at func + RV_FENTRY_NBYTES (47c9214dcbea, 8f3e00af8e52)
    orig_call: OrigCall | None
    #: interface: ae4a3160d19c: bpf_arch_text_poke takes an old and a new poke type
    poke_old_new_types: bool
    #: build parameter: 51781ce8f448: patch_text() is given bytes, not instructions
    patch_text_bytes: bool
    #: interface: words of the entry sled the trampoline skips (``#define RV_FENTRY_NINSNS``)
    fentry_ninsns: int
    #: interface: the trampoline lists ``struct bpf_tramp_nodes`` (7.x) instead of links
    tramp_nodes: bool = False
    #: interface: ``bpf_jit_supports_fsession()`` returns true (7.x)
    fsession: bool = False
    #: interface: ``struct bpf_tramp_image`` has ``ip_after_call``: retiring an image pokes it into a
    #: jump over the fexit programs (6.x). 7.x records a skip per program instead (bpf_tramp_skip)
    #: and a retired image still runs its fexit programs; the eras do not model that yet.
    teardown_poke: bool = True
    #: interface: ``bpf_jit_supports_subprog_tailcalls()`` returns true (7.3): the tail-call count
    #: lives in a6 across calls, so the trampoline honours ``BPF_TRAMP_F_TAIL_CALL_CTX``
    subprog_tailcalls: bool = False
    #: one line per fact the probe could not read (it took the newest value)
    notes: tuple[str, ...] = field(default=())

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
    """Text of the definition of ``name`` (from its signature to the closing brace at column 0); "" if absent."""
    m = re.search(rf"^[a-z].*\b{re.escape(name)}\(", src, re.MULTILINE)
    if m is None:
        return ""
    end = src.find("\n}\n", m.start())
    return src[m.start() : end + 3] if end >= 0 else ""


def _poke_types(bpf_h: str, poke: str) -> int | None:
    """How many ``enum bpf_text_poke_type`` parameters bpf_arch_text_poke declares (header first)."""
    decl = re.search(r"\bint bpf_arch_text_poke\(([^;{]*)\)\s*;", bpf_h)
    text = decl.group(1) if decl else poke[: poke.find(")")] if poke else ""
    n = text.count("enum bpf_text_poke_type")
    return n if n in (1, 2) else None


def probe_source(src: str, bpf_h: str = "") -> KernelFeatures:
    """Read the features out of the text of ``bpf_jit_comp64.c`` (and ``include/linux/bpf.h``)."""
    notes: list[str] = []
    tramp = _function_body(src, "__arch_prepare_bpf_trampoline")
    invoke = _function_body(src, "invoke_bpf_prog")
    poke = _function_body(src, "bpf_arch_text_poke")
    epilogue = _function_body(src, "__build_epilogue")
    for name, body in (("__arch_prepare_bpf_trampoline", tramp), ("invoke_bpf_prog", invoke),
                       ("bpf_arch_text_poke", poke)):
        if not body:
            notes.append(f"probe: no definition of {name}() found; its fix markers read as present")

    # --- interface facts -------------------------------------------------------------------
    ninsns = re.search(r"#define RV_FENTRY_NINSNS (\d+)", src)
    if ninsns is None:
        notes.append("probe: no '#define RV_FENTRY_NINSNS N': the 2-word sled assumed")
    n_types = _poke_types(bpf_h, poke)
    if n_types is None:
        notes.append("probe: bpf_arch_text_poke's poke-type parameters unreadable: the old/new API assumed")
    tramp_nodes = "struct bpf_tramp_nodes {" in bpf_h if bpf_h else "struct bpf_tramp_nodes" in src
    fsession = "return true" in _function_body(src, "bpf_jit_supports_fsession")
    subprog_tailcalls = "return true" in _function_body(src, "bpf_jit_supports_subprog_tailcalls")

    # --- fix markers (labels only) ------------------------------------------------------------
    def marker(present: bool, where: str) -> bool:
        return present or not where  # a function the probe cannot find reads as carrying the fix

    # 6801b0aef79d: store_args() loads slots >= 8 from the caller's stack ("(i - RV_MAX_REG_ARGS)").
    stack_args = "(i - RV_MAX_REG_ARGS)" in src or not src
    # a5912c37faf7: "(flags & BPF_TRAMP_F_CALL_ORIG) && (nr_arg_slots - RV_MAX_REG_ARGS ..."
    stack_args_only_call_orig = marker(bool(
        re.search(r"BPF_TRAMP_F_CALL_ORIG\)\s*&&\s*\(nr_arg_slots\s*-\s*RV_MAX_REG_ARGS", tramp)), tramp)
    # 7112cd26e606: save_ret stores R0 (a5) at "-(retval_off - 8)" too.
    saves_a0_and_a5 = marker(bool(re.search(r"-\(retval_off - 8\)", invoke)), invoke)
    # 1732ebc4a261: "is_struct_ops = flags & BPF_TRAMP_F_INDIRECT" (7.3: "= is_struct_ops_tramp(").
    indirect_frame = marker(bool(re.search(r"=\s*(flags\s*&\s*BPF_TRAMP_F_INDIRECT|is_struct_ops_tramp\()",
                                           tramp)), tramp)
    # 10541b374aa0: "emit_mv(RV_REG_S1, RV_REG_A0" precedes "branch_off = ctx->ninsns".
    mv = invoke.find("emit_mv(RV_REG_S1, RV_REG_A0")
    branch = invoke.find("branch_off = ctx->ninsns")
    mv_first: bool | None = mv < branch if mv >= 0 and branch >= 0 else None
    if mv_first is None and invoke:
        notes.append("probe: invoke_bpf_prog: no 'mv s1, a0' or no branch placeholder (10541b374aa0 unread)")
    # 9f1e16fb1fc9: "ctx->insns ? (const s64)im : RV_MAX_COUNT_IMM".
    size_max_count_imm = marker("RV_MAX_COUNT_IMM" in tramp, tramp)
    # fd2e08128944: "sign_extend(RV_REG_A0, regmap[BPF_REG_0], m->ret_size" for struct_ops.
    struct_ops_sign_extend = marker(bool(re.search(r"sign_extend\(RV_REG_A0,[^;]*m->ret_size", tramp)), tramp)
    # 2f1b0d3d7331: the program epilogue "emit_addiw(RV_REG_A0, RV_REG_A5, 0".
    prog_sext_return = marker("emit_addiw(RV_REG_A0, RV_REG_A5, 0" in epilogue, epilogue)
    # orig_call: the condition before "orig_call += RV_FENTRY_NINSNS * 4;": SKIP_FRAME
    # (25ad10658dc1), ORIG_STACK (47c9214dcbea), or none inside the CALL_ORIG block (8f3e00af8e52).
    orig_call: OrigCall | None = None
    orig = re.search(r"\n([^\n]*)\n\s*orig_call \+= RV_FENTRY_NINSNS \* 4;", tramp)
    if orig is None:
        if tramp:
            notes.append("probe: no 'orig_call += RV_FENTRY_NINSNS * 4' in the trampoline: how the original is "
                         "called was not read; judged against the newest expectation")
    elif "BPF_TRAMP_F_SKIP_FRAME" in orig.group(1):
        orig_call = "skip_frame"
    elif "BPF_TRAMP_F_ORIG_STACK" in orig.group(1):
        orig_call = "orig_stack"
    else:
        orig_call = "call_orig"
    # 51781ce8f448: "patch_text(ip, new_insns, RV_FENTRY_NBYTES)" (was RV_FENTRY_NINSNS).
    patch_text_bytes = not re.search(r"patch_text\([^;]*RV_FENTRY_NINSNS\b", poke)
    return KernelFeatures(
        stack_args=stack_args,
        stack_args_only_call_orig=stack_args_only_call_orig,
        saves_a0_and_a5=saves_a0_and_a5,
        indirect_frame=indirect_frame,
        mv_s1_before_branch=mv_first,
        size_max_count_imm=size_max_count_imm,
        struct_ops_sign_extend=struct_ops_sign_extend,
        prog_sext_return=prog_sext_return,
        orig_call=orig_call,
        poke_old_new_types=n_types != 1,
        patch_text_bytes=patch_text_bytes,
        fentry_ninsns=int(ninsns.group(1)) if ninsns else 2,
        tramp_nodes=tramp_nodes,
        fsession=fsession,
        subprog_tailcalls=subprog_tailcalls,
        teardown_poke="void *ip_after_call;" in bpf_h if bpf_h else True,
        notes=tuple(notes),
    )
