"""The eras: one small declarative description per kernel version (archinfo style).

An era says what its sleds look like and how its trampoline JIT behaves, as data; ``jit.py`` reads
the description and never branches on an era's name. Each behaviour that a fix changed names the
fix in ``fixes``; ``REVERTS`` says, per fix, which fields the revert flips back and which known bug
(invariants) that brings, so that ``ERA-pre-COMMIT`` is derived rather than written by hand.
Facts: SEMANTICS 1-4; the ``v6.12`` era is checked byte for byte against Debian's 6.12.117 tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from model.caps import EntryScheme, KnownBug, RetConvention, SledLayout

#: RV_MAX_COUNT_IMM: the immediate with the longest ``li`` (9f1e16fb1fc9's sizing value).
RV_MAX_COUNT_IMM = 0x7FFF7FF7FF7FF7FF
#: The sizing pass's on-stack ``struct bpf_tramp_image`` before 9f1e16fb1fc9 (26ef208c209a):
#: a kernel-stack-like address whose ``li`` is short (c.li; c.slli), so that a real ``im`` in
#: the kernel's linear map emits a longer ``li`` and overruns the sized image.
STACK_IM = 0xFFFFFFC800000000

FtraceScheme = Literal["detour16", "t0", "atomic"]
BpfSled = Literal["detour16", "t0"]
Frames = Literal["one", "two"]
OrigCall = Literal["skip_frame", "orig_stack", "call_orig"]
Retval = Literal["a5_only", "a0_a5"]
SizePass = Literal["same_im", "local_im", "max_count"]
StructOpsFrame = Literal["no_frame_rule", "func_addr", "indirect", "struct_ops_link"]
StructOpsRet = Literal["slot", "btf"]
PokeKinds = Literal["single", "old_new"]
Teardown = Literal["ip_after_call", "prog_skips"]


@dataclass(frozen=True)
class Era:
    """One kernel version's ftrace sleds and trampoline JIT, with its fixes and known bugs.

    Fields (each names the commit that set its current value in the docstring of ``ERAS``):

    * ``ftrace``: kernel-function sled scheme (``detour16`` / ``t0`` / ``atomic``);
      ``ftrace_preemptible``: a task may be preempted inside a two-word sled (before 8547649981e6);
      ``kernel_sleds``: the compiler layouts (``-fpatchable-function-entry``) it supports.
    * ``bpf_sled``: BPF prologue sled and its MOD_CALL poke (4 nops + 16-byte detour, or 2 + t0);
      ``poke_kinds``: one poke type for both sides, or old and new kinds (ae4a3160d19c).
    * ``frames``: ``one`` (49b5e77ae3e2: [FP-8] parent ra written by the sled, [FP-16] entry ra,
      [FP-24] fp) or ``two`` (25ad10658dc1: the traced function's frame, then the trampoline's);
      ``skip``: bytes added to func_addr for the orig call (16 / 8); ``orig_call``: the condition
      under which it is added (SKIP_FRAME; ORIG_STACK after 47c9214dcbea; always with CALL_ORIG
      after 8f3e00af8e52).
    * ``retval``: progs save only a5 into an 8-byte slot, or a0 and a5 (7112cd26e606).
    * ``max_arg_slots`` 8, or 24 with the caller's stack words (6801b0aef79d).
    * ``mv_s1_before_branch``: 10541b374aa0. ``size_pass``: which ``im`` the sizing pass puts in
      ``li a0, im`` (the real one in an internal pass before 26ef208c209a; a stack local after it;
      RV_MAX_COUNT_IMM since 9f1e16fb1fc9, which also added the -E2BIG check).
    * ``struct_ops_frame``: how the directly called frame is chosen (none; func_addr == NULL,
      25ad10658dc1; INDIRECT, 1732ebc4a261); ``struct_ops_ret``: a0 reloaded from its slot, or
      derived from a5 per the BTF return type (fd2e08128944).
    * ``ro_copy``: built in a RW buffer and copied to the RO pack (2382a405c581).
    * ``prog_a0``: what a program's a0 is (raw R0 before 2f1b0d3d7331, then sext.w(R0)).
    * ``teardown``: ``ip_after_call`` (6.x: two nops after the original's call, poked into a jump
      to ``ip_epilogue`` when the image is retired) or ``prog_skips`` (7.x: no such site; a 4-byte
      nop before every program call, recorded as a ``bpf_tramp_skip`` and patched into a ``jal``
      over that call when the program is detached).
    * ``fsession``: the JIT runs session programs in the fentry and the fexit phase, writes the
      ``func_meta`` word (slots, cookie index << 8, IS_RETURN << 63) and one zeroed cookie slot per
      session program that calls ``bpf_session_cookie`` (7.x, ``bpf_jit_supports_fsession``).
    * ``tail_call_ctx``: ``BPF_TRAMP_F_TAIL_CALL_CTX`` is honoured: a6 (the tail-call count) saved
      on entry, reloaded before the original is called, stored back after it, restored on exit
      (7.3, with ``bpf_jit_supports_subprog_tailcalls``). ``struct_ops_frame = struct_ops_link``:
      the frame (and the BTF return extension) follow ``is_struct_ops_tramp()``, i.e. one fentry
      node of a struct_ops link, not the INDIRECT flag (7.3).
    """

    name: str
    summary: str
    ftrace: FtraceScheme
    ftrace_preemptible: bool
    kernel_sleds: tuple[tuple[int, int, Literal[2, 4]], ...]
    bpf_sled: BpfSled
    poke_kinds: PokeKinds
    direct_calls: bool
    frames: Frames
    skip: int
    orig_call: OrigCall
    retval: Retval
    max_arg_slots: int
    mv_s1_before_branch: bool
    size_pass: SizePass
    struct_ops_frame: StructOpsFrame
    struct_ops_ret: StructOpsRet
    ro_copy: bool
    prog_a0: Literal["raw", "sext32"]
    fixes: frozenset[str]
    known_bugs: tuple[KnownBug, ...] = field(default=())
    derives_from: str | None = None  # for a bug configuration: the clean configuration
    teardown: Teardown = "ip_after_call"
    fsession: bool = False
    tail_call_ctx: bool = False

    @property
    def ret_convention(self) -> RetConvention:
        """The Capabilities spelling: raw programs; else sext32, or btf once struct_ops follow BTF."""
        if self.prog_a0 == "raw":
            return "raw"
        return "btf" if self.struct_ops_ret == "btf" else "sext32"

    @property
    def call_ops(self) -> bool:
        return self.ftrace == "atomic"

    def sleds(self) -> tuple[SledLayout, ...]:
        """Declared layouts: kernel-function sleds, the BPF prologue, and struct_ops' nominal one.

        struct_ops has no sled (the trampoline is called through a function pointer); it is
        declared as ``1,0/w`` with scheme ``direct`` so that a case can name it.
        """
        kscheme: EntryScheme = "ra_detour" if self.ftrace == "detour16" else "t0"
        out = [SledLayout("kernel_function", n, m, w, kscheme, call_ops=self.call_ops) for n, m, w in self.kernel_sleds]
        if self.bpf_sled == "detour16":
            out.append(SledLayout("bpf_prog", 4, 0, 4, "ra_detour"))
        else:
            out.append(SledLayout("bpf_prog", 2, 0, 4, "t0"))
        out.append(SledLayout("struct_ops", 1, 0, 4, "direct"))
        return tuple(out)


def _bug(commit: str, summary: str, *invariants: str) -> KnownBug:
    return KnownBug(commit, frozenset(invariants), summary)


# Known bugs, by the commit that fixes them (SEMANTICS 4). The invariant sets are what the bug
# can make fail on a case the configuration accepts; a trampoline that returns into garbage
# takes every later observation with it, hence the wider sets for those.
BUGS: dict[str, KnownBug] = {
    "7112cd26e606": _bug("7112cd26e606", "progs' return saved from a5 only: a0/a5 returned to the parent are wrong; "
                         "the fmod_ret test sees the 64-bit R0, so R0 = 0x1_0000_0000 skips the original",
                         "I-RETURN-VALUE", "I-RETVAL-SEEN", "I-BODY-RUNS", "I-ORDER", "I-PROG-PROTOCOL"),
    "2f1b0d3d7331": _bug("2f1b0d3d7331", "a program's a0 is its raw R0, not sext.w(R0): the parent gets a "
                         "non-ABI int, and the fmod_ret test on a0 skips the original for R0 = 0x1_0000_0000",
                         "I-RETURN-VALUE", "I-BODY-RUNS", "I-ORDER", "I-PROG-PROTOCOL", "I-RETVAL-SEEN"),
    "1732ebc4a261": _bug("1732ebc4a261",
                         "struct_ops frame chosen by func_addr: a non-NULL func_addr gets the entry-style "
                         "epilogue, which returns through the caller's t0",
                         "I-RETURN-TARGET", "I-NO-FAULT", "I-TERMINATES", "I-UNWIND", "I-RETURN-VALUE"),
    "10541b374aa0": _bug("10541b374aa0", "mv s1, a0 after the skip branch: a skipped prog's exit gets a stale start",
                         "I-PROG-PROTOCOL"),
    "9f1e16fb1fc9": _bug("9f1e16fb1fc9", "size pass with another im: li a0, im longer when emitted than sized",
                         "I-SIZE"),
    "8f3e00af8e52": _bug("8f3e00af8e52", "orig_call += 8 keyed on ORIG_STACK (never set on riscv): the orig call "
                         "re-enters the sled, infinite recursion",
                         "I-NO-RECURSION", "I-TERMINATES", "I-BODY-RUNS", "I-ORDER", "I-PROG-PROTOCOL",
                         "I-STACK-BOUNDS", "I-NO-FAULT", "I-SP", "I-RETURN-VALUE", "I-RETVAL-SEEN", "I-UNWIND",
                         # the orig call enters the function at func+0, not past the sled
                         "I-SLED-CONSISTENT"),
    "fd2e08128944": _bug("fd2e08128944", "struct_ops return value sign-extended from 32 bits regardless of its BTF type",
                         "I-RETURN-VALUE"),
    "8547649981e6": _bug("8547649981e6", "two-word sled patched with preemption: a task resumes into old auipc + new jalr",
                         "I-TORN"),
    "25ad10658dc1": _bug("25ad10658dc1",
                         "pre-6.6 trampoline on the 8-byte t0 sled: body entered at func+16, fentry-only returns "
                         "to the parent (body skipped), SKIP_FRAME returns through an unwritten [sp-8]",
                         "I-BODY-RUNS", "I-RETURN-TARGET", "I-RETURN-VALUE", "I-PARENT-RA", "I-NO-FAULT",
                         "I-TERMINATES", "I-SP", "I-CALLEE-SAVED", "I-ARGS-PASSED", "I-RETVAL-SEEN", "I-ORDER",
                         "I-PROG-PROTOCOL", "I-STACK-BOUNDS", "I-UNWIND", "I-SLED-CONSISTENT", "I-TEARDOWN",
                         # knock-on: the original entered past its prologue trashes the trampoline's
                         # frame, so what later programs read from ctx is garbage too
                         "I-ARGS-SEEN", "I-NARGS", "I-IP-ARG", "I-NO-RECURSION"),
    # 25ad10658dc1 v2 also added frame A ("we will miss one layer when unwinding"): the one-frame
    # v6.3 trampoline lets an unwinder skip the traced function. Declared apart from the sled
    # mismatch above so that v6.3 on its own BPF-program targets may break only I-UNWIND.
    "25ad10658dc1/unwind": KnownBug("25ad10658dc1", frozenset({"I-UNWIND"}),
                                    "one trampoline frame: the unwinder misses the traced function's layer"),
}

#: What reverting a fix flips back. Applying the overrides to an era that carries the fix gives
#: the era as it was just before the fix, everything else unchanged.
REVERTS: dict[str, dict[str, object]] = {
    "7112cd26e606": {"retval": "a5_only"},
    "2f1b0d3d7331": {"prog_a0": "raw"},
    "1732ebc4a261": {"struct_ops_frame": "func_addr"},
    "10541b374aa0": {"mv_s1_before_branch": False},
    "9f1e16fb1fc9": {"size_pass": "local_im"},
    "8f3e00af8e52": {"orig_call": "orig_stack"},
    "fd2e08128944": {"struct_ops_ret": "slot"},
    "8547649981e6": {"ftrace_preemptible": True},
}

_T0_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((4, 0, 2), (2, 0, 4))
_OPS_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((8, 4, 2), (4, 2, 4))
_DETOUR_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((8, 0, 2), (4, 0, 4))

_V63_FIXES = frozenset({"596f2e6f9cf4", "49b5e77ae3e2", "6724a76cff85", "409c8fb20c66", "8547649981e6"})
_V66_FIXES = _V63_FIXES | {"25ad10658dc1", "2f1b0d3d7331", "7112cd26e606"}
_V68_FIXES = _V66_FIXES | {"196c79f19a92", "1732ebc4a261", "2cd3e3772e41", "26ef208c209a"}
_V611_FIXES = _V68_FIXES | {"10541b374aa0", "6801b0aef79d", "a5912c37faf7", "9f1e16fb1fc9", "2382a405c581",
                            "51781ce8f448"}
_V612_FIXES = _V611_FIXES | {"fd2e08128944"}  # Debian 6.12.117: stable backport, read in the tree
_V616_FIXES = _V611_FIXES | {"b2137c3b6d7a", "5aa4ef955884", "c217157bcd1d", "b21cdb9523e5", "d0262e907e29"}
_NEXT47_FIXES = _V616_FIXES | {"fd2e08128944", "47c9214dcbea"}
_V619_FIXES = _NEXT47_FIXES | {"8f3e00af8e52", "ae4a3160d19c"}


V6_3 = Era(
    name="v6.3",
    summary="first RV64 trampoline (596f2e6f9cf4/49b5e77ae3e2): BPF-program targets only, 16-byte ra detour poke, "
            "one frame, 16-byte skip, a5-only retval, raw a0",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="detour16", poke_kinds="single", direct_calls=False,
    frames="one", skip=16, orig_call="skip_frame", retval="a5_only", max_arg_slots=8,
    mv_s1_before_branch=False, size_pass="same_im", struct_ops_frame="no_frame_rule", struct_ops_ret="slot",
    ro_copy=False, prog_a0="raw", fixes=_V63_FIXES,
    known_bugs=(BUGS["7112cd26e606"], BUGS["2f1b0d3d7331"], BUGS["10541b374aa0"], BUGS["25ad10658dc1/unwind"],
                BUGS["fd2e08128944"]),
)

V6_6 = Era(
    name="v6.6",
    summary="25ad10658dc1 two frames + t0/ra scheme + 8-byte skip + 2-nop BPF sled, 2f1b0d3d7331 sext.w a0, "
            "7112cd26e606 a0 and a5 saved; still no ftrace direct calls",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=False,
    frames="two", skip=8, orig_call="skip_frame", retval="a0_a5", max_arg_slots=8,
    mv_s1_before_branch=False, size_pass="same_im", struct_ops_frame="func_addr", struct_ops_ret="slot",
    ro_copy=False, prog_a0="sext32", fixes=_V66_FIXES,
    # fd2e08128944 is in v6.6's code too, but unobservable here: under the modern core's non-NULL
    # func_addr, 1732ebc4a261 sends every struct_ops call out through t0 before its return value
    # matters. A declared bug is a promise that the search finds it, so it is not declared.
    known_bugs=(BUGS["10541b374aa0"], BUGS["1732ebc4a261"]),
)

V6_8 = Era(
    name="v6.8",
    summary="196c79f19a92 ftrace direct calls (kernel functions attachable), 1732ebc4a261 struct_ops frame by "
            "INDIRECT; 26ef208c209a sizes with an on-stack im",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=True,
    frames="two", skip=8, orig_call="skip_frame", retval="a0_a5", max_arg_slots=8,
    mv_s1_before_branch=False, size_pass="local_im", struct_ops_frame="indirect", struct_ops_ret="slot",
    ro_copy=False, prog_a0="sext32", fixes=_V68_FIXES,
    known_bugs=(BUGS["10541b374aa0"], BUGS["9f1e16fb1fc9"], BUGS["fd2e08128944"]),
)

V6_11 = Era(
    name="v6.11",
    summary="6801b0aef79d 12 args with stack args, a5912c37faf7, 9f1e16fb1fc9 RV_MAX_COUNT_IMM sizing + -E2BIG, "
            "10541b374aa0 s1 before the skip branch, 2382a405c581 RW->RO copy",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=True,
    frames="two", skip=8, orig_call="skip_frame", retval="a0_a5", max_arg_slots=24,
    mv_s1_before_branch=True, size_pass="max_count", struct_ops_frame="indirect", struct_ops_ret="slot",
    ro_copy=True, prog_a0="sext32", fixes=_V611_FIXES,
    known_bugs=(BUGS["fd2e08128944"],),
)

V6_12 = Era(
    name="v6.12",
    summary="Debian 6.12.117 as read in the tree: v6.11 plus the fd2e08128944 backport (struct_ops return "
            "extended per BTF); clean",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=True,
    frames="two", skip=8, orig_call="skip_frame", retval="a0_a5", max_arg_slots=24,
    mv_s1_before_branch=True, size_pass="max_count", struct_ops_frame="indirect", struct_ops_ret="btf",
    ro_copy=True, prog_a0="sext32", fixes=_V612_FIXES,
)

V6_16 = Era(
    name="v6.16",
    summary="atomic ftrace patching (b2137c3b6d7a/5aa4ef955884: auipc once, jalr toggled, no stop_machine) with "
            "the CALL_OPS literal (c217157bcd1d, b21cdb9523e5); JIT as v6.11",
    ftrace="atomic", ftrace_preemptible=True, kernel_sleds=_OPS_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=True,
    frames="two", skip=8, orig_call="skip_frame", retval="a0_a5", max_arg_slots=24,
    mv_s1_before_branch=True, size_pass="max_count", struct_ops_frame="indirect", struct_ops_ret="slot",
    ro_copy=True, prog_a0="sext32", fixes=_V616_FIXES,
    known_bugs=(BUGS["fd2e08128944"],),
)

NEXT_47C = Era(
    name="next-47c9214dcbea",
    summary="bpf-next at 47c9214dcbea: orig_call += 8 keyed on ORIG_STACK, which riscv refuses, so the orig call "
            "re-enters the sled (recursion); fd2e08128944 in",
    ftrace="atomic", ftrace_preemptible=True, kernel_sleds=_OPS_SLEDS,
    bpf_sled="t0", poke_kinds="single", direct_calls=True,
    frames="two", skip=8, orig_call="orig_stack", retval="a0_a5", max_arg_slots=24,
    mv_s1_before_branch=True, size_pass="max_count", struct_ops_frame="indirect", struct_ops_ret="btf",
    ro_copy=True, prog_a0="sext32", fixes=_NEXT47_FIXES,
    known_bugs=(BUGS["8f3e00af8e52"],),
)

V6_19 = Era(
    name="v6.19",
    summary="8f3e00af8e52 orig_call = func+8 whenever CALL_ORIG, ae4a3160d19c old/new poke kinds; every known "
            "bug fixed; clean",
    ftrace="atomic", ftrace_preemptible=True, kernel_sleds=_OPS_SLEDS,
    bpf_sled="t0", poke_kinds="old_new", direct_calls=True,
    frames="two", skip=8, orig_call="call_orig", retval="a0_a5", max_arg_slots=24,
    mv_s1_before_branch=True, size_pass="max_count", struct_ops_frame="indirect", struct_ops_ret="btf",
    ro_copy=True, prog_a0="sext32", fixes=_V619_FIXES,
)

V7_2 = replace(
    V6_19,
    name="v7.2",
    summary="Debian 7.2.13 as read in the tree: v6.19 with the node API, fsession (func_meta word, session "
            "cookies, IS_RETURN), a nop before every program call recorded as a bpf_tramp_skip, and no "
            "ip_after_call site; clean",
    teardown="prog_skips", fsession=True,
)

V7_3 = replace(
    V7_2,
    name="v7.3",
    summary="Debian 7.3.4 as read in the tree: v7.2 plus BPF_TRAMP_F_TAIL_CALL_CTX (a6 saved, reloaded around "
            "the original, restored on exit) and the frame chosen by is_struct_ops_tramp(); clean",
    tail_call_ctx=True, struct_ops_frame="struct_ops_link",
)

#: The pre-v6.3 ftrace detour (afc76b8b8011 .. v6.2, with 409c8fb20c66's non-C layout): a
#: patcher-only era, usable as ``ftrace=v6.2`` in a pairing (riscv had no trampoline JIT then).
V6_2_FTRACE = replace(
    V6_3,
    name="v6.2",
    summary="pre-v6.3 16-byte ra detour sled (ftrace side only; no trampoline JIT existed)",
    ftrace="detour16", ftrace_preemptible=True, kernel_sleds=_DETOUR_SLEDS,
    fixes=frozenset({"409c8fb20c66"}), known_bugs=(BUGS["8547649981e6"],),
)

ERAS: dict[str, Era] = {e.name: e for e in (V6_3, V6_6, V6_8, V6_11, V6_12, V6_16, NEXT_47C, V6_19, V7_2, V7_3)}
CLEAN = ("v6.12", "v6.19", "v7.2", "v7.3")
#: Eras that exist only as the ftrace side of a pairing.
FTRACE_ONLY: dict[str, Era] = {"v6.2": V6_2_FTRACE}


class RevertError(ValueError):
    """``ERA-pre-COMMIT`` names a commit the era does not carry, or one without a revert model."""


def revert(era: Era, commit: str) -> Era:
    """``era`` with the single fix ``commit`` reverted: its overrides applied, its bug declared."""
    matches = [c for c in REVERTS if c.startswith(commit) or commit.startswith(c)] if len(commit) >= 7 else []
    if not matches:
        raise RevertError(f"no revert model for commit {commit!r} (known: {', '.join(sorted(REVERTS))})")
    full = matches[0]
    if full not in era.fixes:
        raise RevertError(f"{era.name} does not carry {full}, so it cannot be reverted from it")
    overrides = REVERTS[full]
    current = {k: getattr(era, k) for k in overrides}
    if current == overrides:
        raise RevertError(f"{era.name}: reverting {full} changes nothing")
    new = replace(era, **overrides)  # type: ignore[arg-type]
    return replace(
        new,
        name=f"{era.name}-pre-{full}",
        summary=f"{era.name} with {full} reverted: {BUGS[full].summary}",
        fixes=era.fixes - {full},
        known_bugs=(*era.known_bugs, BUGS[full]),
        derives_from=era.name,
    )
