"""The case (DESIGN §1): everything needed to replay one patched call, as plain data.

A case never names the implementation under test. It is frozen, validated on construction from
JSON (one ``CaseError`` naming the offending field), and serialises to a versioned JSON form
(``"schema": 1``) that round-trips exactly.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, cast, get_args

from model.caps import TARGET_KINDS, TargetKind

SCHEMA = 1
MASK64 = (1 << 64) - 1

LinkKind = Literal["fentry", "fmod_ret", "fexit", "fsession"]
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
        """8-byte slots: round_up(size, 8) / 8 (a 16-byte struct takes two)."""
        return (self.size + 7) // 8


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


@dataclass(frozen=True)
class Case:
    """One patched call, implementation-free.

    ``flags`` None means the core stage derives them from the links (DESIGN §4); an int puts the
    case in raw-flags mode. ``teardown`` retires the image while the original runs.
    """

    target: TargetKind
    function: Function
    sled: str
    links: tuple[Link, ...] = ()
    layout: Layout = field(default_factory=Layout)
    flags: int | None = None
    teardown: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        validate(self)

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA}
        out.update(_to_plain(self))
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @staticmethod
    def from_dict(data: Any) -> Case:
        return case_from_dict(data)

    @staticmethod
    def from_json(text: str) -> Case:
        return case_from_dict(parse_json(text))


# ---------------------------------------------------------------------------------------------
# validation


def validate(case: Case) -> None:
    """Raise CaseError naming the first field that is out of its domain."""
    if case.target not in TARGET_KINDS:
        raise CaseError("target", f"expected one of {', '.join(TARGET_KINDS)}, got {case.target!r}")
    fn = case.function
    if len(fn.args) > MAX_ARGS_REPRESENTABLE:
        raise CaseError("function.args", f"at most {MAX_ARGS_REPRESENTABLE} arguments, got {len(fn.args)}")
    for i, arg in enumerate(fn.args):
        where = f"function.args[{i}]"
        if arg.is_struct:
            if not 1 <= arg.size <= 16:
                raise CaseError(f"{where}.size", f"a struct is 1..16 bytes, got {arg.size}")
        elif arg.size not in (1, 2, 4, 8):
            raise CaseError(f"{where}.size", f"a scalar is 1, 2, 4 or 8 bytes, got {arg.size}")
    if len(fn.values) != fn.nr_slots:
        raise CaseError("function.values", f"expected one value per slot ({fn.nr_slots}), got {len(fn.values)}")
    for i, v in enumerate(fn.values):
        _check_u64(f"function.values[{i}]", v)
    body = fn.body
    if len(body.coeffs) > fn.nr_slots:
        raise CaseError("function.body.coeffs", f"at most one coefficient per slot ({fn.nr_slots})")
    for i, c in enumerate(body.coeffs):
        if not -(1 << 11) <= c < (1 << 11):
            raise CaseError(f"function.body.coeffs[{i}]", f"expected -2048..2047, got {c}")
    _check_u64("function.body.k", body.k)
    _check_u64("function.body.a5", body.a5)
    if not 0 <= body.uses_saved <= 11:
        raise CaseError("function.body.uses_saved", f"expected 0..11, got {body.uses_saved}")
    if body.store is not None:
        st = body.store
        if not 0 <= st.slot < fn.nr_slots:
            raise CaseError("function.body.store.slot", f"expected a slot 0..{fn.nr_slots - 1}, got {st.slot}")
        _check_u64("function.body.store.value", st.value)
        ptr = fn.values[st.slot]
        if not (case.layout.data <= ptr and ptr + 8 <= case.layout.data + DATA_SIZE and ptr % 8 == 0):
            raise CaseError(
                f"function.values[{st.slot}]",
                f"the store's slot must hold an 8-byte aligned pointer into the data region "
                f"[{case.layout.data:#x}, {case.layout.data + DATA_SIZE:#x}), got {ptr:#x}",
            )
    if fn.compiled is not None:
        _validate_compiled(case)
    if fn.ret_size not in (0, 1, 2, 4, 8):
        raise CaseError("function.ret_size", f"expected 0, 1, 2, 4 or 8, got {fn.ret_size}")
    if not isinstance(case.sled, str) or not _sled_key_ok(case.sled):
        raise CaseError("sled", f"expected 'N,M/c' or 'N,M/w' (patchable-function-entry), got {case.sled!r}")
    if len(case.links) > MAX_LINKS_REPRESENTABLE:
        raise CaseError("links", f"at most {MAX_LINKS_REPRESENTABLE} links, got {len(case.links)}")
    for i, link in enumerate(case.links):
        if link.kind not in LINK_KINDS:
            raise CaseError(f"links[{i}].kind", f"expected one of {', '.join(LINK_KINDS)}, got {link.kind!r}")
        _check_u64(f"links[{i}].r0", link.r0)
        _check_u64(f"links[{i}].cookie", link.cookie)
        _check_u64(f"links[{i}].enter", link.enter)
        if link.session_cookie and link.kind != "fsession":
            raise CaseError(f"links[{i}].session_cookie", "only an fsession program can call bpf_session_cookie()")
    if case.target == "struct_ops" and (len(case.links) != 1 or case.links[0].kind != "fentry"):
        raise CaseError("links", "a struct_ops case has exactly one fentry link")
    _check_layout(case.layout)
    if case.flags is not None and not 0 <= case.flags < (1 << 10):
        raise CaseError("flags", f"expected a BPF_TRAMP_F_* mask below 0x400, got {case.flags:#x}")
    if not 0 <= case.seed < (1 << 64):
        raise CaseError("seed", f"expected 0..2^64-1, got {case.seed}")


def _validate_compiled(case: Case) -> None:
    comp = case.function.compiled
    assert comp is not None
    if case.target != "kernel_function":
        raise CaseError("function.compiled", f"a compiled function is traced as a kernel_function, not {case.target}")
    if case.function.body != Body():
        raise CaseError("function.body", "a compiled function has no mini-language body (leave it empty)")
    if not comp.path or not comp.symbol:
        raise CaseError("function.compiled", "path and symbol are required")
    if len(comp.sha256) != 64 or any(c not in "0123456789abcdef" for c in comp.sha256):
        raise CaseError("function.compiled.sha256", f"expected 64 lowercase hex digits, got {comp.sha256!r}")
    _check_u64("function.compiled.ret", comp.ret)
    for i, st in enumerate(comp.stores):
        if st.size not in (1, 2, 4, 8):
            raise CaseError(f"function.compiled.stores[{i}].size", f"expected 1, 2, 4 or 8, got {st.size}")
        _check_u64(f"function.compiled.stores[{i}].addr", st.addr)
        if not 0 <= st.value < (1 << (8 * st.size)):
            raise CaseError(f"function.compiled.stores[{i}].value", f"does not fit {st.size} bytes: {st.value:#x}")


_LAYOUT_FIELDS = tuple(f.name for f in fields(Layout))
_LAYOUT_REGIONS = tuple((name, *spec) for name, spec in LAYOUT_REGIONS.items())
_TOP = MASK64 + 1


def _check_layout(lay: Layout) -> None:
    """Every address aligned as a kernel's would be, every object inside the 64-bit address space,
    no two mapped objects sharing a byte (``LAYOUT_REGIONS``). Runs for every generated case:
    the common path builds no strings."""
    for name in _LAYOUT_FIELDS:
        v = getattr(lay, name)
        if type(v) is not int or not 0 <= v <= MASK64:
            _check_u64(f"layout.{name}", v)
    spans: list[tuple[int, int, str]] = []
    for name, align, before, after in _LAYOUT_REGIONS:
        addr = getattr(lay, name)
        if addr % align:
            raise CaseError(f"layout.{name}", f"expected a {align}-byte aligned address, got {addr:#x}")
        lo, hi = addr - before, addr + after
        if lo < 0 or hi > _TOP:
            raise CaseError(f"layout.{name}", f"[{lo & MASK64:#x}, {hi & MASK64:#x}) wraps around the address space "
                                              f"(address {addr:#x})")
        spans.append((lo, hi, name))
    for name, (align, extent) in LAYOUT_POINTERS.items():
        addr = getattr(lay, name)
        if addr % align:
            raise CaseError(f"layout.{name}", f"expected a {align}-byte aligned address, got {addr:#x}")
        if addr + extent > _TOP:
            raise CaseError(f"layout.{name}", f"{addr:#x} + {extent:#x} wraps around the address space")
    spans.sort()
    for (lo1, hi1, n1), (lo2, hi2, n2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise CaseError(f"layout.{n2}", f"[{lo2:#x}, {hi2:#x}) overlaps layout.{n1} [{lo1:#x}, {hi1:#x})")


def _sled_key_ok(key: str) -> bool:
    try:
        nm, width = key.split("/")
        n_s, m_s = nm.split(",")
        n, m = int(n_s), int(m_s)
    except ValueError:
        return False
    return width in ("c", "w") and 0 < n <= 16 and 0 <= m < n


def _check_u64(path: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MASK64:
        raise CaseError(path, f"expected an unsigned 64-bit integer, got {value!r}")


# ---------------------------------------------------------------------------------------------
# JSON <-> dataclasses, with field paths in every error

_HEX_FIELDS = {f.name for f in fields(Layout)} | {"values", "r0", "cookie", "k", "a5", "value", "ret", "addr"}


def _to_plain(obj: Any, name: str = "") -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: _to_plain(getattr(obj, f.name), f.name) for f in fields(obj)}
        if isinstance(obj, Function) and obj.compiled is None:
            del out["compiled"]  # mini-language cases keep their schema-1 form byte for byte
        if isinstance(obj, Link) and not obj.session_cookie:
            del out["session_cookie"]  # likewise for links without a session cookie
        return out
    if isinstance(obj, tuple):
        return [_to_plain(x, name) for x in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and name in _HEX_FIELDS:
        return f"{obj:#x}"
    return obj


def case_from_dict(data: Any) -> Case:
    """Build a Case from parsed JSON, raising CaseError with the field path on any mismatch."""
    obj = _obj(data, "")
    schema = obj.get("schema")
    if schema != SCHEMA:
        raise CaseError("schema", f"expected {SCHEMA}, got {schema!r}")
    _only(obj, "", {"schema", "target", "function", "sled", "links", "layout", "flags", "teardown", "seed"})
    fobj = _obj(_req(obj, "function", ""), "function")
    _only(fobj, "function", {"args", "values", "body", "ret_size", "ret_signed", "compiled"})
    args = tuple(_arg(a, f"function.args[{i}]") for i, a in enumerate(_list(fobj.get("args", []), "function.args")))
    values = tuple(_int(v, f"function.values[{i}]") for i, v in enumerate(_list(fobj.get("values", []), "function.values")))
    body = _body(fobj.get("body", {}), "function.body")
    function = Function(
        args=args,
        values=values,
        body=body,
        ret_size=_int(fobj.get("ret_size", 8), "function.ret_size"),
        ret_signed=_bool(fobj.get("ret_signed", False), "function.ret_signed"),
        compiled=None if fobj.get("compiled") is None else _compiled(fobj["compiled"], "function.compiled"),
    )
    links = tuple(_link(x, f"links[{i}]") for i, x in enumerate(_list(obj.get("links", []), "links")))
    layout = _layout(obj.get("layout", {}), "layout")
    flags_raw = obj.get("flags")
    flags = None if flags_raw is None else _int(flags_raw, "flags")
    target = obj.get("target")
    if not isinstance(target, str) or target not in TARGET_KINDS:
        raise CaseError("target", f"expected one of {', '.join(TARGET_KINDS)}, got {target!r}")
    sled = obj.get("sled")
    if not isinstance(sled, str):
        raise CaseError("sled", f"expected a string like '4,0/c', got {sled!r}")
    return Case(
        target=target,
        function=function,
        sled=sled,
        links=links,
        layout=layout,
        flags=flags,
        teardown=_bool(obj.get("teardown", False), "teardown"),
        seed=_int(obj.get("seed", 0), "seed"),
    )


def _obj(data: Any, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise CaseError(path, f"expected an object, got {type(data).__name__}")
    return cast(dict[str, Any], data)


def _list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list):
        raise CaseError(path, f"expected a list, got {type(data).__name__}")
    return data


def _req(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise CaseError(f"{path}.{key}" if path else key, "missing")
    return obj[key]


def _only(obj: dict[str, Any], path: str, allowed: set[str]) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        where = f"{path}.{extra[0]}" if path else extra[0]
        raise CaseError(where, f"unknown field (expected one of {', '.join(sorted(allowed))})")


def _int(v: Any, path: str) -> int:
    """An integer field: a JSON integer or a '0x...' string, within 64 bits either sign."""
    if isinstance(v, bool):
        raise CaseError(path, f"expected an integer, got {v!r}")
    if isinstance(v, str) and len(v) > MAX_JSON_DIGITS:
        raise CaseError(path, f"expected an integer of at most 64 bits, got a {len(v)}-character string")
    if isinstance(v, str):
        try:
            v = int(v, 0)
        except ValueError:
            raise CaseError(path, f"expected an integer (or a '0x...' string), got {v!r}") from None
    if isinstance(v, LongNumber):
        raise CaseError(path, f"expected an integer of at most 64 bits, got {v!r}")
    if not isinstance(v, int):
        raise CaseError(path, f"expected an integer (or a '0x...' string), got {v!r}")
    if not -MASK64 <= v <= MASK64:
        raise CaseError(path, f"expected an integer of at most 64 bits, got {v:#x}")
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise CaseError(path, f"expected true or false, got {v!r}")
    return v


def _arg(data: Any, path: str) -> Arg:
    obj = _obj(data, path)
    _only(obj, path, {"size", "is_struct", "signed"})
    return Arg(
        size=_int(obj.get("size", 8), f"{path}.size"),
        is_struct=_bool(obj.get("is_struct", False), f"{path}.is_struct"),
        signed=_bool(obj.get("signed", False), f"{path}.signed"),
    )


def _body(data: Any, path: str) -> Body:
    obj = _obj(data, path)
    names = {f.name for f in fields(Body)}
    _only(obj, path, names)
    store_raw = obj.get("store")
    store = None
    if store_raw is not None:
        sobj = _obj(store_raw, f"{path}.store")
        _only(sobj, f"{path}.store", {"slot", "value"})
        store = Store(slot=_int(_req(sobj, "slot", f"{path}.store"), f"{path}.store.slot"),
                      value=_int(_req(sobj, "value", f"{path}.store"), f"{path}.store.value"))
    return Body(
        k=_int(obj.get("k", 0), f"{path}.k"),
        coeffs=tuple(_int(c, f"{path}.coeffs[{i}]") for i, c in enumerate(_list(obj.get("coeffs", []), f"{path}.coeffs"))),
        ret32=_bool(obj.get("ret32", False), f"{path}.ret32"),
        store=store,
        calls_helper=_bool(obj.get("calls_helper", False), f"{path}.calls_helper"),
        uses_saved=_int(obj.get("uses_saved", 0), f"{path}.uses_saved"),
        frame_pointer=_bool(obj.get("frame_pointer", True), f"{path}.frame_pointer"),
        compressed=_bool(obj.get("compressed", True), f"{path}.compressed"),
        a5=_int(obj.get("a5", 0), f"{path}.a5"),
    )


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise CaseError(path, f"expected a string, got {v!r}")
    return v


def _compiled(data: Any, path: str) -> CompiledBody:
    obj = _obj(data, path)
    _only(obj, path, {f.name for f in fields(CompiledBody)})
    stores = []
    for i, raw in enumerate(_list(obj.get("stores", []), f"{path}.stores")):
        sp = f"{path}.stores[{i}]"
        sobj = _obj(raw, sp)
        _only(sobj, sp, {"addr", "size", "value"})
        stores.append(BodyStore(addr=_int(_req(sobj, "addr", sp), f"{sp}.addr"),
                                size=_int(_req(sobj, "size", sp), f"{sp}.size"),
                                value=_int(_req(sobj, "value", sp), f"{sp}.value")))
    return CompiledBody(
        path=_str(_req(obj, "path", path), f"{path}.path"),
        symbol=_str(_req(obj, "symbol", path), f"{path}.symbol"),
        sha256=_str(_req(obj, "sha256", path), f"{path}.sha256"),
        ret=_int(obj.get("ret", 0), f"{path}.ret"),
        stores=tuple(stores),
    )


def _link(data: Any, path: str) -> Link:
    obj = _obj(data, path)
    _only(obj, path, {f.name for f in fields(Link)})
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in LINK_KINDS:
        raise CaseError(f"{path}.kind", f"expected one of {', '.join(LINK_KINDS)}, got {kind!r}")
    return Link(
        kind=kind,
        r0=_int(obj.get("r0", 0), f"{path}.r0"),
        cookie=_int(obj.get("cookie", 0), f"{path}.cookie"),
        enter=_int(obj.get("enter", 1), f"{path}.enter"),
        wants_ip=_bool(obj.get("wants_ip", False), f"{path}.wants_ip"),
        session_cookie=_bool(obj.get("session_cookie", False), f"{path}.session_cookie"),
    )


def _layout(data: Any, path: str) -> Layout:
    obj = _obj(data, path)
    names = [f.name for f in fields(Layout)]
    _only(obj, path, set(names))
    default = Layout()
    kwargs = {n: _int(obj.get(n, getattr(default, n)), f"{path}.{n}") for n in names}
    return Layout(**kwargs)


def load_case(path: str) -> Case:
    """Read a case file; OSError and CaseError propagate for the CLI to report in one line."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = parse_json(text)
    except CaseError as exc:
        raise CaseError("", f"{path}: {exc}") from None
    if isinstance(data, dict) and "case" in data and "schema" not in data:
        data = data["case"]  # a corpus entry wraps its case
    return case_from_dict(data)


