"""The case (DESIGN §1): everything needed to replay one patched call, as plain data.

A case never names the implementation under test. It is frozen, validated on construction
(``model.case_checks``; one ``CaseError`` naming the offending field), and serialises to a
versioned JSON form (``"schema": 1``, ``model.case_json``) that round-trips exactly. This module
is the public surface of the case: its parts (``model.case_parts``) are imported from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sledfuzz.model.caps import TargetKind
from sledfuzz.model.case_checks import validate
from sledfuzz.model.case_json import case_kwargs, parse_json, to_plain
from sledfuzz.model.case_parts import (
    DATA_SIZE,
    LAYOUT_POINTERS,
    LAYOUT_REGIONS,
    LINK_KINDS,
    MASK64,
    MAX_ARGS_REPRESENTABLE,
    MAX_JSON_DEPTH,
    MAX_JSON_DIGITS,
    MAX_LINKS_REPRESENTABLE,
    PROG_STRIDE,
    SCHEMA,
    STACK_SIZE,
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
from sledfuzz.model.contract import LinkKind

__all__ = [
    "DATA_SIZE", "LAYOUT_POINTERS", "LAYOUT_REGIONS", "LINK_KINDS", "MASK64", "MAX_ARGS_REPRESENTABLE",
    "MAX_JSON_DEPTH", "MAX_JSON_DIGITS", "MAX_LINKS_REPRESENTABLE", "PROG_STRIDE", "SCHEMA", "STACK_SIZE",
    "Arg", "Body", "BodyStore", "Case", "CaseError", "CompiledBody", "Function", "Layout", "Link", "LinkKind",
    "Store", "TargetKind", "case_from_dict", "load_case", "parse_json", "validate",
]


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
        out.update(to_plain(self))
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @staticmethod
    def from_dict(data: Any) -> Case:
        return case_from_dict(data)

    @staticmethod
    def from_json(text: str) -> Case:
        return case_from_dict(parse_json(text))


def case_from_dict(data: Any) -> Case:
    """Build a Case from parsed JSON, raising CaseError with the field path on any mismatch."""
    return Case(**case_kwargs(data))


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
