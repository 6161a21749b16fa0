"""Era JITs: size vs emit, the 9f1e16fb1fc9 overrun, disassembled shapes, era differences."""

from __future__ import annotations

import itertools

import pytest

from sledfuzz.emu.impls.api import ArgModel, FuncModel, Image, LinkReq, Refused, TrampRequest
from sledfuzz.emu.impls.registry import resolve
from sledfuzz.emu.rv64.disasm import Insn, disassemble
from sledfuzz.model.contract import (
    E2BIG,
    ENOTSUPP,
    ERANGE,
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SKIP_FRAME,
    LinkKind,
)

FUNC = 0xFFFFFFFF80200000
IMAGE = 0xFFFFFFFF80400000
IM = 0xFFFFFFFF81000000  # linear-map object: lui + addiw, longer than the pre-fix sizing im's li


def req(kinds: tuple[LinkKind, ...], flags: int, nargs: int = 2, *, im: int = IM, func: int = FUNC,
        ret_size: int = 8, cookie: int = 0, progs: int = 0xFFFFFFFF80500000) -> TrampRequest:
    links = tuple(
        LinkReq(k, 0xFFFFFFFF81100000 + 0x100 * i, progs + 0x100 * i, cookie)
        for i, k in enumerate(kinds)
    )
    return TrampRequest(
        model=FuncModel(tuple(ArgModel(8) for _ in range(nargs)), ret_size=ret_size),
        links=links, flags=flags, func_addr=func, im=im,
        prog_enter=0xFFFFFFFF80600000, prog_exit=0xFFFFFFFF80600100,
        tramp_enter=0xFFFFFFFF80600200, tramp_exit=0xFFFFFFFF80600300,
    )


def text(i: Insn) -> str:
    """capstone's spelling without the c. prefix, jr ra as ret (what objdump prints)."""
    t = i.text.removeprefix("c.")
    return "ret" if t == "jr ra" else t


def listing(img: Image) -> list[str]:
    return [text(i) for i in disassemble(img.code[: img.used_len], IMAGE)]


FEXIT = req(("fentry", "fmod_ret", "fexit"), F_CALL_ORIG | F_SKIP_FRAME | F_IP_ARG, cookie=7)
FENTRY = req(("fentry",), F_RESTORE_REGS)
CLEAN = ["v6.3", "v6.6", "v6.8", "v6.11", "v6.12", "v6.16", "next-47c9214dcbea", "v6.19", "ftrace=v6.6,tramp=v6.3"]


def emit(name: str, r: TrampRequest, size: int = 4096) -> Image:
    out = resolve(name).jit.emit(r, IMAGE, size)
    assert isinstance(out, Image), out
    return out


@pytest.mark.parametrize("name", CLEAN)
@pytest.mark.parametrize("r", [FEXIT, FENTRY, req(("fexit",) * 3, F_CALL_ORIG | F_SKIP_FRAME, 8)])
def test_size_covers_emitted(name: str, r: TrampRequest) -> None:
    sized = resolve(name).jit.size(r)
    assert isinstance(sized, int)
    img = emit(name, r)
    assert img.used_len <= sized
    assert len(img.code) == 4096


def test_pre_9f1e16fb1fc9_overruns_its_size() -> None:
    # every call out of jal reach, so the sizing pass's two-insn calls leave no slack
    r = req(("fexit",), F_CALL_ORIG | F_SKIP_FRAME, progs=0xFFFFFFFF90000000)
    name = "v6.19-pre-9f1e16fb1fc9"
    sized = resolve(name).jit.size(r)
    assert isinstance(sized, int)
    img = emit(name, r, sized)  # no -E2BIG check before the fix
    assert img.used_len > sized
    # the fixed JIT refuses an image smaller than what it emits
    fixed = resolve("v6.19").jit.emit(r, IMAGE, img.used_len - 2)
    assert isinstance(fixed, Refused) and fixed.errno == E2BIG


def test_fexit_ends_with_ret_and_fentry_with_jr_t0() -> None:
    assert listing(emit("v6.19", FEXIT))[-1] == "ret"
    assert listing(emit("v6.19", FENTRY))[-1] == "jr t0"


