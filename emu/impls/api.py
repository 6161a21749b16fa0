"""The implementation plugin API (DESIGN §3): requests in, images and poke results out.

Everything here is plain frozen data so that an era JIT, the real kernel JIT (``emu/kernel``) and a
third party's plugin all answer the same request the same way. Addresses are absolute 64-bit
kernel-like values (e.g. 0xffffffff8xxxxxxx) so that ``li`` sequences have the kernel's length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from sledfuzz.model.caps import Capabilities, SledLayout
from sledfuzz.model.contract import LinkKind, arg_slots

PokeKind = Literal["nop", "call", "jump"]


@dataclass(frozen=True)
class ArgModel:
    """One BTF argument: its size in bytes and whether it is a struct passed by value."""

    size: int
    is_struct: bool = False
    signed: bool = False

    @property
    def slots(self) -> int:
        """8-byte argument slots it takes (``model.contract.arg_slots``)."""
        return arg_slots(self.size)


@dataclass(frozen=True)
class FuncModel:
    """The ``btf_func_model`` of the traced function."""

    args: tuple[ArgModel, ...]
    ret_size: int = 8
    ret_signed: bool = False

    @property
    def nr_arg_slots(self) -> int:
        return sum(a.slots for a in self.args)


@dataclass(frozen=True)
class LinkReq:
    """One attached program as the JIT sees it: the prog object, its code, its cookie.

    ``session_cookie``: an fsession program that calls ``bpf_session_cookie()``
    (``prog->call_session_cookie``), which gets a cookie slot of its own (7.x).
    """

    kind: LinkKind
    prog: int
    bpf_func: int
    cookie: int = 0
    session_cookie: bool = False


@dataclass(frozen=True)
class TrampRequest:
    """Everything ``arch_bpf_trampoline_size`` / ``arch_prepare_bpf_trampoline`` receive.

    ``links`` keep the core's grouping: fentry links, then fmod_ret, then fexit, each in link
    order. Host-call addresses stand in for the kernel's C helpers.
    """

    model: FuncModel
    links: tuple[LinkReq, ...]
    flags: int
    func_addr: int
    im: int
    prog_enter: int
    prog_exit: int
    tramp_enter: int
    tramp_exit: int

    def of_kind(self, kind: LinkKind) -> tuple[LinkReq, ...]:
        return tuple(link for link in self.links if link.kind == kind)

    def phase(self, kind: Literal["fentry", "fexit"]) -> tuple[LinkReq, ...]:
        """The programs of the fentry (or fexit) phase in link order: a session program is in both
        (kernel/bpf/trampoline.c puts its fentry node and its fexit node on the two lists)."""
        return tuple(link for link in self.links if link.kind in (kind, "fsession"))


@dataclass(frozen=True)
class Refused:
    """The implementation refused the request with an errno (positive value, e.g. ENOTSUPP)."""

    errno: int
    reason: str = ""


@dataclass(frozen=True)
class Image:
    """An emitted trampoline: the bytes at ``addr``, and the teardown poke's two addresses."""

    addr: int
    code: bytes
    used_len: int
    ip_after_call: int | None
    ip_epilogue: int | None
    #: 7.x: (link kind, nop, target) per program call, in emission order (``bpf_tramp_image_add_skip``)
    skips: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class PokeResult:
    """Outcome of a text poke: 0 or an errno, and the bytes at the site afterwards."""

    rc: int
    site: bytes


@runtime_checkable
class Jit(Protocol):
    """A trampoline JIT: a size pass that does not know the image address, and an emit pass."""

    def size(self, req: TrampRequest) -> int | Refused: ...

    def emit(self, req: TrampRequest, image_addr: int, image_size: int) -> Image | Refused: ...

    def text_poke(
        self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int
    ) -> PokeResult: ...


@runtime_checkable
class Patcher(Protocol):
    """An ftrace (or BPF-prologue) sled scheme: compiler bytes, init, patch, unpatch."""

    def compiler_sled(self, sled: SledLayout) -> bytes: ...

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes: ...

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int) -> bytes: ...

    def unpatch(self, sled: SledLayout, func: int, ftrace_caller: int) -> bytes: ...


@dataclass(frozen=True)
class Implementation:
    """A named implementation: declared capabilities, a patcher and a JIT.

    ``derives_from`` (plugins): the configuration this one changes, e.g. ``"v6.19"``; a
    counterexample found on it must pass there (the origin check), as for a built-in bug
    configuration and its era. None: no origin check."""

    name: str
    caps: Capabilities
    patcher: Patcher
    jit: Jit
    description: str = ""
    derives_from: str | None = None


ImplFactory = Callable[[], Implementation]


# ---------------------------------------------------------------------------------------------
# What the scenario's experiments drive beyond Patcher and Jit (optional: an implementation
# without them is run and judged, only the experiments that need them are skipped)


class ConcurrencyModel(Protocol):
    """How a patch reaches the text, for I-TORN (``emu.impls.patchers.Concurrency``)."""

    @property
    def stop_machine(self) -> bool: ...

    @property
    def preemptible(self) -> bool: ...

    @property
    def summary(self) -> str: ...


class FtraceMechanism(Protocol):
    """ftrace's side of kernel-function sleds: the scheme, how ``ftrace_modify_call`` verifies
    the old call, and how a patch lands (the poke and torn-state experiments, I-POKE and I-TORN).
    ``emu.impls.patchers.FtracePatcher`` is the era implementation."""

    @property
    def era(self) -> str: ...

    @property
    def scheme(self) -> str: ...

    @property
    def concurrency(self) -> ConcurrencyModel: ...

    def patch_size(self) -> int: ...

    def body_offset(self) -> int: ...

    def init_sled(self, sled: SledLayout, func: int, ftrace_caller: int, *, nop_ops: int = 0) -> bytes: ...

    def patch(self, sled: SledLayout, func: int, target: int, ftrace_caller: int, *, ops: int = 0) -> bytes: ...

    def modify_call(self, sled: SledLayout, func: int, site: bytes, old_target: int, new_target: int,
                    ftrace_caller: int) -> PokeResult: ...

    def wrong_old_site(self, sled: SledLayout, func: int, site: bytes, target: int,
                       ftrace_caller: int) -> tuple[bytes, int]: ...


@runtime_checkable
class FtracePatched(Protocol):
    """A ``Patcher`` whose kernel-function sleds go through an ftrace mechanism
    (``emu.impls.patchers.SledPatchers``)."""

    @property
    def ftrace(self) -> FtraceMechanism: ...


@runtime_checkable
class TrampSkipper(Protocol):
    """A 7.x ``Jit`` that detaches a program by patching its nop into a jump over its call
    (``arch_bpf_trampoline_skip``; the teardown when an ``Image`` carries ``skips``)."""

    def tramp_skip(self, nop: int, site: bytes, target: int) -> PokeResult: ...
