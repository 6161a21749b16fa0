"""The parts of a case (DESIGN §1): the traced function, its body, the links, the layout, as frozen
data, with the limits a case must keep and the one error type (``CaseError``, naming the field).

``model.case`` assembles them into a ``Case`` and is the public surface: import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from sledfuzz.model.contract import LinkKind, arg_slots

SCHEMA = 1
MASK64 = (1 << 64) - 1

LINK_KINDS: tuple[LinkKind, ...] = get_args(LinkKind)

#: Limits on case JSON: no case nests deeper than ~6 levels or needs more than 20 decimal digits.
MAX_JSON_DEPTH = 32
MAX_JSON_DIGITS = 40
#: Longest error message (a hostile file can put a megabyte into one field).
_MAX_MESSAGE = 300

MAX_ARGS_REPRESENTABLE = 13  # one more than the kernel's 12, so the refusal can be asked for
MAX_LINKS_REPRESENTABLE = 64


class CaseError(ValueError):
    """A case (or its JSON) is malformed. ``path`` names the field, e.g. ``links[2].kind``."""

    def __init__(self, path: str, message: str) -> None:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 20] + f"... ({len(message)} characters)"
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Arg:
    """One argument of the traced function as BTF describes it."""

    size: int = 8
    is_struct: bool = False
    signed: bool = False

    @property
    def slots(self) -> int:
        """8-byte slots (``model.contract.arg_slots``)."""
        return arg_slots(self.size)


@dataclass(frozen=True)
class Store:
    """The body's side effect: ``*(u64 *)slot[slot] = value`` (slot holds a data-region pointer)."""

    slot: int
    value: int


@dataclass(frozen=True)
class Body:
    """The traced function's body in the DESIGN §1 mini-language.

    ``ret = k + sum(coeffs[i] * slot[i])`` wrapping at 64 bits; with ``ret32`` the result is
    truncated to 32 bits and sign-extended (an ``int`` return). ``a5`` is the value the body
    leaves in a5 so that the parent's a5 is predictable.
    """

    k: int = 0
    coeffs: tuple[int, ...] = ()
    ret32: bool = False
    store: Store | None = None
    calls_helper: bool = False
    uses_saved: int = 0
    frame_pointer: bool = True
    compressed: bool = True
    a5: int = 0


@dataclass(frozen=True)
class BodyStore:
    """One store a compiled body makes outside its own stack frame (little-endian value)."""

    addr: int
    size: int
    value: int


@dataclass(frozen=True)
class CompiledBody:
    """The traced function is real compiled code: ``symbol`` of the ELF object at ``path``
    (content ``sha256``), placed so that the symbol is at ``layout.func``.

    Its meaning is data, measured once by running the function untraced with the case's argument
    slots and memory (``emu.elf``): the value it returns and the stores it makes outside its own
    frame, in order. The model reasons from these as it does from a mini-language body; replay
    measures them again and refuses a case whose object changed.
    """

    path: str
    symbol: str
    sha256: str
    ret: int = 0
    stores: tuple[BodyStore, ...] = ()


@dataclass(frozen=True)
class Function:
    """The traced function: BTF args, one 64-bit value per slot, the body, the BTF return type.

    ``compiled`` replaces the mini-language ``body`` (which then stays the default) with a real
    compiled function."""

    args: tuple[Arg, ...] = ()
    values: tuple[int, ...] = ()
    body: Body = field(default_factory=Body)
    ret_size: int = 8
    ret_signed: bool = False
    compiled: CompiledBody | None = None

    @property
    def nr_slots(self) -> int:
        return sum(a.slots for a in self.args)


@dataclass(frozen=True)
class Link:
    """One attached program: kind, what it returns (R0), its cookie, what enter returns.

    ``enter``: the value ``__bpf_prog_enter`` returns: 0 skips the program, 1 runs it without
    stats, >= 2 is a start time handed back to ``__bpf_prog_exit``.
    ``fsession`` (7.x): one program that runs in the fentry and in the fexit phase;
    ``session_cookie``: it calls ``bpf_session_cookie()`` (fsession only), so it gets a cookie
    slot of its own, zeroed on entry, that its fentry run writes and its fexit run reads.
    """

    kind: LinkKind
    r0: int = 0
    cookie: int = 0
    enter: int = 1
    wants_ip: bool = False
    session_cookie: bool = False


PROG_STRIDE = 0x100


@dataclass(frozen=True)
class Layout:
    """Where everything lives. Offsets between ``func``, ``image`` and ``hosts`` decide the
    auipc/jalr splits and the reach checks; ``im`` and ``progs`` only appear as immediates."""

    parent: int = 0xFFFFFFFF80100000
    func: int = 0xFFFFFFFF80200000
    image: int = 0xFFFFFFFF80400000
    hosts: int = 0xFFFFFFFF80600000
    ftrace_caller: int = 0xFFFFFFFF80200800
    im: int = 0xFFFFFFFF81000000
    progs: int = 0xFFFFFFFF81100000
    data: int = 0xFFFFFFFF80800000
    stack: int = 0xFFFFFFFF80A00000

    def prog_addr(self, index: int) -> int:
        """Address of the index-th link's ``struct bpf_prog`` (an immediate in the image)."""
        return (self.progs + index * PROG_STRIDE) & MASK64


DATA_SIZE = 0x1000
STACK_SIZE = 0x4000

#: What each layout address is, as a kernel would have it: (alignment, bytes before, bytes after)
#: the object certainly occupies. Code is 4-byte aligned, except the traced function: before v6.16
#: an RVC kernel aligns functions to 2 bytes only (6.12's arch/riscv/Kconfig selects no
#: FUNCTION_ALIGNMENT; compiled objects put functions at 2 mod 4), so 2 is what a kernel can have;
#: the traced function's sled may start 16 bytes before it; a trampoline
#: image and the host thunks take a page, the parent's call sits ``0x800`` into its page; the stack
#: pointer is 16-byte aligned (psABI), data pointers and kernel objects 8-byte aligned. Two
#: regions that share a byte cannot belong to one kernel. ``im`` and ``progs`` are only pointers
#: the image embeds (``progs`` for up to ``MAX_LINKS_REPRESENTABLE`` programs).
LAYOUT_REGIONS: dict[str, tuple[int, int, int]] = {
    "parent": (4, 0, 0x1000),
    "func": (2, 0x10, 0x100),
    "image": (4, 0, 0x1000),
    "hosts": (4, 0, 0x1000),
    "ftrace_caller": (4, 0, 0x20),
    "data": (8, 0, DATA_SIZE),
    "stack": (16, 0, STACK_SIZE),
}
LAYOUT_POINTERS: dict[str, tuple[int, int]] = {"im": (8, 8), "progs": (8, PROG_STRIDE * 64)}