# ---------------------------------------------------------------------------------------------
# bounded JSON: a hostile file is a CaseError, never a RecursionError or a 4300-digit ValueError


class LongNumber:
    """A JSON number with more than ``MAX_JSON_DIGITS`` digits, kept as its length only: the field
    that holds it reports it with its path instead of Python failing to convert it."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


def _bounded_int(text: str) -> int | LongNumber:
    return LongNumber(len(text.lstrip("-"))) if len(text) > MAX_JSON_DIGITS else int(text)


def _bounded_float(text: str) -> float | LongNumber:
    return LongNumber(len(text)) if len(text) > MAX_JSON_DIGITS else float(text)


_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}]')


def _check_depth(text: str) -> None:
    depth = 0
    for m in _NESTING.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise CaseError("", f"nested more than {MAX_JSON_DEPTH} levels deep: not a case file")
        elif tok in "]}":
            depth -= 1


def parse_json(text: str) -> Any:
    """``json.loads`` within the case limits: nesting at most ``MAX_JSON_DEPTH``, numbers of at most
    ``MAX_JSON_DIGITS`` digits (longer ones become ``LongNumber``). Errors are CaseError."""
    _check_depth(text)
    try:
        return json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float)
    except json.JSONDecodeError as exc:
        raise CaseError("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise CaseError("", f"not valid JSON: {exc}") from None