def test_ip_after_call_holds_two_nops_and_epilogue_follows() -> None:
    img = emit("v6.19", FEXIT)
    assert img.ip_after_call is not None and img.ip_epilogue is not None
    off = img.ip_after_call - IMAGE
    assert img.code[off : off + 8] == (0x13).to_bytes(4, "little") * 2
    assert img.ip_after_call < img.ip_epilogue
    # teardown poke: NOP -> JUMP ip_epilogue at ip_after_call
    poke = resolve("v6.19").jit.text_poke(img.ip_after_call, img.code[off : off + 8], "nop", "jump", 0,
                                         img.ip_epilogue)
    assert poke.rc == 0
    insns = disassemble(poke.site, img.ip_after_call)
    assert [i.text.split(",")[0] for i in insns] == ["auipc t1", "jalr zero"]
    lo = int(insns[1].op_str.split(",")[-1], 0)
    assert img.ip_after_call + lo == img.ip_epilogue  # near: auipc t1, 0; jalr zero, lo(t1)


def test_fentry_only_has_no_teardown_site() -> None:
    img = emit("v6.19", FENTRY)
    assert img.ip_after_call is None and img.ip_epilogue is None


def test_orig_call_targets() -> None:
    """The call to the original: func+8 (v6.19), func+16 (v6.3), func itself (47c9214dcbea)."""

    def calls(name: str) -> list[int]:
        """Targets of every call the trampoline makes (jal, or auipc t1 + jalr ra)."""
        img = emit(name, req(("fexit",), F_CALL_ORIG | F_SKIP_FRAME))
        out = []
        insns = disassemble(img.code[: img.used_len], IMAGE)
        for a, b in itertools.pairwise(insns):
            if a.mnemonic == "auipc" and a.op_str.startswith("t1") and b.mnemonic == "jalr":
                hi = int(a.op_str.split(",")[1], 0)
                lo = int(b.op_str.split(",")[-1], 0)
                hi = hi - (1 << 20) if hi >> 19 else hi
                out.append((a.addr + (hi << 12) + lo) & ((1 << 64) - 1))
            elif a.mnemonic == "jal":
                out.append(int(a.op_str.split(",")[-1], 0))
        return out

    assert FUNC + 8 in calls("v6.19")
    assert FUNC + 16 in calls("v6.3")
    assert FUNC in calls("next-47c9214dcbea") and FUNC + 8 not in calls("next-47c9214dcbea")
    assert FUNC in calls("v6.19-pre-8f3e00af8e52")


def test_slot_limits() -> None:
    nine = req(("fentry",), F_RESTORE_REGS, 9)
    old = resolve("v6.8").jit.size(nine)
    assert isinstance(old, Refused) and old.errno == ENOTSUPP
    assert isinstance(resolve("v6.11").jit.size(nine), int)
    thirteen = req(("fentry",), F_RESTORE_REGS, 13)
    new = resolve("v6.19").jit.size(thirteen)
    assert isinstance(new, Refused) and new.errno == ENOTSUPP


def test_call_out_of_reach_is_erange() -> None:
    far = req(("fexit",), F_CALL_ORIG | F_SKIP_FRAME, func=IMAGE + (1 << 31))
    out = resolve("v6.19").jit.emit(far, IMAGE, 4096)
    assert isinstance(out, Refused) and out.errno == ERANGE


def test_struct_ops_frame_choice() -> None:
    so = req(("fentry",), F_INDIRECT | F_RET_FENTRY_RET, ret_size=8)
    good = listing(emit("v6.19", so))
    assert good[-1] == "ret"
    assert not any("t0" in t for t in good)  # one frame: no t0 saved or restored
    bad = listing(emit("v6.19-pre-1732ebc4a261", so))
    assert bad[-1] == "jr t0"  # the entry-style epilogue: returns through the caller's t0


def test_struct_ops_return_extension() -> None:
    so = req(("fentry",), F_INDIRECT | F_RET_FENTRY_RET, ret_size=8)
    fixed = emit("v6.19", so)
    pre = emit("v6.19-pre-fd2e08128944", so)
    fixed_text = listing(fixed)
    pre_text = listing(pre)
    assert "mv a0, a5" in fixed_text  # 64-bit return: a0 taken whole from a5
    assert "mv a0, a5" not in pre_text  # before: a0 reloaded from the prog's sext.w a0 slot


def test_mv_s1_placement() -> None:
    def order(name: str) -> list[str]:
        texts = listing(emit(name, FENTRY))
        k = texts.index("mv s1, a0")
        return texts[k - 1 : k + 2]

    assert order("v6.19")[2].startswith("beqz a0")
    assert order("v6.19-pre-10541b374aa0")[0].startswith("beqz a0")


def test_retval_slots() -> None:
    def stores_a5(name: str) -> int:
        img = emit(name, req(("fmod_ret",), F_CALL_ORIG | F_SKIP_FRAME))
        return sum(1 for t in listing(img) if t.startswith("sd a5"))

    assert stores_a5("v6.19") == 2  # after the prog and after the orig call
    assert stores_a5("v6.19-pre-7112cd26e606") == 1  # the prog's R0 only
