"""Case JSON, field by field: the plain form a case serialises to, decoders that name the field
path in every error, and a bounded ``json.loads`` (a hostile file is a ``CaseError``, never a
RecursionError or a 4300-digit ValueError).
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass
from typing import Any, cast

from sledfuzz.model.caps import TARGET_KINDS
from sledfuzz.model.case_parts import (
    LINK_KINDS,
    MASK64,
    MAX_JSON_DEPTH,
    MAX_JSON_DIGITS,
    SCHEMA,
    Arg,
    Body,
    BodyStore,
    CaseError,
    CompiledBody,
    Function,
    Layout,
    Link,
    Store,
)

_HEX_FIELDS = {f.name for f in fields(Layout)} | {"values", "r0", "cookie", "k", "a5", "value", "ret", "addr"}


def to_plain(obj: Any, name: str = "") -> Any:
    """A case part as JSON-ready data (addresses and values as hex strings)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: to_plain(getattr(obj, f.name), f.name) for f in fields(obj)}
        if isinstance(obj, Function) and obj.compiled is None:
            del out["compiled"]  # mini-language cases keep their schema-1 form byte for byte
        if isinstance(obj, Link) and not obj.session_cookie:
            del out["session_cookie"]  # likewise for links without a session cookie
        return out
    if isinstance(obj, tuple):
        return [to_plain(x, name) for x in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and name in _HEX_FIELDS:
        return f"{obj:#x}"
    return obj


def case_kwargs(data: Any) -> dict[str, Any]:
    """The keyword arguments of the ``Case`` that parsed JSON describes; CaseError with the field
    path on any mismatch."""
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
    return dict(
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
