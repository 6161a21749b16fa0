"""Sled schemes: the compiler's nops, ftrace's init and patch, the BPF prologue poke, per era.

Every byte string here covers one whole sled region, ``[func - sled.pre_bytes, func +
sled.entry_bytes)``: the pre-entry nops (the CALL_OPS literal, v6.16) followed by the entry nops.
Four schemes exist (SEMANTICS 1.2, 2.1, 2.2):

* ``detour16`` — before 6724a76cff85 (v6.3): 16-byte ``sd ra; auipc ra; jalr ra; ld ra`` detour,
  the call made from the auipc at ip+4; the trampoline returns to ip+12 so the ``ld`` restores ra.
* ``t0`` — 6724a76cff85 (v6.3) to v6.15: ``auipc t0; jalr t0``; t0 = func+8, ra untouched. Both
  words rewritten under stop_machine; 8547649981e6 made it depend on !PREEMPTION.
* ``atomic`` — b2137c3b6d7a/5aa4ef955884/c217157bcd1d (v6.16): the auipc is written once at init
  (aimed at ``ftrace_caller``), only the jalr word toggles nop <-> jalr (+-2 KiB reach), no
  stop_machine, preemptible; the 8-byte literal at func-8 holds the ops pointer.
* BPF prologue sleds (``bpf_prog`` targets), patched by ``bpf_arch_text_poke``: 4 nops and the
  16-byte ``sd ra; auipc t1; jalr ra; ld ra`` MOD_CALL (596f2e6f9cf4, v6.3-v6.5), or 2 nops and
  ``auipc t1; jalr t0`` (25ad10658dc1, v6.6+).

Over 400 lines because the schemes are the branches of two patchers (``FtracePatcher``,
``BpfPoker``), each branch beside the commit that introduced it, so that one era's sled reads
against the next in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sledfuzz.emu.impls.api import PokeKind, PokeResult
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.offsets import in_auipc_jalr_range, sign_extend
from sledfuzz.emu.rv64.regs import RA, SP, T0, T1, ZERO
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.contract import EFAULT, EINVAL, ERANGE

FtraceScheme = Literal["detour16", "t0", "atomic"]
BpfSledScheme = Literal["detour16", "t0"]

NOP4 = E.addi(ZERO, ZERO, 0)
C_NOP = E.c_nop()
SD_RA = E.sd(RA, SP, -8)  # 0xfe113c23
LD_RA = E.ld(RA, SP, -8)  # 0xff813083
JALR_RANGE = 0x7FF  # v6.16: the jalr alone reaches [auipc base - 2048, auipc base + 2047]
_M32 = 0xFFFFFFFF


def words(*ws: int) -> bytes:
    """Little-endian 4-byte instruction words, concatenated."""
    return b"".join(w.to_bytes(4, "little") for w in ws)


def ftrace_split(off: int) -> tuple[int, int]:
    """ftrace's own hi20/lo12 split (``to_auipc_*`` / ``to_jalr_*``): 32-bit unsigned arithmetic.

    Same rounding as the JIT's (+0x1000 on the upper part when bit 11 is set) but no range check:
    an offset outside +-2 GiB is silently truncated to 32 bits (SEMANTICS 2.3). The return is the
    pair of raw fields (auipc imm20, jalr imm12 as a signed value).
    """
    off &= _M32
    upper = off & 0xFFFFF000
    if off & 0x800:
        upper = (upper + 0x1000) & _M32
    return upper >> 12, sign_extend(off & 0xFFF, 12)


def jit_split(off: int) -> tuple[int, int] | None:
    """The JIT's ``emit_jump_and_link`` split, or None when out of auipc+jalr reach (-ERANGE)."""
    if not in_auipc_jalr_range(off):
        return None
    return ((off + 0x800) >> 12) & 0xFFFFF, sign_extend(off, 12)


