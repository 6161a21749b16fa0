"""The kernel adapter on a real tree: builds, sizes, emits, refuses and pokes like the kernel.

Expected values come from the RISC-V ISA and SEMANTICS 2-3 (decoded with capstone, run on
unicorn), never from the adapter. Needs a Linux tree: Debian's linux-source-6.12 tarball, or
SLEDFUZZ_LINUX_SRC=PATH (a directory or tarball).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import capstone
import pytest
import unicorn
from unicorn import riscv_const as rv

from sledfuzz.emu.impls.api import ArgModel, FuncModel, Image, Jit, LinkReq, Refused, TrampRequest
from sledfuzz.emu.kernel.adapter import KernelJit
from sledfuzz.emu.kernel.build import JIT_C, NEEDED, KernelBuildError, build, default_linux_src, read_tree
from sledfuzz.model.contract import (
    E2BIG,
    EFAULT,
    ENOTSUPP,
    ERANGE,
    F_CALL_ORIG,
    F_IP_ARG,
    F_ORIG_STACK,
    F_RESTORE_REGS,
    F_SKIP_FRAME,
)
from tests.support.tools import skip_if_missing


def _linux_src() -> Path | None:
    env = os.environ.get("SLEDFUZZ_LINUX_SRC")
    return Path(env) if env else default_linux_src()


pytestmark = [
    pytest.mark.kernel,
    skip_if_missing(
        _linux_src() is None,
        reason="no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH",
    ),
]

FUNC = 0xFFFFFFFF80123400
IMAGE = 0xFFFFFFFF01800000
IM = 0xFF60000081234560
HELPERS = 0xFFFFFFFF80900000
PROG_ENTER, PROG_EXIT, TRAMP_ENTER, TRAMP_EXIT = (HELPERS + 0x100 * i for i in range(4))


@pytest.fixture(scope="module")
def jit() -> KernelJit:
    return KernelJit.from_tree(_linux_src())


def _req(kinds: tuple[str, ...], flags: int, nargs: int = 2) -> TrampRequest:
    links = tuple(
        LinkReq(kind=k, prog=0xFFFFFFC600010000 + 0x1000 * i, bpf_func=0xFFFFFFFF01000000 + 0x800 * i)  # type: ignore[arg-type]
        for i, k in enumerate(kinds)
    )
    return TrampRequest(
        model=FuncModel(args=tuple(ArgModel(8) for _ in range(nargs))),
        links=links,
        flags=flags,
        func_addr=FUNC,
        im=IM,
        prog_enter=PROG_ENTER,
        prog_exit=PROG_EXIT,
        tramp_enter=TRAMP_ENTER,
        tramp_exit=TRAMP_EXIT,
    )


def _image(jit: KernelJit, req: TrampRequest) -> tuple[int, Image]:
    size = jit.size(req)
    assert isinstance(size, int), size
    image = jit.emit(req, IMAGE, size)
    assert isinstance(image, Image), image
    return size, image


def _disasm(image: Image) -> list[Any]:
    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
    md.detail = True
    insns = list(md.disasm(image.code[: image.used_len], image.addr))
    assert sum(i.size for i in insns) == image.used_len, "undecodable bytes in the image"
    return insns


def _is_indirect_jump(insn: Any, base: str) -> bool:
    """``jalr zero, 0(base)``, in any spelling capstone uses (jr, c.jr, ret, jalr)."""
    text = f"{insn.mnemonic} {insn.op_str}".replace(" ", "")
    return text in {f"jr{base}", f"c.jr{base}", f"jalrzero,0({base})", f"jalrzero,{base},0"} or (
        base == "ra" and insn.mnemonic in {"ret", "c.ret"}
    )


def test_builds_from_the_tree_and_records_the_point_release(jit: KernelJit) -> None:
    assert isinstance(jit, Jit)
    kb = jit.build
    assert kb.library.is_file()
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", kb.version), kb.version
    if kb.source == default_linux_src():
        assert kb.version.startswith("6.12.")
        assert kb.tree_name == "linux-source-6.12"


def test_rebuilding_the_same_tree_hits_the_cache(jit: KernelJit) -> None:
    again = build(_linux_src())
    assert again.from_cache
    assert again.library == jit.build.library
    assert again.content_hash == jit.build.content_hash


@pytest.mark.parametrize(
    ("kinds", "flags"),
    [
        (("fentry",), F_RESTORE_REGS),
        (("fentry", "fexit"), F_CALL_ORIG | F_SKIP_FRAME),
        (("fmod_ret", "fmod_ret", "fexit"), F_CALL_ORIG | F_SKIP_FRAME | F_IP_ARG),
    ],
)
def test_size_is_at_least_the_emitted_length(jit: KernelJit, kinds: tuple[str, ...], flags: int) -> None:
    size, image = _image(jit, _req(kinds, flags))
    assert 0 < image.used_len <= size
    assert len(image.code) == size
    assert image.code[image.used_len :] == bytes(size - image.used_len)


def test_fentry_only_returns_into_the_traced_body_through_t0(jit: KernelJit) -> None:
    _, image = _image(jit, _req(("fentry",), F_RESTORE_REGS))
    last = _disasm(image)[-1]
    assert _is_indirect_jump(last, "t0"), f"{last.mnemonic} {last.op_str}"
    assert image.ip_after_call is None and image.ip_epilogue is None


def test_fexit_returns_to_the_parent_through_ra(jit: KernelJit) -> None:
    _, image = _image(jit, _req(("fentry", "fexit"), F_CALL_ORIG | F_SKIP_FRAME))
    last = _disasm(image)[-1]
    assert _is_indirect_jump(last, "ra"), f"{last.mnemonic} {last.op_str}"


def test_teardown_addresses_lie_inside_the_image(jit: KernelJit) -> None:
    _, image = _image(jit, _req(("fentry", "fexit"), F_CALL_ORIG | F_SKIP_FRAME))
    assert image.ip_after_call is not None and image.ip_epilogue is not None
    end = image.addr + image.used_len
    assert image.addr <= image.ip_after_call < image.ip_epilogue < end
    off = image.ip_after_call - image.addr
    nop = (0x00000013).to_bytes(4, "little")
    assert image.code[off : off + 8] == nop + nop, "ip_after_call must be the two-nop poke site"


def test_orig_stack_is_refused_with_enotsupp(jit: KernelJit) -> None:
    req = _req(("fexit",), F_CALL_ORIG | F_SKIP_FRAME | F_ORIG_STACK)
    assert jit.size(req) == Refused(ENOTSUPP, "")
    assert isinstance(jit.emit(req, IMAGE, 4096), Refused)


def test_thirteen_arguments_are_refused_with_enotsupp(jit: KernelJit) -> None:
    req = _req(("fentry",), F_RESTORE_REGS, nargs=13)
    refused = jit.size(req)
    assert isinstance(refused, Refused) and refused.errno == ENOTSUPP
    twelve = jit.size(_req(("fentry",), F_RESTORE_REGS, nargs=12))
    assert isinstance(twelve, int)


def _run_to_first_call(image: Image) -> tuple[int, int]:
    """Run the image on unicorn up to its first call; return (a0 at the call, call target)."""
    insns = _disasm(image)
    call = next(i for i in insns if i.mnemonic in {"jalr", "jal"} and i.op_str.startswith("ra"))
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
    uc.mem_map(image.addr, 0x2000)
    uc.mem_write(image.addr, image.code)
    uc.mem_map(HELPERS, 0x1000)  # the call's target is fetched, never run
    stack = 0x7F0000000000
    uc.mem_map(stack - 0x10000, 0x10000)
    uc.reg_write(rv.UC_RISCV_REG_SP, stack - 0x100)
    uc.reg_write(rv.UC_RISCV_REG_T0, FUNC + 8)
    uc.emu_start(image.addr, call.address)
    a0 = uc.reg_read(rv.UC_RISCV_REG_A0)
    uc.emu_start(call.address, 0, count=1)
    return a0, uc.reg_read(rv.UC_RISCV_REG_PC)


def test_im_pointer_is_loaded_as_the_requested_kernel_address(jit: KernelJit) -> None:
    _, image = _image(jit, _req(("fexit",), F_CALL_ORIG | F_SKIP_FRAME))
    a0, target = _run_to_first_call(image)
    assert (a0, target) == (IM, TRAMP_ENTER)


def test_prog_pointer_is_loaded_as_the_requested_kernel_address(jit: KernelJit) -> None:
    req = _req(("fentry",), F_RESTORE_REGS)
    _, image = _image(jit, req)
    a0, target = _run_to_first_call(image)
    assert (a0, target) == (req.links[0].prog, PROG_ENTER)


def _auipc_jalr(site: bytes, ip: int) -> tuple[int, int, int]:
    """Decode ``auipc rA, hi; jalr rd, lo(rA)``: (auipc rd, jalr rd, target)."""
    w0, w1 = int.from_bytes(site[:4], "little"), int.from_bytes(site[4:], "little")
    assert w0 & 0x7F == 0x17 and w1 & 0x7F == 0x67, site.hex()
    hi = w0 & 0xFFFFF000
    hi = hi - (1 << 32) if hi & 0x80000000 else hi
    lo = w1 >> 20
    lo = lo - (1 << 12) if lo & 0x800 else lo
    assert (w1 >> 15) & 0x1F == (w0 >> 7) & 0x1F, "jalr must use the auipc's register"
    return (w0 >> 7) & 0x1F, (w1 >> 7) & 0x1F, (ip + hi + lo) & ((1 << 64) - 1)


def test_text_poke_nop_to_call_writes_auipc_t1_jalr_t0(jit: KernelJit) -> None:
    ip = 0xFFFFFFFF01000000
    nops = (0x00000013).to_bytes(4, "little") * 2
    for target in (IMAGE, IMAGE + 0x800, ip - 0x801):  # both signs, and the bit-11 edge
        res = jit.text_poke(ip, nops, "nop", "call", 0, target)
        assert res.rc == 0
        assert _auipc_jalr(res.site, ip) == (6, 5, target)  # auipc t1; jalr t0, lo(t1)


def test_text_poke_with_the_wrong_old_kind_is_efault(jit: KernelJit) -> None:
    ip = 0xFFFFFFFF01000000
    nops = (0x00000013).to_bytes(4, "little") * 2
    res = jit.text_poke(ip, nops, "call", "nop", IMAGE, 0)
    assert res.rc == EFAULT
    assert res.site == nops


def test_a_tree_that_does_not_build_gives_a_clear_error(
    jit: KernelJit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _linux_src()
    assert src is not None
    files, _, _ = read_tree(src)
    tree = tmp_path / "linux-broken"
    for rel in NEEDED:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(files[rel])
    jit_c = tree / JIT_C
    text = jit_c.read_text()
    # a newer kernel that changed the signature of bpf_trampoline_enter()
    assert "bpf_trampoline_enter(p)" in text
    jit_c.write_text(text.replace("bpf_trampoline_enter(p)", "bpf_trampoline_enter(p, ctx)"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(KernelBuildError) as err:
        build(tree)
    message = str(err.value)
    assert "arch/riscv/net/bpf_jit_comp64.c" in message
    assert "too many arguments" in message
    assert "Traceback" not in message and "\n" not in message


def test_a_helper_out_of_auipc_jalr_reach_is_refused_with_erange(jit: KernelJit) -> None:
    req = _req(("fentry",), F_RESTORE_REGS)
    far = TrampRequest(**{**vars(req), "prog_enter": IMAGE + (1 << 31) + 0x1000})
    size = jit.size(far)
    assert isinstance(size, int)  # the size pass has no image address, so it cannot know
    refused = jit.emit(far, IMAGE, size)
    assert isinstance(refused, Refused) and refused.errno == ERANGE
    assert "out of range" in refused.reason


def test_more_than_38_links_is_e2big(jit: KernelJit) -> None:
    refused = jit.size(_req(("fentry",) * 39, F_RESTORE_REGS))
    assert isinstance(refused, Refused) and refused.errno == E2BIG
    assert isinstance(jit.size(_req(("fentry",) * 38, F_RESTORE_REGS)), int)
