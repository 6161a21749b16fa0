"""The v6.12 era against the real 6.12 JIT built from the tree: byte-identical images and refusals."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from sledfuzz.emu.impls.api import ArgModel, FuncModel, Image, LinkReq, Refused, TrampRequest
from sledfuzz.emu.impls.eras import ERAS
from sledfuzz.emu.impls.jit import EraJit
from sledfuzz.emu.kernel.adapter import KernelJit
from sledfuzz.emu.kernel.build import default_linux_src
from sledfuzz.model.contract import (
    F_CALL_ORIG,
    F_INDIRECT,
    F_IP_ARG,
    F_RESTORE_REGS,
    F_RET_FENTRY_RET,
    F_SKIP_FRAME,
    LinkKind,
)
from tests.support.tools import missing

pytestmark = pytest.mark.kernel


def _request(rnd: random.Random) -> TrampRequest:
    kinds: list[LinkKind] = [rnd.choice(["fentry", "fmod_ret", "fexit"]) for _ in range(rnd.randrange(0, 5))]
    links = []
    for kind in ("fentry", "fmod_ret", "fexit"):
        for k in kinds:
            if k == kind:
                links.append(LinkReq(kind, rnd.choice([rnd.randrange(1 << 64), 0xFFFFFFFF81100000]),
                                     0xFFFFFFFF80410000 + rnd.randrange(1 << 21) * 2,
                                     rnd.choice([0, 5, rnd.randrange(1 << 64)])))
    if rnd.random() < 0.2:
        flags = F_INDIRECT | (F_RET_FENTRY_RET if rnd.random() < 0.8 else 0)
    else:
        flags = F_CALL_ORIG | F_SKIP_FRAME if any(k != "fentry" for k in kinds) else F_RESTORE_REGS
        flags |= F_IP_ARG if rnd.random() < 0.3 else 0
    if rnd.random() < 0.1:
        flags = rnd.randrange(0x200)
    args = tuple(ArgModel(rnd.choice([1, 2, 4, 8, 16]), rnd.random() < 0.2, rnd.random() < 0.5)
                 for _ in range(rnd.randrange(14)))
    return TrampRequest(
        model=FuncModel(args, ret_size=rnd.choice([0, 1, 2, 4, 8]), ret_signed=rnd.random() < 0.5),
        links=tuple(links), flags=flags,
        func_addr=rnd.choice([0xFFFFFFFF80200000, 0xFFFFFFFF80000000 + rnd.randrange(1 << 31) * 2]),
        im=rnd.randrange(1 << 64),
        prog_enter=0xFFFFFFFF80600000, prog_exit=0xFFFFFFFF80600100,
        tramp_enter=0xFFFFFFFF80600200, tramp_exit=rnd.choice([0xFFFFFFFF80600300, 0xFFFFFFFF80600300 + (1 << 33)]),
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, Refused) or isinstance(b, Refused):
        return isinstance(a, Refused) and isinstance(b, Refused) and a.errno == b.errno
    if isinstance(a, Image) and isinstance(b, Image):
        return (a.code, a.used_len, a.ip_after_call, a.ip_epilogue) == (b.code, b.used_len, b.ip_after_call, b.ip_epilogue)
    return a == b


@pytest.mark.parametrize("rvc", [True, False])
def test_v612_era_is_byte_identical_to_the_tree(rvc: bool) -> None:
    if not os.environ.get("SLEDFUZZ_LINUX_SRC") and default_linux_src() is None:
        missing("no Linux tree: apt-get install linux-source-6.12, or set SLEDFUZZ_LINUX_SRC=PATH")
    if shutil.which("gcc") is None:
        missing("host gcc missing (apt-get install gcc)")
    kernel = KernelJit.from_tree(rvc=rvc)  # a tree that does not build is a failure, not a skip
    era = EraJit(ERAS["v6.12"], rvc=rvc)
    rnd = random.Random(612 + rvc)
    image = 0xFFFFFFFF80400000
    for _ in range(400):
        req = _request(rnd)
        sized = kernel.size(req)
        assert _same(sized, era.size(req)), req
        if isinstance(sized, Refused):
            continue
        for size in (max(sized, 16), max(16, sized - 24)):  # fits; and too small (-E2BIG)
            assert _same(kernel.emit(req, image, size), era.emit(req, image, size)), (req, size)
