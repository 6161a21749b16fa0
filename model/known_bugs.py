"""The historical bugs sledfuzz reproduces, by the commit that fixes them (SEMANTICS 4).

Each entry says which invariants the bug can make fail on a case the configuration accepts: the
commit -> invariants map. Eras declare the bugs they carry from this table (``emu/impls/eras.py``
derives them), the invariants list the commits they catch from it (``Invariant.catches``), and
the corpus keeps one regression case per entry.
"""

from __future__ import annotations

from sledfuzz.model.caps import KnownBug


def _bug(commit: str, summary: str, *invariants: str) -> KnownBug:
    return KnownBug(commit, frozenset(invariants), summary)


#: The invariant sets are what the bug can make fail on a case the configuration accepts; a
#: trampoline that returns into garbage takes every later observation with it, hence the wider sets
#: for those. Keys are fixing commits, except ``25ad10658dc1/unwind``: the same commit's second fix,
#: declared apart so that v6.3 on its own BPF-program targets may break only I-UNWIND.
KNOWN_BUGS: dict[str, KnownBug] = {
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


def catching(invariant: str) -> frozenset[str]:
    """The fixing commits of every known bug that can make ``invariant`` fail."""
    return frozenset(bug.commit for bug in KNOWN_BUGS.values() if invariant in bug.invariants)
