"""The RV64 BPF trampoline JIT, parameterised by an era description (``eras.Era``).

One emitter serves every era: it walks the kernel's emission order (SEMANTICS 3.3-3.5) and asks
the era at each point where versions differ (frame shape, skip, retval slots, where ``mv s1, a0``
goes, which ``im`` the size pass sees, how struct_ops returns are extended). The instruction
choices (RVC or not, ``li`` lengths, ``jal`` vs ``auipc+jalr``) come from ``emu.rv64.Emitter``,
which makes the kernel's choices; the sizing pass runs without an image address, so every call
counts as the two-instruction form, exactly as the kernel's NULL-image pass does.

Why one file over 400 lines: the emitter follows the kernel's one function
(``__arch_prepare_bpf_trampoline``) step by step, and the era switches sit where the kernel's
versions differ; split, the emission order would no longer read as the kernel's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sledfuzz.emu.impls.api import Image, LinkReq, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.impls.eras import RV_MAX_COUNT_IMM, STACK_IM, Era
from sledfuzz.emu.impls.patchers import BpfPoker
from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.emitter import Emitter
from sledfuzz.emu.rv64.offsets import ReachError
from sledfuzz.emu.rv64.regs import A0, A1, A2, A5, A6, FP, RA, S1, SP, T0, T1, ZERO
from sledfuzz.model.contract import (
    COOKIE_INDEX_SHIFT,
    E2BIG,
    EFAULT,
    EFBIG,
    EINVAL,
    ENOTSUPP,
    ERANGE,
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SHARE_IPMODIFY,
    F_SKIP_FRAME,
    F_TAIL_CALL_CTX,
    IS_RETURN_SHIFT,
    MAX_BPF_FUNC_ARGS,
)

MAX_REG_ARGS = 8
RUN_CTX_SIZE = 16  # struct bpf_tramp_run_ctx: empty run_ctx, u64 bpf_cookie, saved_run_ctx pointer
COOKIE_OFF = 0  # offsetof(struct bpf_tramp_run_ctx, bpf_cookie): the empty struct takes no room
STACK_ALIGN = 16


class _Fail(Exception):
    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = errno
        self.reason = reason


@dataclass(frozen=True)
class _Frame:
    """Offsets below FP of every slot, and the frame's total size (SEMANTICS 3.3)."""

    stack_size: int
    retval_off: int
    args_off: int
    nregs_off: int
    ip_off: int
    run_ctx_off: int
    sreg_off: int
    stk_arg_off: int
    retaddr_off: int  # one-frame era only: where the entry ra is kept
    fp_off: int  # one-frame era only
    cookie_off: int = 0  # 7.x: the lowest session cookie slot (cookie 1); cookies go up from there
    cookie_cnt: int = 0
    tcc_off: int = 0  # 7.3 TAIL_CALL_CTX: the saved tail-call count (a6)


@dataclass(frozen=True)
class Built:
    """One pass's output: the code, the teardown poke offsets (None without CALL_ORIG, or on a
    7.x era) and the 7.x per-program skips (link kind, nop offset, target offset)."""

    code: bytes
    after_call: int | None
    epilogue: int | None
    skips: tuple[tuple[str, int, int], ...] = ()


