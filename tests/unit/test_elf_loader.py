"""ELF loading on objects from both real cross compilers, for every kernel sled layout.

Expected sled layouts come from the compile flags, expected signatures from the C source (the
table below is written from tests/elf_src/traced.c by hand), never from the code under test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sledfuzz.emu.elf.functions import find_function, traced_functions
from sledfuzz.emu.elf.image import ElfError, load_elf
from sledfuzz.emu.elf.signature import parse_signature, signatures
from tests.support.cross import COMPILERS, LAYOUTS, Build, compile_object, tools_present
from tests.support.tools import skip_if_missing

pytestmark = skip_if_missing(bool(tools_present()), reason=f"missing tools: {tools_present()} (scripts/setup.sh)")

BASE = 0xFFFFFFFF80200000

#: name -> (args as "size[s|S|p]", return) from traced.c (RISC-V `char` is unsigned)
EXPECTED = {
    "st_test1": "(4s)->4s",
    "st_test2": "(4s,8)->4s",
    "st_test3": "(1,4s,8)->4s",
    "st_test4": "(p,1,4s,8)->4s",
    "st_test5": "(8,p,2s,4s,8)->4s",
    "st_test6": "(8,p,2s,4s,p,8)->4s",
    "st_test8": "(8,8,8,8,8,8,8,8)->8",
    "st_test10": "(8,8,8,8,8,8,8,8,8,8)->8",
    "st_test12": "(8s,8s,8s,8s,8s,8s,8s,8s,8s,8s,8s,8s)->8s",
    "st_struct_arg1": "(8,16S,8)->8",
    "st_struct_arg2": "(16S,16S,8)->8",
    "st_struct_small": "(8S,8)->8",
    "st_store": "(p,8)->4s",
    "st_ret_s8": "(4s)->1s",
    "st_ret_u16": "(8)->2",
    "st_ret_s32": "(8,8)->4s",
    "st_leaf": "(8,8)->8",
    "st_calls": "(8,8)->8",
    "st_saved": "(8,8,8,8,8,8)->8",
}

BUILDS = [
    Build(cc, pfe, march, frame_pointer=fp, align8=pfe == "4")
    for cc in COMPILERS
    for pfe in LAYOUTS
    for march, fp in (("rv64gc", False), ("rv64g", True))
]


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: f"{b.compiler}-{b.pfe}-{b.march}{'-fp' if b.frame_pointer else ''}")
def test_every_function_and_its_sled_layout_is_found(build: Build) -> None:
    elf = load_elf(str(compile_object(build)), base=BASE)
    found, skipped = traced_functions(elf)
    assert skipped == []
    assert sorted(f.name for f in found) == sorted(EXPECTED)
    n, m = build.n_m
    for f in found:
        assert (f.n, f.m, f.nop_width) == (n, m, build.nop_width), f.name
        assert f.record == f.addr - m * build.nop_width
        assert BASE <= f.addr < BASE + 0x10000
        if build.align8:
            assert f.record % 8 == 0  # -falign-functions=8 aligns the first sled nop
    sigs = signatures(elf)
    for name, want in EXPECTED.items():
        got = sigs[name]
        assert not isinstance(got, ElfError), got
        assert got.render() == want, name


def test_signature_text_round_trips() -> None:
    for text in EXPECTED.values():
        assert parse_signature(text).render() == text
    with pytest.raises(ValueError, match="expected"):
        parse_signature("(3)->8")
    with pytest.raises(ValueError, match="expected"):
        parse_signature("8,8->8")


def test_refusals_are_one_line(tmp_path: Path) -> None:
    obj = compile_object(Build("gcc", "4"), "refused.c")
    with pytest.raises(ElfError, match=r"unsupported relocation R_RISCV_TPREL_HI20") as exc:
        load_elf(str(obj), externals={"ext_helper": 0x1000})
    assert "\n" not in str(exc.value)


def test_undefined_symbols_resolve_through_externals_or_are_named() -> None:
    src = Path(__file__).resolve().parent.parent / "elf_src" / "refused.c"
    text = src.read_text().replace("__thread int tls_counter;", "int tls_counter;")
    tmp_src = src.parent / "refused_notls.c"
    tmp_src.write_text(text)
    try:
        obj = compile_object(Build("clang", "4,2"), "refused_notls.c")
    finally:
        tmp_src.unlink()
    with pytest.raises(ElfError, match="undefined symbol 'ext_helper'"):
        load_elf(str(obj))
    elf = load_elf(str(obj), base=BASE, externals={"ext_helper": BASE + 0x100000})
    sigs = signatures(elf)
    for name, why in (("rf_float", "floating point"), ("rf_big", "struct of 24 bytes"), ("rf_variadic", "variadic")):
        got = sigs[name]
        assert isinstance(got, ElfError) and why in str(got), (name, got)
    assert not isinstance(sigs["rf_extern"], ElfError)


def test_missing_debug_info_and_missing_sled_are_refused() -> None:
    plain = compile_object(Build("gcc", "4", debug=False))
    elf = load_elf(str(plain))
    with pytest.raises(ElfError, match="no debug info"):
        signatures(elf)
    nosled = compile_object(Build("gcc", "0"))
    elf = load_elf(str(nosled))
    found, skipped = traced_functions(elf)
    assert found == [] and len(skipped) == len(EXPECTED)
    with pytest.raises(ElfError, match="has no sled"):
        find_function(elf, "st_test1")
    with pytest.raises(ElfError, match="no function symbol 'nope'"):
        find_function(elf, "nope")


def test_files_that_are_not_riscv_elf(tmp_path: Path) -> None:
    text = tmp_path / "x.o"
    text.write_text("not an elf\n")
    with pytest.raises(ElfError, match="not a readable ELF"):
        load_elf(str(text))
    with pytest.raises(ElfError, match="not a 64-bit little-endian RISC-V"):
        load_elf("/bin/true")
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)
    with pytest.raises(ElfError, match="not a regular file"):
        load_elf(str(fifo))
    with pytest.raises(ElfError, match="No such file"):
        load_elf(str(tmp_path / "missing.o"))
