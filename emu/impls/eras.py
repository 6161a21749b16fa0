"""The eras: one small declarative description per kernel version (archinfo style).

An era says what its sleds look like and how its trampoline JIT behaves, as data; ``jit.py`` reads
the description and never branches on an era's name. Only ``v6.3`` is written out in full; every
later era is the one before it ``with_fixes(...)``: each fix names its commit beside the fields it
changed. ``REVERTS`` says, per fix, which fields the revert flips back, so that ``ERA-pre-COMMIT``
is derived rather than written by hand, and an era's known bugs are derived too: the bugs of
``model.known_bugs`` whose revert the era's fields show and whose fix it does not carry, give or
take the exceptions the era lists with their reason (``Era.known_bugs``).
Facts: SEMANTICS 1-4; the ``v6.12`` era is checked byte for byte against Debian's 6.12.117 tree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from sledfuzz.model.caps import STRUCT_OPS_SLED, EntryScheme, KnownBug, RetConvention, SledLayout
from sledfuzz.model.known_bugs import KNOWN_BUGS

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

    Fields (the fix that set each value is named beside it where the era is defined, below):

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
    * ``fixes``: the commits the era carries. ``also_carries``: known bugs (``model.known_bugs``
      keys) declared although no revertible field shows them; ``not_declared``: (key, why) for bugs
      the fields show but the era does not declare. Both are subject to ``fixes`` like the rest.
    * ``ftrace_only``: the era exists only as the ftrace side of a pairing (no JIT of its own), so
      it carries only the bugs of its sled fields.
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
    derives_from: str | None = None  # for a bug configuration: the clean configuration
    teardown: Teardown = "ip_after_call"
    fsession: bool = False
    tail_call_ctx: bool = False
    also_carries: tuple[str, ...] = ()
    not_declared: tuple[tuple[str, str], ...] = ()
    ftrace_only: bool = False

    @property
    def known_bugs(self) -> tuple[KnownBug, ...]:
        """The bugs this era declares, in ``KNOWN_BUGS`` order: each bug whose fix the era does not
        carry and whose revert (``REVERTS``) its fields show, plus ``also_carries``, minus
        ``not_declared``; an ftrace-only era keeps only bugs of its sled fields."""
        skipped = {key for key, _ in self.not_declared}
        out: list[KnownBug] = []
        for key, bug in KNOWN_BUGS.items():
            if bug.commit in self.fixes or key in skipped:
                continue
            revert_fields = REVERTS.get(key)
            if self.ftrace_only and (revert_fields is None or not set(revert_fields) <= SLED_FIELDS):
                continue
            shown = revert_fields is not None and all(getattr(self, k) == v for k, v in revert_fields.items())
            if shown or key in self.also_carries:
                out.append(bug)
        return tuple(out)

    def with_fixes(self, name: str, summary: str, *fixes: Fix,
                   not_declared: tuple[tuple[str, str], ...] = ()) -> Era:
        """This era with ``fixes`` applied: their field changes, their commits added to ``fixes``.
        ``not_declared`` is the new era's own (an exception never carries over silently)."""
        changes: dict[str, object] = {"fixes": self.fixes | {f.commit for f in fixes}, "not_declared": not_declared}
        for f in fixes:
            changes.update(f.changes)
        return replace(self, name=name, summary=summary, **changes)  # type: ignore[arg-type]

    def changed(self, name: str, summary: str, **changes: object) -> Era:
        """This era with changes no single modelled commit accounts for (a tree read as a whole, an
        ftrace-only era); the summary says where they come from."""
        return replace(self, name=name, summary=summary, **{"not_declared": (), **changes})  # type: ignore[arg-type]

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
        declared as ``model.caps.STRUCT_OPS_SLED`` so that a case can name it.
        """
        kscheme: EntryScheme = "ra_detour" if self.ftrace == "detour16" else "t0"
        out = [SledLayout("kernel_function", n, m, w, kscheme, call_ops=self.call_ops) for n, m, w in self.kernel_sleds]
        if self.bpf_sled == "detour16":
            out.append(SledLayout("bpf_prog", 4, 0, 4, "ra_detour"))
        else:
            out.append(SledLayout("bpf_prog", 2, 0, 4, "t0"))
        out.append(STRUCT_OPS_SLED)
        return tuple(out)


@dataclass(frozen=True)
class Fix:
    """One commit and the era fields it changed (none: it changed nothing the eras model)."""

    commit: str
    changes: tuple[tuple[str, object], ...]


def fix(commit: str, **changes: object) -> Fix:
    """``fix("7112cd26e606", retval="a0_a5")``: the commit beside what it changed."""
    return Fix(commit, tuple(changes.items()))


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

#: The fields that make up an era's sled side (what a pairing takes from its ftrace era).
SLED_FIELDS = frozenset({"ftrace", "ftrace_preemptible", "kernel_sleds", "bpf_sled", "poke_kinds"})

_T0_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((4, 0, 2), (2, 0, 4))
_OPS_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((8, 4, 2), (4, 2, 4))
_DETOUR_SLEDS: tuple[tuple[int, int, Literal[2, 4]], ...] = ((8, 0, 2), (4, 0, 4))


V6_3 = Era(
    name="v6.3",
    summary="first RV64 trampoline (596f2e6f9cf4/49b5e77ae3e2): BPF-program targets only, 16-byte ra detour poke, "
            "one frame, 16-byte skip, a5-only retval, raw a0",
    ftrace="t0", ftrace_preemptible=False, kernel_sleds=_T0_SLEDS,
    bpf_sled="detour16", poke_kinds="single", direct_calls=False,
    frames="one", skip=16, orig_call="skip_frame", retval="a5_only", max_arg_slots=8,
    mv_s1_before_branch=False, size_pass="same_im", struct_ops_frame="no_frame_rule", struct_ops_ret="slot",
    ro_copy=False, prog_a0="raw",
    fixes=frozenset({"596f2e6f9cf4", "49b5e77ae3e2", "6724a76cff85", "409c8fb20c66", "8547649981e6"}),
    # one frame: no revertible field shows it (25ad10658dc1 changed too much to revert alone)
    also_carries=("25ad10658dc1/unwind",),
)

V6_6 = V6_3.with_fixes(
    "v6.6",
    "25ad10658dc1 two frames + t0/ra scheme + 8-byte skip + 2-nop BPF sled, 2f1b0d3d7331 sext.w a0, "
    "7112cd26e606 a0 and a5 saved; still no ftrace direct calls",
    fix("25ad10658dc1", bpf_sled="t0", frames="two", skip=8, struct_ops_frame="func_addr"),
    fix("2f1b0d3d7331", prog_a0="sext32"),
    fix("7112cd26e606", retval="a0_a5"),
    not_declared=(("fd2e08128944",
                   "in v6.6's code too, but unobservable: under the modern core's non-NULL func_addr, 1732ebc4a261 "
                   "sends every struct_ops call out through t0 before its return value matters, and a declared bug "
                   "is a promise that the search finds it"),),
)

V6_8 = V6_6.with_fixes(
    "v6.8",
    "196c79f19a92 ftrace direct calls (kernel functions attachable), 1732ebc4a261 struct_ops frame by "
    "INDIRECT; 26ef208c209a sizes with an on-stack im",
    fix("196c79f19a92", direct_calls=True),
    fix("1732ebc4a261", struct_ops_frame="indirect"),
    fix("2cd3e3772e41"),  # the core's INDIRECT and CFI-stub func_addr: the one core models it (contract)
    fix("26ef208c209a", size_pass="local_im"),
)

V6_11 = V6_8.with_fixes(
    "v6.11",
    "6801b0aef79d 12 args with stack args, a5912c37faf7, 9f1e16fb1fc9 RV_MAX_COUNT_IMM sizing + -E2BIG, "
    "10541b374aa0 s1 before the skip branch, 2382a405c581 RW->RO copy",
    fix("10541b374aa0", mv_s1_before_branch=True),
    fix("6801b0aef79d", max_arg_slots=24),
    fix("a5912c37faf7"),  # stack-arg area only with CALL_ORIG: sizes only
    fix("9f1e16fb1fc9", size_pass="max_count"),
    fix("2382a405c581", ro_copy=True),
    fix("51781ce8f448"),  # patch_text() takes bytes: no behaviour the eras model
)

V6_12 = V6_11.with_fixes(
    "v6.12",
    "Debian 6.12.117 as read in the tree: v6.11 plus the fd2e08128944 backport (struct_ops return "
    "extended per BTF); clean",
    fix("fd2e08128944", struct_ops_ret="btf"),  # stable backport, read in the tree
)

V6_16 = V6_11.with_fixes(
    "v6.16",
    "atomic ftrace patching (b2137c3b6d7a/5aa4ef955884: auipc once, jalr toggled, no stop_machine) with "
    "the CALL_OPS literal (c217157bcd1d, b21cdb9523e5); JIT as v6.11",
    fix("b2137c3b6d7a", ftrace="atomic"),
    fix("5aa4ef955884"),  # no stop_machine: part of the atomic scheme (ftrace="atomic")
    fix("d0262e907e29", ftrace_preemptible=True),
    fix("c217157bcd1d", kernel_sleds=_OPS_SLEDS),
    fix("b21cdb9523e5"),  # direct calls through the ops literal: the scenario's ftrace_caller stub
)

NEXT_47C = V6_16.with_fixes(
    "next-47c9214dcbea",
    "bpf-next at 47c9214dcbea: orig_call += 8 keyed on ORIG_STACK, which riscv refuses, so the orig call "
    "re-enters the sled (recursion); fd2e08128944 in",
    fix("fd2e08128944", struct_ops_ret="btf"),
    fix("47c9214dcbea", orig_call="orig_stack"),  # the change that brought 8f3e00af8e52's bug
)

V6_19 = NEXT_47C.with_fixes(
    "v6.19",
    "8f3e00af8e52 orig_call = func+8 whenever CALL_ORIG, ae4a3160d19c old/new poke kinds; every known "
    "bug fixed; clean",
    fix("8f3e00af8e52", orig_call="call_orig"),
    fix("ae4a3160d19c", poke_kinds="old_new"),
)

V7_2 = V6_19.changed(
    "v7.2",
    "Debian 7.2.13 as read in the tree: v6.19 with the node API, fsession (func_meta word, session "
    "cookies, IS_RETURN), a nop before every program call recorded as a bpf_tramp_skip, and no "
    "ip_after_call site; clean",
    teardown="prog_skips", fsession=True,
)

V7_3 = V7_2.changed(
    "v7.3",
    "Debian 7.3.4 as read in the tree: v7.2 plus BPF_TRAMP_F_TAIL_CALL_CTX (a6 saved, reloaded around "
    "the original, restored on exit) and the frame chosen by is_struct_ops_tramp(); clean",
    tail_call_ctx=True, struct_ops_frame="struct_ops_link",
)

#: The pre-v6.3 ftrace detour (afc76b8b8011 .. v6.2, with 409c8fb20c66's non-C layout): a
#: patcher-only era, usable as ``ftrace=v6.2`` in a pairing (riscv had no trampoline JIT then).
V6_2_FTRACE = V6_3.changed(
    "v6.2",
    "pre-v6.3 16-byte ra detour sled (ftrace side only; no trampoline JIT existed)",
    ftrace="detour16", ftrace_preemptible=True, kernel_sleds=_DETOUR_SLEDS,
    fixes=frozenset({"409c8fb20c66"}), ftrace_only=True,
)

ERAS: dict[str, Era] = {e.name: e for e in (V6_3, V6_6, V6_8, V6_11, V6_12, V6_16, NEXT_47C, V6_19, V7_2, V7_3)}
CLEAN = ("v6.12", "v6.19", "v7.2", "v7.3")
#: Eras that exist only as the ftrace side of a pairing.
FTRACE_ONLY: dict[str, Era] = {"v6.2": V6_2_FTRACE}


class RevertError(ValueError):
    """``ERA-pre-COMMIT`` names a commit the era does not carry, or one without a revert model."""


def revert(era: Era, commit: str) -> Era:
    """``era`` with the single fix ``commit`` reverted: its overrides applied (its bug then follows
    from the fields, ``Era.known_bugs``)."""
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
        summary=f"{era.name} with {full} reverted: {KNOWN_BUGS[full].summary}",
        fixes=era.fixes - {full},
        derives_from=era.name,
    )