class EraJit:
    """``arch_bpf_trampoline_size`` / ``arch_prepare_bpf_trampoline`` / ``bpf_arch_text_poke``."""

    def __init__(self, era: Era, rvc: bool = True) -> None:
        self.era = era
        self.rvc = rvc
        self.poker = BpfPoker(era.bpf_sled, era.poke_kinds)

    # -- the Jit protocol -----------------------------------------------------------------
    def size(self, req: TrampRequest) -> int | Refused:
        """The sizing pass: no image address; ``li a0, im`` with the era's sizing ``im``."""
        era = self.era
        im = {"same_im": req.im, "local_im": STACK_IM, "max_count": RV_MAX_COUNT_IMM}[era.size_pass]
        try:
            return len(self.build(req, None, im).code)
        except _Fail as f:
            return Refused(f.errno, f.reason)

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        """The emit pass at ``image_addr``; the image is ``image_size`` bytes, zero-padded.

        Before 26ef208c209a the kernel sized inside this call and refused a larger image with
        -EFBIG; since 9f1e16fb1fc9 an emitted length above the size is -E2BIG; in between nothing
        checked, and the returned code is longer than the image (the overrun I-SIZE reports).
        """
        era = self.era
        try:
            if era.size_pass == "same_im":
                sized = len(self.build(req, None, req.im).code)
                if sized > image_size:
                    return Refused(EFBIG, f"sized {sized} bytes > image {image_size}")
            built = self.build(req, image_addr, req.im)
        except _Fail as f:
            return Refused(f.errno, f.reason)
        used = len(built.code)
        if era.size_pass == "max_count" and used > image_size:
            return Refused(E2BIG, f"emitted {used} bytes > image {image_size}")
        code = built.code + bytes(max(0, image_size - used))
        return Image(
            addr=image_addr,
            code=code,
            used_len=used,
            ip_after_call=None if built.after_call is None else image_addr + built.after_call,
            ip_epilogue=None if built.epilogue is None else image_addr + built.epilogue,
            skips=tuple((kind, image_addr + nop, image_addr + target) for kind, nop, target in built.skips),
        )

    def tramp_skip(self, nop: int, site: bytes, target: int) -> PokeResult:
        """7.x ``arch_bpf_trampoline_skip``: the nop at ``nop`` becomes ``jal zero, target``;
        -EFAULT (site unchanged) when the word there is not the nop."""
        if len(site) < 4 or int.from_bytes(site[:4], "little") != E.addi(ZERO, ZERO, 0):
            return PokeResult(EFAULT, bytes(site))
        return PokeResult(0, E.jal(ZERO, target - nop).to_bytes(4, "little") + bytes(site[4:]))

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        return self.poker.poke(ip, site, old, new, old_addr, new_addr)

    # -- the emitter ----------------------------------------------------------------------
    def frame(self, req: TrampRequest) -> _Frame:
        era, flags = self.era, req.flags
        slots = req.model.nr_arg_slots
        save_ret = bool(flags & (F_CALL_ORIG | F_RET_FENTRY_RET))
        retaddr_off = fp_off = 0
        if era.frames == "one":
            ss = 8  # [FP-8]: the parent's ra, stored by the 16-byte sled itself
            ss += 8
            retaddr_off = ss
            ss += 8
            fp_off = ss
        else:
            ss = 16  # ra/t0 and fp of the trampoline's own frame record
        if save_ret:
            ss += 16 if era.retval == "a0_a5" else 8
        retval_off = ss
        ss += slots * 8
        args_off = ss
        ss += 8
        nregs_off = ss
        ip_off = 0
        if flags & F_IP_ARG:
            ss += 8
            ip_off = ss
        cookie_cnt = sum(1 for link in req.phase("fentry") if link.session_cookie) if era.fsession else 0
        ss += cookie_cnt * 8
        cookie_off = ss
        ss += RUN_CTX_SIZE
        run_ctx_off = ss
        ss += 8
        sreg_off = ss
        tcc_off = 0
        if era.tail_call_ctx and flags & F_TAIL_CALL_CTX:
            ss += 8
            tcc_off = ss
        if era.max_arg_slots > MAX_REG_ARGS and flags & F_CALL_ORIG and slots > MAX_REG_ARGS:
            ss += (slots - MAX_REG_ARGS) * 8  # a5912c37faf7: outgoing stack args only with CALL_ORIG
        ss = (ss + STACK_ALIGN - 1) // STACK_ALIGN * STACK_ALIGN
        return _Frame(ss, retval_off, args_off, nregs_off, ip_off, run_ctx_off, sreg_off, ss, retaddr_off, fp_off,
                      cookie_off, cookie_cnt, tcc_off)

    def build(self, req: TrampRequest, base: int | None, im: int) -> Built:
        """Emit the whole trampoline once. Raises _Fail with the kernel's errno on a refusal."""
        era, flags, m = self.era, req.flags, req.model
        if flags & (F_ORIG_STACK | F_SHARE_IPMODIFY):
            raise _Fail(ENOTSUPP, "ORIG_STACK / SHARE_IPMODIFY are not supported")
        slots = m.nr_arg_slots
        if not era.fsession and any(link.kind == "fsession" for link in req.links):
            raise _Fail(EINVAL, "fsession programs are not supported before 7.x")
        if era.max_arg_slots > MAX_REG_ARGS:
            if len(m.args) > MAX_BPF_FUNC_ARGS:
                raise _Fail(ENOTSUPP, f"{len(m.args)} arguments > {MAX_BPF_FUNC_ARGS}")
        elif slots > MAX_REG_ARGS:
            raise _Fail(ENOTSUPP, f"{slots} argument slots > {MAX_REG_ARGS} registers")

        if era.frames == "one" or era.struct_ops_frame == "no_frame_rule":
            direct = False
        elif era.struct_ops_frame == "func_addr":
            direct = req.func_addr == 0  # 25ad10658dc1: "called directly" when there is no func
        elif era.struct_ops_frame == "struct_ops_link":
            direct = self._struct_ops_link(req)  # 7.3: is_struct_ops_tramp(fentry)
        else:
            direct = bool(flags & F_INDIRECT)  # 1732ebc4a261
        is_struct_ops = self._struct_ops_link(req) if era.struct_ops_frame == "struct_ops_link" else bool(flags & F_INDIRECT)
        fr = self.frame(req)
        save_ret = bool(flags & (F_CALL_ORIG | F_RET_FENTRY_RET))
        e = Emitter(rvc=self.rvc, base=base)
        try:
            return self._body(e, req, fr, direct, is_struct_ops, save_ret, im, slots)
        except ReachError as exc:
            raise _Fail(ERANGE, str(exc)) from None

    def _body(self, e: Emitter, req: TrampRequest, fr: _Frame, direct: bool, is_struct_ops: bool,
              save_ret: bool, im: int, slots: int) -> Built:
        era, flags = self.era, req.flags
        ss = fr.stack_size

        # prologue
        if era.frames == "one":
            e.emit_addi(SP, SP, -ss)
            e.emit_sd(SP, ss - fr.retaddr_off, RA)
            e.emit_sd(SP, ss - fr.fp_off, FP)
            e.emit_addi(FP, SP, ss)
        elif not direct:
            e.emit_addi(SP, SP, -16)  # the traced function's frame: parent ra, parent fp
            e.emit_sd(SP, 8, RA)
            e.emit_sd(SP, 0, FP)
            e.emit_addi(FP, SP, 16)
            e.emit_addi(SP, SP, -ss)  # the trampoline's: t0 (return into the body), fp
            e.emit_sd(SP, ss - 8, T0)
            e.emit_sd(SP, ss - 16, FP)
            e.emit_addi(FP, SP, ss)
        else:
            e.emit_addi(SP, SP, -ss)  # called directly: one frame, ra and fp (no kCFI word: CFI off)
            e.emit_sd(SP, ss - 8, RA)
            e.emit_sd(SP, ss - 16, FP)
            e.emit_addi(FP, SP, ss)

        if fr.tcc_off:
            e.emit_sd(FP, -fr.tcc_off, A6)  # 7.3: the tail-call count, saved on entry
        e.emit_sd(FP, -fr.sreg_off, S1)
        if flags & F_IP_ARG:
            e.emit_imm(T1, req.func_addr)
            e.emit_sd(FP, -fr.ip_off, T1)
        func_meta = slots
        e.emit_imm(T1, func_meta)  # emit_li for these small values in 6.x: the same bytes
        e.emit_sd(FP, -fr.nregs_off, T1)
        self._store_args(e, slots, fr.args_off)
        sessions = era.fsession and any(link.kind == "fsession" for link in req.phase("fentry"))
        if sessions:
            for i in range(fr.cookie_cnt):  # every session cookie starts at zero
                e.emit_sd(FP, -fr.cookie_off + 8 * i, ZERO)
            e.emit_sd(FP, -fr.retval_off, ZERO)  # fentry programs see a zero return value
        skips: list[tuple[str, int, int]] = []

        orig_call = req.func_addr
        if era.orig_call == "skip_frame" and flags & F_SKIP_FRAME:
            orig_call += era.skip
        elif era.orig_call == "orig_stack" and flags & F_ORIG_STACK:
            orig_call += era.skip  # 47c9214dcbea: never true here, ORIG_STACK was refused above
        elif era.orig_call == "call_orig" and flags & F_CALL_ORIG:
            orig_call += era.skip  # 8f3e00af8e52

        if flags & F_CALL_ORIG:
            e.emit_imm(A0, im)
            e.emit_call(req.tramp_enter, True)

        self._invoke_phase(e, req, req.phase("fentry") if era.fsession else req.of_kind("fentry"), fr,
                           bool(flags & F_RET_FENTRY_RET), func_meta, skips)

        branches: list[int] = []
        fmod = req.of_kind("fmod_ret")
        if fmod:
            e.emit_sd(FP, -fr.retval_off, ZERO)  # a stale value must not look like a verdict
            for link in fmod:
                self._invoke(e, req, link, fr, True, skips)
                e.emit_ld(T1, -fr.retval_off, FP)
                branches.append(e.pos)
                e.emit_nop()  # becomes bne t1, zero, <after the orig call>

        after_call: int | None = None
        if flags & F_CALL_ORIG:
            self._restore_args(e, min(slots, MAX_REG_ARGS), fr.args_off)
            if era.max_arg_slots > MAX_REG_ARGS:
                self._restore_stack_args(e, slots - MAX_REG_ARGS, fr.args_off, fr.stk_arg_off)
            if fr.tcc_off:
                e.emit_ld(A6, -fr.tcc_off, FP)  # 7.3: the count the original must see
            e.emit_call(orig_call, True)
            if fr.tcc_off:
                e.emit_sd(FP, -fr.tcc_off, A6)  # 7.3: the count the original left
            e.emit_sd(FP, -fr.retval_off, A0)
            if era.retval == "a0_a5":
                e.emit_sd(FP, -(fr.retval_off - 8), A5)
            if era.teardown == "ip_after_call":
                after_call = e.pos
                e.emit_nop()  # the teardown poke's site: NOP -> JUMP ip_epilogue
                e.emit_nop()

        if e.base is not None:
            for pos in branches:
                e.patch(pos, E.bne(T1, ZERO, e.pos - pos))

        func_meta |= 1 << IS_RETURN_SHIFT
        if sessions:
            e.emit_imm(T1, func_meta)  # 7.x: bpf_session_is_return() is true from here on
            e.emit_sd(FP, -fr.nregs_off, T1)
        self._invoke_phase(e, req, req.phase("fexit") if era.fsession else req.of_kind("fexit"), fr, False,
                           func_meta, skips)

        epilogue: int | None = None
        if flags & F_CALL_ORIG:
            if era.teardown == "ip_after_call":
                epilogue = e.pos
            e.emit_imm(A0, im)
            e.emit_call(req.tramp_exit, True)

        if flags & F_RESTORE_REGS:
            self._restore_args(e, min(slots, MAX_REG_ARGS), fr.args_off)

        if save_ret:
            self._reload_ret(e, req, fr, is_struct_ops)

        e.emit_ld(S1, -fr.sreg_off, FP)
        if fr.tcc_off:
            e.emit_ld(A6, -fr.tcc_off, FP)  # 7.3: the count handed back to the caller

        # epilogue
        if era.frames == "one":
            # 49b5e77ae3e2: SKIP_FRAME returns through [SP0-8], which the 16-byte sled wrote
            e.emit_ld(RA, ss - 8 if flags & F_SKIP_FRAME else ss - fr.retaddr_off, SP)
            e.emit_ld(FP, ss - fr.fp_off, SP)
            e.emit_addi(SP, SP, ss)
            e.emit_jalr(ZERO, RA, 0)
        elif not direct:
            e.emit_ld(T0, ss - 8, SP)
            e.emit_ld(FP, ss - 16, SP)
            e.emit_addi(SP, SP, ss)
            e.emit_ld(RA, 8, SP)
            e.emit_ld(FP, 0, SP)
            e.emit_addi(SP, SP, 16)
            e.emit_jalr(ZERO, RA if flags & F_SKIP_FRAME else T0, 0)
        else:
            e.emit_ld(RA, ss - 8, SP)
            e.emit_ld(FP, ss - 16, SP)
            e.emit_addi(SP, SP, ss)
            e.emit_jalr(ZERO, RA, 0)
        return Built(e.code, after_call, epilogue, tuple(skips))

    @staticmethod
    def _struct_ops_link(req: TrampRequest) -> bool:
        """7.3's ``is_struct_ops_tramp(fentry)``: exactly one fentry node, a struct_ops link. The
        request has no link types; as in the core (and the kernel wrapper), a struct_ops link is
        the one fentry program of an INDIRECT request."""
        fentry = req.phase("fentry")
        return bool(req.flags & F_INDIRECT) and len(req.links) == 1 and len(fentry) == 1 and fentry[0].kind == "fentry"

    def _invoke_phase(self, e: Emitter, req: TrampRequest, links: tuple[LinkReq, ...], fr: _Frame, save_ret: bool,
                      func_meta: int, skips: list[tuple[str, int, int]]) -> None:
        """``invoke_bpf``: each program of one phase; before a session program that uses its cookie,
        ``func_meta`` with that program's cookie index (cookies counted down from the first slot)."""
        cur_cookie = (fr.cookie_off - fr.args_off) // 8
        for link in links:
            if self.era.fsession and link.session_cookie:
                e.emit_imm(T1, func_meta | (cur_cookie << COOKIE_INDEX_SHIFT))
                e.emit_sd(FP, -fr.nregs_off, T1)
                cur_cookie -= 1
            self._invoke(e, req, link, fr, save_ret, skips)

    def _reload_ret(self, e: Emitter, req: TrampRequest, fr: _Frame, is_struct_ops: bool) -> None:
        era = self.era
        if era.retval == "a5_only":
            e.emit_ld(A0, -fr.retval_off, FP)
            return
        if era.struct_ops_ret == "slot":
            e.emit_ld(A0, -fr.retval_off, FP)  # [I] order before fd2e08128944: a0, then a5
            e.emit_ld(A5, -(fr.retval_off - 8), FP)
            return
        e.emit_ld(A5, -(fr.retval_off - 8), FP)
        if not is_struct_ops:
            e.emit_ld(A0, -fr.retval_off, FP)
            return
        # fd2e08128944: a0 from a5 per the BTF return type; unsigned 1/2-byte values as they are
        size, signed = req.model.ret_size, req.model.ret_signed
        if not signed and size in (1, 2):
            e.emit_mv(A0, A5)
        elif size == 1:
            e.emit_sextb(A0, A5)
        elif size == 2:
            e.emit_sexth(A0, A5)
        elif size == 4:
            e.emit_sextw(A0, A5)
        elif size == 8:
            e.emit_mv(A0, A5)
        else:
            raise _Fail(EINVAL, f"invalid size {size} for sign_extend")

    def _store_args(self, e: Emitter, slots: int, args_off: int) -> None:
        for i in range(slots):
            if i < MAX_REG_ARGS:
                e.emit_sd(FP, -args_off, A0 + i)
            else:
                # the caller's stack words sit above the traced function's 16-byte frame record
                e.emit_ld(T1, 16 + (i - MAX_REG_ARGS) * 8, FP)
                e.emit_sd(FP, -args_off, T1)
            args_off -= 8

    def _restore_args(self, e: Emitter, n: int, args_off: int) -> None:
        for i in range(n):
            e.emit_ld(A0 + i, -args_off, FP)
            args_off -= 8

    def _restore_stack_args(self, e: Emitter, n: int, args_off: int, stk_arg_off: int) -> None:
        for _ in range(max(0, n)):
            e.emit_ld(T1, -(args_off - MAX_REG_ARGS * 8), FP)
            e.emit_sd(FP, -stk_arg_off, T1)
            args_off -= 8
            stk_arg_off -= 8

    def _invoke(self, e: Emitter, req: TrampRequest, link: LinkReq, fr: _Frame, save_ret: bool,
                skips: list[tuple[str, int, int]]) -> None:
        """One program: cookie, enter, skip branch, the program, its return, exit (SEMANTICS 3.5);
        on a 7.x era first the nop that detaching the program turns into a jump over the call."""
        era = self.era
        nop = e.pos
        if era.teardown == "prog_skips":
            e.emit_nop()
        if link.cookie:
            e.emit_imm(T1, link.cookie)
            e.emit_sd(FP, -fr.run_ctx_off + COOKIE_OFF, T1)
        else:
            e.emit_sd(FP, -fr.run_ctx_off + COOKIE_OFF, ZERO)
        e.emit_imm(A0, link.prog)
        e.emit_addi(A1, FP, -fr.run_ctx_off)
        e.emit_call(req.prog_enter, True)
        if era.mv_s1_before_branch:
            e.emit_mv(S1, A0)  # 10541b374aa0: the skip path hands exit the start it got
        branch = e.pos
        e.emit_nop()  # becomes beq a0, zero, <exit>
        if not era.mv_s1_before_branch:
            e.emit_mv(S1, A0)
        e.emit_addi(A0, FP, -fr.args_off)
        e.emit_call(link.bpf_func, True)
        if save_ret:
            if era.retval == "a0_a5":
                e.emit_sd(FP, -fr.retval_off, A0)
                e.emit_sd(FP, -(fr.retval_off - 8), A5)
            else:
                e.emit_sd(FP, -fr.retval_off, A5)
        if e.base is not None:
            e.patch(branch, E.beq(A0, ZERO, e.pos - branch))
        e.emit_imm(A0, link.prog)
        e.emit_mv(A1, S1)
        e.emit_addi(A2, FP, -fr.run_ctx_off)
        e.emit_call(req.prog_exit, True)
        if era.teardown == "prog_skips":
            skips.append((link.kind, nop, e.pos))