@dataclass(frozen=True)
class EntryState:
    """Registers at trampoline entry after a patched sled ran (SEMANTICS 1.3).

    ``link_reg`` holds ``link_value``, the return into the traced function; ``body`` is where the
    traced body starts; ``parent_ra_slot`` is the offset from the entry sp where the sled saved
    the parent's ra (-8 for the 16-byte detours), None when ra is untouched (= the parent).
    """

    scheme: str
    link_reg: int
    link_value: int
    body: int
    parent_ra_slot: int | None


@dataclass(frozen=True)
class Concurrency:
    """How a patch reaches the text, for I-TORN.

    ``stop_machine``: every other CPU is parked while the words are written, so no CPU fetches a
    half-written sled. ``preemptible``: a task may be preempted between two sled instructions and
    resume after the patch, executing old words then new ones. Each write is one naturally
    aligned word (4 bytes, or the 8-byte literal), fetched atomically (Ziccif).
    """

    stop_machine: bool
    preemptible: bool

    @property
    def summary(self) -> str:
        sm = "stop_machine" if self.stop_machine else "no stop_machine"
        pre = "PREEMPTION" if self.preemptible else "!PREEMPTION"
        return f"{sm}, {pre}"


# ---------------------------------------------------------------------------------------------
# ftrace patchers (kernel_function sleds)


