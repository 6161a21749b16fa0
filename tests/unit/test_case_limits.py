"""Case JSON a kernel could not have produced, or a file no case could be: a CaseError naming the
field, never a finding, a traceback from the emulator, or Python's own conversion limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sledfuzz.model.case import MAX_JSON_DEPTH, Case, CaseError, Function, Layout, Link, case_from_dict, parse_json


def _case_dict(**layout: str) -> dict[str, Any]:
    data = Case(target="kernel_function", function=Function(), sled="2,0/w", links=(Link("fentry"),)).to_dict()
    data["layout"].update(layout)
    return data


@pytest.mark.parametrize(
    ("layout", "needle"),
    [
        ({"func": "0x1"}, "layout.func: expected a 2-byte aligned address, got 0x1"),
        ({"func": "0xffffffff80200003"}, "layout.func: expected a 2-byte aligned address"),
        ({"image": "0xffffffff80400002"}, "layout.image: expected a 4-byte aligned address"),
        ({"stack": "0xffffffffffffffff"}, "layout.stack: expected a 16-byte aligned address"),
        ({"stack": "0xfffffffffffff000"}, "layout.stack: [0xfffffffffffff000, 0x3000) wraps around"),
        ({"image": "0xfffffffffffffffc"}, "layout.image: [0xfffffffffffffffc, 0xffc) wraps around"),
        ({"func": "0x8"}, "layout.func: [0xfffffffffffffff8, 0x108) wraps around"),
        ({"data": "0xffffffff80800004"}, "layout.data: expected a 8-byte aligned address"),
        ({"progs": "0xffffffffffffff00"}, "layout.progs: 0xffffffffffffff00 + 0x4000 wraps around"),
        ({"data": "0xffffffff80a00000"}, "layout.stack: [0xffffffff80a00000, 0xffffffff80a04000) overlaps layout.data"),
        ({"image": "0xffffffff80200040"}, "layout.image: [0xffffffff80200040, 0xffffffff80201040) overlaps layout.func"),
        ({"hosts": "0xffffffff80400800"}, "overlaps layout.image"),
    ],
)
def test_a_layout_no_kernel_has_is_refused_with_its_field(layout: dict[str, str], needle: str) -> None:
    with pytest.raises(CaseError) as err:
        case_from_dict(_case_dict(**layout))
    assert needle in str(err.value)


def test_the_default_layout_and_the_top_of_the_address_space_are_accepted() -> None:
    case_from_dict(_case_dict())
    top = case_from_dict(_case_dict(stack="0xffffffffffffc000"))  # ends exactly at 2^64
    assert top.layout.stack == 0xFFFFFFFFFFFFC000
    assert Layout() == case_from_dict(_case_dict()).layout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_JSON_DEPTH} levels deep"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested more than"),
        ("{not json", "not valid JSON: Expecting property name"),
    ],
)
def test_json_past_the_limits_is_a_case_error(text: str, needle: str) -> None:
    with pytest.raises(CaseError) as err:
        parse_json(text)
    assert needle in str(err.value)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert parse_json(json.dumps({"s": "[" * 1000, "t": "\\\"[" * 10})) == {"s": "[" * 1000, "t": "\\\"[" * 10}


@pytest.mark.parametrize(
    ("field", "raw", "needle"),
    [
        ("seed", "9" * 5000, "seed: expected an integer of at most 64 bits, got a 5000-digit number"),
        ("seed", '"' + "1" * 5000 + '"', "seed: expected an integer of at most 64 bits, got a 5000-character string"),
        ("seed", '"0x1' + "0" * 16 + '"', "seed: expected an integer of at most 64 bits, got 0x10000000000000000"),
        ("seed", "1e999", "seed: expected an integer (or a '0x...' string), got inf"),
        ("flags", "-" + "9" * 50, "flags: expected an integer of at most 64 bits, got a 50-digit number"),
    ],
)
def test_numbers_are_range_checked_with_their_field(field: str, raw: str, needle: str) -> None:
    text = json.dumps(_case_dict()).replace(f'"{field}": ', f'"{field}": {raw}, "_x": ', 1)
    data = parse_json(text)
    data.pop("_x")
    with pytest.raises(CaseError) as err:
        case_from_dict(data)
    assert needle in str(err.value)


def test_an_error_message_stays_one_short_line() -> None:
    data = _case_dict()
    data["sled"] = "x" * 100_000
    with pytest.raises(CaseError) as err:
        case_from_dict(data)
    assert str(err.value).startswith("sled: expected 'N,M/c'") and len(str(err.value)) < 400
