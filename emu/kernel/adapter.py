"""KernelJit: a tree's own RV64 trampoline JIT behind the plugin ``Jit`` protocol (ctypes).

Python fills the wrapper's flat ``struct sf_req`` (emu/kernel/shim/sf_wrapper.h) and never mirrors
a kernel struct; the wrapper builds the kernel's objects and calls ``arch_bpf_trampoline_size``,
``arch_prepare_bpf_trampoline`` and ``bpf_arch_text_poke`` as the core would. A negative return
from the kernel becomes ``Refused(errno)`` with the JIT's last ``pr_err`` as the reason.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

from sledfuzz.emu.impls.api import Image, PokeKind, PokeResult, Refused, TrampRequest
from sledfuzz.emu.kernel.build import KernelBuild, build
from sledfuzz.model.contract import E2BIG

SF_ABI_VERSION = 3
SF_MAX_ARGS = 16
SF_MAX_LINKS = 64
BTF_FMODEL_STRUCT_ARG = 0x1
BTF_FMODEL_SIGNED_ARG = 0x2
#: sledfuzz's link-kind numbering (sf_wrapper.h); "fsession" only on trees with the node API
_LINK_KIND: dict[str, int] = {"fentry": 0, "fmod_ret": 1, "fexit": 2, "fsession": 3}
SF_LINK_F_SESSION_COOKIE = 0x1
_POKE_KIND: dict[PokeKind, int] = {"nop": 0, "call": 1, "jump": 2}
_U64 = (1 << 64) - 1
#: The C side keeps per-call state in globals shared by every KernelJit on the same library.
_CALL_LOCK = threading.Lock()


class _SfReq(ctypes.Structure):
    """``struct sf_req`` of sf_wrapper.h, field for field (SF_ABI_VERSION 3)."""

    _fields_ = (
        ("abi", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("func_addr", ctypes.c_uint64),
        ("im_addr", ctypes.c_uint64),
        ("prog_enter", ctypes.c_uint64),
        ("prog_exit", ctypes.c_uint64),
        ("tramp_enter", ctypes.c_uint64),
        ("tramp_exit", ctypes.c_uint64),
        ("nr_args", ctypes.c_uint32),
        ("ret_size", ctypes.c_uint32),
        ("ret_flags", ctypes.c_uint32),
        ("nr_links", ctypes.c_uint32),
        ("arg_size", ctypes.c_uint8 * SF_MAX_ARGS),
        ("arg_flags", ctypes.c_uint8 * SF_MAX_ARGS),
        ("link_kind", ctypes.c_uint8 * SF_MAX_LINKS),
        ("link_prog", ctypes.c_uint64 * SF_MAX_LINKS),
        ("link_bpf_func", ctypes.c_uint64 * SF_MAX_LINKS),
        ("link_cookie", ctypes.c_uint64 * SF_MAX_LINKS),
        ("link_flags", ctypes.c_uint8 * SF_MAX_LINKS),
    )


@dataclass(frozen=True)
class KernelImage(Image):
    """An image of a 7.x tree, which has no ``ip_after_call``: each program call is preceded by a
    nop the JIT records (``bpf_tramp_image_add_skip``); detaching the program patches it into a
    jump over the call (``arch_bpf_trampoline_skip``). ``skips``: (link kind, nop, target) per
    program call, in emission order."""

    skips: tuple[tuple[str, int, int], ...] = ()


def _u8(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} = {value} does not fit the kernel's u8")
    return value


def _request(req: TrampRequest) -> _SfReq:
    """The flat request; sizes past SF_MAX_ARGS are not needed (the JIT refuses > 12 args)."""
    r = _SfReq()
    r.abi = SF_ABI_VERSION
    r.flags = req.flags & 0xFFFFFFFF
    r.func_addr = req.func_addr & _U64
    r.im_addr = req.im & _U64
    r.prog_enter = req.prog_enter & _U64
    r.prog_exit = req.prog_exit & _U64
    r.tramp_enter = req.tramp_enter & _U64
    r.tramp_exit = req.tramp_exit & _U64
    r.nr_args = _u8(len(req.model.args), "nr_args")
    r.ret_size = _u8(req.model.ret_size, "ret_size")
    r.ret_flags = BTF_FMODEL_SIGNED_ARG if req.model.ret_signed else 0
    for i, arg in enumerate(req.model.args[:SF_MAX_ARGS]):
        r.arg_size[i] = _u8(arg.size, f"args[{i}].size")
        r.arg_flags[i] = (BTF_FMODEL_STRUCT_ARG if arg.is_struct else 0) | (BTF_FMODEL_SIGNED_ARG if arg.signed else 0)
    r.nr_links = len(req.links)
    for i, link in enumerate(req.links):
        r.link_kind[i] = _LINK_KIND[link.kind]
        r.link_prog[i] = link.prog & _U64
        r.link_bpf_func[i] = link.bpf_func & _U64
        r.link_cookie[i] = link.cookie & _U64
        # a session program that calls bpf_session_cookie() (a field of fsession links only)
        r.link_flags[i] = SF_LINK_F_SESSION_COOKIE if getattr(link, "session_cookie", False) else 0
    return r


class KernelJit:
    """The ``Jit`` of a built tree. Calls are serialised: the C side keeps per-call state."""

    def __init__(self, kbuild: KernelBuild) -> None:
        self.build = kbuild
        lib = ctypes.CDLL(str(kbuild.library))
        u64, u32p, u64p = ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64)
        bufp = ctypes.POINTER(ctypes.c_uint8)
        lib.sf_abi_version.restype = ctypes.c_int
        lib.sf_abi_version.argtypes = ()
        lib.sf_tramp_size.restype = ctypes.c_int
        lib.sf_tramp_size.argtypes = (ctypes.POINTER(_SfReq),)
        lib.sf_tramp_emit.restype = ctypes.c_int
        lib.sf_tramp_emit.argtypes = (ctypes.POINTER(_SfReq), u64, bufp, ctypes.c_uint32, u32p, u64p, u64p)
        lib.sf_text_poke.restype = ctypes.c_int
        lib.sf_text_poke.argtypes = (u64, bufp, ctypes.c_int, ctypes.c_int, u64, u64)
        lib.sf_tramp_skips.restype = ctypes.c_int
        lib.sf_tramp_skips.argtypes = (u32p, u64p, u64p, ctypes.c_int)
        lib.sf_tramp_skip.restype = ctypes.c_int
        lib.sf_tramp_skip.argtypes = (u64, bufp, u64)
        lib.sf_last_message.restype = ctypes.c_char_p
        lib.sf_last_message.argtypes = ()
        if lib.sf_abi_version() != SF_ABI_VERSION:
            raise RuntimeError(f"{kbuild.library}: wrapper ABI {lib.sf_abi_version()} != {SF_ABI_VERSION}")
        self._lib = lib

    @classmethod
    def from_tree(cls, linux_src: Path | str | None = None, *, rvc: bool = True) -> KernelJit:
        """Build (or reuse) the library for a tree; raises KernelBuildError."""
        return cls(build(linux_src, rvc=rvc))

    def _refused(self, rc: int) -> Refused:
        message = self._lib.sf_last_message()
        return Refused(-rc, message.decode(errors="replace").strip() if message else "")

    def size(self, req: TrampRequest) -> int | Refused:
        """``arch_bpf_trampoline_size``: bytes, or the kernel's refusal."""
        if len(req.links) > SF_MAX_LINKS:
            return Refused(E2BIG, f"{len(req.links)} links > BPF_MAX_TRAMP_LINKS")
        r = _request(req)
        with _CALL_LOCK:
            rc = self._lib.sf_tramp_size(ctypes.byref(r))
            return self._refused(rc) if rc < 0 else int(rc)

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused:
        """``arch_prepare_bpf_trampoline`` into ``[image_addr, image_addr + image_size)``.

        ``code`` is the whole image as the RO pack holds it, the tail past ``used_len`` zeroed
        (in the kernel that tail is uninitialised).
        """
        if len(req.links) > SF_MAX_LINKS:
            return Refused(E2BIG, f"{len(req.links)} links > BPF_MAX_TRAMP_LINKS")
        if not 0 < image_size <= 1 << 20:
            raise ValueError(f"image_size {image_size} out of range")
        r = _request(req)
        buf = (ctypes.c_uint8 * image_size)()
        used = ctypes.c_uint32()
        after_call = ctypes.c_uint64()
        epilogue = ctypes.c_uint64()
        with _CALL_LOCK:
            rc = self._lib.sf_tramp_emit(
                ctypes.byref(r),
                image_addr & _U64,
                buf,
                image_size,
                ctypes.byref(used),
                ctypes.byref(after_call),
                ctypes.byref(epilogue),
            )
            if rc < 0:
                return self._refused(rc)
            n = 2 * SF_MAX_LINKS
            links, nops, targets = (ctypes.c_uint32 * n)(), (ctypes.c_uint64 * n)(), (ctypes.c_uint64 * n)()
            count = min(int(self._lib.sf_tramp_skips(links, nops, targets, n)), n)
        skips = tuple((req.links[links[i]].kind, int(nops[i]), int(targets[i]))
                      for i in range(count) if links[i] < len(req.links))
        return KernelImage(
            addr=image_addr,
            code=bytes(buf),
            used_len=used.value,
            ip_after_call=after_call.value or None,
            ip_epilogue=epilogue.value or None,
            skips=skips,
        )

    def tramp_skip(self, nop: int, site: bytes, target: int) -> PokeResult:
        """7.x ``arch_bpf_trampoline_skip``: the nop at ``nop`` becomes a jump to ``target``; rc 0 or errno."""
        if len(site) != 8:
            raise ValueError(f"a skip site is read as 8 bytes, got {len(site)}")
        buf = (ctypes.c_uint8 * 8)(*site)
        with _CALL_LOCK:
            rc = self._lib.sf_tramp_skip(nop & _U64, buf, target & _U64)
        return PokeResult(rc=-rc if rc < 0 else 0, site=bytes(buf))

    def text_poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        """``bpf_arch_text_poke`` on the 8 bytes at ``ip``; rc is 0 or a positive errno."""
        if len(site) != 8:
            raise ValueError(f"a poke site is 8 bytes, got {len(site)}")
        buf = (ctypes.c_uint8 * 8)(*site)
        with _CALL_LOCK:
            rc = self._lib.sf_text_poke(ip & _U64, buf, _POKE_KIND[old], _POKE_KIND[new], old_addr & _U64, new_addr & _U64)
        return PokeResult(rc=-rc if rc < 0 else 0, site=bytes(buf))