@dataclass(frozen=True)
class FtracePatcher:
    """One ftrace sled scheme of one era.

    ``patch`` is ``ftrace_make_call`` (or the CALL_OPS equivalent), ``unpatch`` ``ftrace_make_nop``;
    neither checks the old bytes. ``modify_call`` is ``ftrace_modify_call``: it compares the
    current call with the one to ``old_target`` and answers -EINVAL on a mismatch.
    """

    scheme: FtraceScheme
    concurrency: Concurrency
    era: str

    # -- layout ---------------------------------------------------------------------------
    def patch_size(self) -> int:
        return 16 if self.scheme == "detour16" else 8

    def body_offset(self) -> int:
        """Where the traced body starts (func+16 after the detour, func+8 otherwise)."""
        return self.patch_size()

    def compiler_sled(self, sled: SledLayout) -> bytes:
        """What ``-fpatchable-function-entry=N,M`` leaves: c.nop or nop, N of them."""
        if sled.nop_width == 2:
            return C_NOP.to_bytes(2, "little") * sled.n
        return NOP4.to_bytes(4, "little") * sled.n

    def _check(self, sled: SledLayout) -> None:
        if sled.target != "kernel_function":
            raise ValueError(f"{self.era} ftrace patcher: not a kernel_function sled: {sled.key}")
        if sled.entry_bytes < self.patch_size():
            raise ValueError(f"{self.era} ftrace patcher: sled {sled.key} has {sled.entry_bytes} entry bytes, "
                             f"the {self.scheme} patch needs {self.patch_size()}")
        if self.scheme == "atomic" and sled.pre_bytes != 8:
            raise ValueError(f"{self.era} ftrace patcher: CALL_OPS needs 8 bytes before the entry, sled {sled.key}")

    def _region(self, sled: SledLayout, pre: bytes, entry: bytes) -> bytes:
        """Assemble a region: ``pre`` over the pre-entry bytes, ``entry`` then the rest of the sled."""
        tail = sled.entry_bytes - len(entry)
        return pre + entry + NOP4.to_bytes(4, "little") * (tail // 4)

    def _pre(self, sled: SledLayout, literal: int | None) -> bytes:
        if self.scheme == "atomic":
            return (literal or 0).to_bytes(8, "little")
        return self.compiler_sled(sled)[: sled.pre_bytes]

    def auipc_base(self, func: int, ftrace_caller: int) -> int:
        """v6.16: where the init-time ``auipc t0`` points (hi part of ftrace_caller)."""
        hi, _ = ftrace_split(ftrace_caller - func)
        return (func + (sign_extend(hi, 20) << 12)) & ((1 << 64) - 1)

    def call_words(self, func: int, target: int, ftrace_caller: int) -> tuple[int, ...]:
        """The enabled entry words for a call to ``target`` (no range check, as ftrace)."""
        if self.scheme == "detour16":
            hi, lo = ftrace_split(target - (func + 4))  # the call is made from the auipc at ip+4
            return SD_RA, E.auipc(RA, hi), E.jalr(RA, RA, lo), LD_RA
        if self.scheme == "t0":
            hi, lo = ftrace_split(target - func)
            return E.auipc(T0, hi), E.jalr(T0, T0, lo)
        hi, _ = ftrace_split(ftrace_caller - func)
        return E.auipc(T0, hi), E.jalr(T0, T0, self.jalr_lo(func, target, ftrace_caller))

    def jalr_lo(self, func: int, target: int, ftrace_caller: int) -> int:
        """v6.16+ ``ftrace_make_call``: the jalr gets ``target``'s low 12 bits when
        ``|target - &ftrace_caller| <= JALR_RANGE``, else ftrace_caller's (b21cdb9523e5: the direct
        call then goes through the CALL_OPS literal).

        The low bits are those of ``target - func`` while the auipc was rounded for ftrace_caller
        at init, so a target near ftrace_caller but across an x.800 edge from it is mis-encoded
        (lands 4 KiB away). That is what the kernel does (docs/eras.md, "ftrace since v6.16");
        the era reproduces it rather than the exact reach.
        """
        reach = target if abs(target - ftrace_caller) <= JALR_RANGE else ftrace_caller
        return sign_extend((reach - func) & 0xFFF, 12)

    def nop_words(self, func: int, ftrace_caller: int) -> tuple[int, ...]:
        if self.scheme == "detour16":
            return NOP4, NOP4, NOP4, NOP4
        if self.scheme == "t0":
            return NOP4, NOP4
        hi, _ = ftrace_split(ftrace_caller - func)
        return E.auipc(T0, hi), NOP4

    # -- the Patcher protocol -------------------------------------------------------------
    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int, *, nop_ops: int = 0) -> bytes:
        """``ftrace_init_nop``: NOP4s over the patch size (even over 4 c.nop); v6.16 writes the
        auipc once and the literal = &ftrace_nop_ops."""
        self._check(sled)
        return self._region(sled, self._pre(sled, nop_ops), words(*self.nop_words(func, ftrace_caller)))

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int, *, ops: int = 0) -> bytes:
        """``ftrace_make_call`` to ``target``; v6.16 also stores ``ops`` in the literal."""
        self._check(sled)
        return self._region(sled, self._pre(sled, ops), words(*self.call_words(func, target, ftrace_caller)))

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int, *, nop_ops: int = 0) -> bytes:
        """``ftrace_make_nop``: back to exactly the post-init bytes."""
        return self.init_sled(sled, func, ftrace_caller, nop_ops=nop_ops)

    # -- mechanisms with their verification (DESIGN §3) ------------------------------------
    def make_call(self, sled: SledLayout, func: int, site: bytes, target: int, ftrace_caller: int,
                  *, ops: int = 0) -> PokeResult:
        """``ftrace_make_call``: writes without looking at the current bytes."""
        del site
        return PokeResult(0, self.patch(sled, func, target, ftrace_caller, ops=ops))

    def make_nop(self, sled: SledLayout, func: int, site: bytes, ftrace_caller: int, *, nop_ops: int = 0) -> PokeResult:
        """``ftrace_make_nop``: writes without looking at the current bytes."""
        del site
        return PokeResult(0, self.unpatch(sled, func, ftrace_caller, nop_ops=nop_ops))

    def modify_call(self, sled: SledLayout, func: int, site: bytes, old_target: int, new_target: int,
                    ftrace_caller: int, *, ops: int = 0) -> PokeResult:
        """``ftrace_modify_call``: -EINVAL unless the site holds the expected words.

        The detour compares and rewrites only its auipc/jalr pair (ip+4..ip+12); the t0 scheme
        both words. v6.16+ compares only the auipc word (against the one aimed at ftrace_caller,
        whatever ``old_target`` is) and always writes the jalr to ``FTRACE_ADDR``: the new target
        is reached through ``ftrace_caller`` and the literal, which holds ``ops`` first.
        """
        self._check(sled)
        entry = site[sled.pre_bytes : sled.pre_bytes + self.patch_size()]
        if self.scheme == "atomic":
            auipc = words(self.call_words(func, ftrace_caller, ftrace_caller)[0])
            if entry[:4] != auipc:
                return PokeResult(EINVAL, site)
            return PokeResult(0, self.patch(sled, func, ftrace_caller, ftrace_caller, ops=ops))
        old = words(*self.call_words(func, old_target, ftrace_caller))
        lo, hi = (4, 12) if self.scheme == "detour16" else (0, 8)
        if entry[lo:hi] != old[lo:hi]:
            return PokeResult(EINVAL, site)
        return PokeResult(0, self.patch(sled, func, new_target, ftrace_caller, ops=ops))

    def wrong_old_site(self, sled: SledLayout, func: int, site: bytes, target: int, ftrace_caller: int) -> tuple[bytes, int]:
        """A (site, old_target) pair ``modify_call`` must refuse with -EINVAL, per what it compares.

        Before v6.16 a wrong old target (its call encodes differently); from v6.16 the target is
        not compared, so the site's auipc is made to aim one page away from ftrace_caller.
        """
        if self.scheme == "atomic":
            pre = sled.pre_bytes
            bad = words(self.call_words(func, ftrace_caller + 0x1000, ftrace_caller + 0x1000)[0])
            return site[:pre] + bad + site[pre + 4 :], target
        for cand in (target + 0x10, ftrace_caller + 0x10, ftrace_caller - 0x10):
            if self.patch(sled, func, cand & ((1 << 64) - 1), ftrace_caller) != site:
                return site, cand & ((1 << 64) - 1)
        return site, target

    def entry_state(self, sled: SledLayout, func: int) -> EntryState:
        """Registers at trampoline entry when the patched sled made the call."""
        if self.scheme == "detour16":
            return EntryState("ra_detour", RA, func + 12, func + 16, -8)
        return EntryState("t0", T0, func + 8, func + 8, None)


