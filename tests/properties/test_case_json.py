"""Case JSON: exact round trip over generated cases; every malformed input gives one CaseError
that names the offending field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from sledfuzz.fuzz.strategies import cases
from sledfuzz.model.case import Case, CaseError
from sledfuzz.model.core_stage import derive_flags

BASE: dict[str, Any] = {
    "schema": 1,
    "target": "kernel_function",
    "sled": "4,0/c",
    "function": {
        "args": [{"size": 8}, {"size": 8}],
        "values": ["0x1", "0xffffffff80800010"],
        "body": {"k": "0x1", "coeffs": [1], "store": {"slot": 1, "value": "0x7"}},
    },
    "links": [{"kind": "fentry"}, {"kind": "fexit", "cookie": "0x9"}],
}


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(cases())
def test_round_trip(case: Case) -> None:
    text = case.to_json()
    back = Case.from_json(text)
    assert back == case
    assert back.to_json() == text
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))) == case


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(cases(target="struct_ops"))
def test_struct_ops_cases_are_well_formed(case: Case) -> None:
    assert len(case.links) == 1 and case.links[0].kind == "fentry"
    assert case.function.nr_slots <= 8 and derive_flags(case) & 0x100


def test_base_document_loads() -> None:
    case = Case.from_json(json.dumps(BASE))
    assert case.function.body.store is not None and case.links[1].cookie == 9


def _broken(path: str, value: Any) -> str:
    """BASE with the field at ``path`` (dotted, [i] for lists) set to ``value`` (or deleted)."""
    doc = json.loads(json.dumps(BASE))
    parts = path.replace("[", ".").replace("]", "").split(".")
    obj: Any = doc
    for p in parts[:-1]:
        obj = obj[int(p)] if p.isdigit() else obj[p]
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is _DELETE:
        del obj[last]
    else:
        obj[last] = value
    return json.dumps(doc)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("links[1].kind", "fexitt", "links[1].kind", "expected one of fentry, fmod_ret, fexit"),
        ("function", _DELETE, "function", "missing"),
        ("function.values[0]", "abc", "function.values[0]", "integer"),
        ("function.values", "0x1", "function.values", "expected a list"),
        ("links[0].enter", True, "links[0].enter", "integer"),
        ("teardown", "yes", "teardown", "true or false"),
        ("sled", "4-0/c", "sled", "N,M"),
        ("sled", 4, "sled", "string"),
        ("target", "kernel", "target", "expected one of"),
        ("schema", 2, "schema", "expected 1"),
        ("function.args", [{"size": 8}] * 14, "function.args", "at most 13"),
        ("function.values[1]", "0x1000", "function.values[1]", "data region"),
        ("function.args[0].size", 3, "function.args[0].size", "1, 2, 4 or 8"),
        ("function.body.coeffs[0]", 5000, "function.body.coeffs[0]", "-2048..2047"),
        ("links[0].r0", "-0x1", "links[0].r0", "unsigned 64-bit"),
        ("layout", {"func": "0x1", "bogus": 1}, "layout.bogus", "unknown field"),
    ],
)
def test_malformed_names_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(CaseError) as info:
        Case.from_json(_broken(path, value))
    err = info.value
    assert err.path == field, str(err)
    assert words in err.message, str(err)
    assert str(err).startswith(f"{field}: ") and "\n" not in str(err)


@pytest.mark.parametrize("text", ["", "{", "[1, 2", "not json", "{\"schema\": 1,}"])
def test_non_json(text: str) -> None:
    with pytest.raises(CaseError) as info:
        Case.from_json(text)
    assert info.value.path == "" and "not valid JSON" in str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(CaseError, match="expected an object"):
        Case.from_json("[1, 2]")