# ---------------------------------------------------------------------------------------------
# BPF prologue sleds and bpf_arch_text_poke


def bpf_poke_words(scheme: BpfSledScheme, kind: PokeKind, ip: int, target: int) -> tuple[int, ...] | None:
    """The words ``bpf_arch_text_poke`` writes at ``ip`` for ``kind`` to ``target`` (0 = none).

    Returns None when the target is out of the auipc+jalr reach (-ERANGE). The temporary is t1,
    as in the JIT's ``emit_jump_and_link``. 596f2e6f9cf4: MOD_CALL is the 16-byte detour with the
    offset taken from ip+4 and "no target" is 4 nops; MOD_JUMP is 2 words from ip.
    25ad10658dc1: both kinds 2 words from ip, MOD_CALL links through t0.
    """
    if scheme == "detour16" and kind == "call":
        if not target:
            return NOP4, NOP4, NOP4, NOP4
        split = jit_split(target - (ip + 4))
        if split is None:
            return None
        return SD_RA, E.auipc(T1, split[0]), E.jalr(RA, T1, split[1]), LD_RA
    if kind == "nop" or not target:
        return NOP4, NOP4
    split = jit_split(target - ip)
    if split is None:
        return None
    return E.auipc(T1, split[0]), E.jalr(T0 if kind == "call" else ZERO, T1, split[1])


@dataclass(frozen=True)
class BpfPoker:
    """One era's ``bpf_arch_text_poke``: compare the old sequence, then write the new.

    ``kinds``: ``single`` — one poke type for both sides (before ae4a3160d19c; a NULL address
    means nops); ``old_new`` — separate old and new kinds (ae4a3160d19c).
    """

    scheme: BpfSledScheme
    kinds: Literal["single", "old_new"]

    def poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        """Generate old (may be -ERANGE), compare (-EFAULT), generate new (-ERANGE), write."""
        if self.kinds == "single":
            # one poke_type for both sides; a "nop" side is that type with a NULL address
            kind: PokeKind = new if new != "nop" else old if old != "nop" else "call"
            old_seq = bpf_poke_words(self.scheme, kind, ip, old_addr if old != "nop" else 0)
        else:
            old_seq = bpf_poke_words(self.scheme, old, ip, old_addr if old != "nop" else 0)
        if old_seq is None:
            return PokeResult(ERANGE, site)
        old_b = words(*old_seq)
        if site[: len(old_b)] != old_b:
            return PokeResult(EFAULT, site)
        if self.kinds == "single":
            new_seq = bpf_poke_words(self.scheme, kind, ip, new_addr if new != "nop" else 0)
        else:
            new_seq = bpf_poke_words(self.scheme, new, ip, new_addr if new != "nop" else 0)
        if new_seq is None:
            return PokeResult(ERANGE, site)
        new_b = words(*new_seq)
        return PokeResult(0, new_b + site[len(new_b) :])


@dataclass(frozen=True)
class BpfProloguePatcher:
    """The JIT prologue's nops of a BPF program (the "sled" of a ``bpf_prog`` target).

    The nops are emitted by the JIT itself (no compiler, no init rewrite); ``patch`` is
    ``bpf_arch_text_poke(ip, NOP -> CALL)``, ``unpatch`` CALL -> NOP. Stop_machine based
    ``patch_text``. Whether a task preempted inside a BPF prologue sled can resume into a
    half-new pair is not modelled here [U]; I-TORN is judged on the ftrace patchers.
    """

    scheme: BpfSledScheme
    poker: BpfPoker
    concurrency: Concurrency = Concurrency(stop_machine=True, preemptible=False)

    def nops(self) -> int:
        return 4 if self.scheme == "detour16" else 2

    def compiler_sled(self, sled: SledLayout) -> bytes:
        return NOP4.to_bytes(4, "little") * sled.n

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self.compiler_sled(sled)

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int) -> bytes:
        site = self.init_sled(sled, func, ftrace_caller)
        res = self.poker.poke(func, site, "nop", "call", 0, target)
        if res.rc:
            raise ValueError(f"bpf_arch_text_poke NOP->CALL failed with errno {res.rc}")
        return res.site

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        return self.init_sled(sled, func, ftrace_caller)

    def entry_state(self, sled: SledLayout, func: int) -> EntryState:
        if self.scheme == "detour16":
            return EntryState("ra_detour", RA, func + 12, func + 16, -8)
        return EntryState("t0", T0, func + 8, func + 8, None)


# ---------------------------------------------------------------------------------------------
# the composite an Implementation carries


@dataclass(frozen=True)
class SledPatchers:
    """Dispatches on the sled's target kind: ftrace for kernel functions, the BPF prologue poke
    for BPF programs; struct_ops has no sled (the nominal layout ``1,0/w`` maps to no bytes)."""

    ftrace: FtracePatcher
    bpf: BpfProloguePatcher

    def _for(self, sled: SledLayout) -> FtracePatcher | BpfProloguePatcher | None:
        if sled.target == "kernel_function":
            return self.ftrace
        if sled.target == "bpf_prog":
            return self.bpf
        return None

    def compiler_sled(self, sled: SledLayout) -> bytes:
        p = self._for(sled)
        return p.compiler_sled(sled) if p else b""

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        p = self._for(sled)
        return p.init_sled(sled, func, ftrace_caller) if p else b""

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int) -> bytes:
        p = self._for(sled)
        return p.patch(sled, func, target, ftrace_caller) if p else b""

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes:
        p = self._for(sled)
        return p.unpatch(sled, func, ftrace_caller) if p else b""

    def entry_state(self, sled: SledLayout, func: int) -> EntryState:
        p = self._for(sled)
        if p is None:
            return EntryState("direct", RA, 0, 0, None)
        return p.entry_state(sled, func)
