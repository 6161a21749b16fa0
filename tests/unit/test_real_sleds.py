"""Real sleds from a real cross compiler: the bytes our patchers say the compiler leaves are the
bytes riscv64-linux-gnu-gcc leaves, for every kernel-function layout an era declares, and the
``__patchable_function_entries`` record points where SEMANTICS 1.2 says (func - pre bytes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from sledfuzz.emu.impls.eras import ERAS, FTRACE_ONLY
from sledfuzz.emu.impls.registry import patchers_for
from sledfuzz.model.caps import SledLayout
from tests.support.tools import skip_if_missing

GCC = shutil.which("riscv64-linux-gnu-gcc")
pytestmark = skip_if_missing(GCC is None, reason="riscv64-linux-gnu-gcc not installed (gcc-riscv64-linux-gnu)")

SOURCE = "int bpf_fentry_test1(int a) { return a + 1; }\n"


def _kernel_layouts() -> dict[str, tuple[str, SledLayout]]:
    out: dict[str, tuple[str, SledLayout]] = {}
    for name in ("v6.2", "v6.6", "v6.12", "v6.16", "v6.19"):
        for sled in {**ERAS, **FTRACE_ONLY}[name].sleds():
            if sled.target != "kernel_function":
                continue
            out.setdefault(sled.key, (name, sled))
    return out


LAYOUTS = _kernel_layouts()


def _compile(tmp: Path, sled: SledLayout) -> tuple[bytes, int, int, list[int]]:
    """Compile SOURCE with the layout's flags; return .text, the symbol value, its size and the
    addresses recorded in __patchable_function_entries (relocation addends)."""
    march = "rv64gc" if sled.nop_width == 2 else "rv64g"
    pfe = f"{sled.n},{sled.m}" if sled.m else f"{sled.n}"
    src = tmp / "f.c"
    obj = tmp / "f.o"
    src.write_text(SOURCE)
    subprocess.run(
        [GCC or "gcc", "-O2", f"-march={march}", "-mabi=lp64d", f"-fpatchable-function-entry={pfe}", "-c",
         str(src), "-o", str(obj)],
        check=True,
    )
    with obj.open("rb") as fh:
        elf = ELFFile(fh)
        text = elf.get_section_by_name(".text").data()
        symtab = elf.get_section_by_name(".symtab")
        sym = symtab.get_symbol_by_name("bpf_fentry_test1")[0]
        records: list[int] = []
        rela = elf.get_section_by_name(".rela__patchable_function_entries")
        if rela is not None:
            for rel in rela.iter_relocations():
                target = symtab.get_symbol(rel["r_info_sym"])
                records.append(target["st_value"] + rel["r_addend"])
        return text, sym["st_value"], sym["st_size"], records


@pytest.mark.parametrize("key", sorted(LAYOUTS))
def test_compiler_sled_matches_gcc(tmp_path: Path, key: str) -> None:
    era, sled = LAYOUTS[key]
    text, func, _, records = _compile(tmp_path, sled)
    patcher = patchers_for({**ERAS, **FTRACE_ONLY}[era])
    want = patcher.compiler_sled(sled)
    got = text[func - sled.pre_bytes : func + sled.entry_bytes]
    assert got == want, f"{era} {key}: gcc left {got.hex()} want {want.hex()}"
    assert records == [func - sled.pre_bytes], "the ftrace record must point at the first sled nop"


@pytest.mark.parametrize("key", sorted(LAYOUTS))
def test_patched_real_function_still_computes(tmp_path: Path, key: str) -> None:
    """Init + patch + unpatch the real sled; with the sled back to its post-init nops the real
    gcc-compiled body runs (on unicorn) and returns a+1 — the post-init sled is executable."""
    from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc
    from unicorn.riscv_const import UC_RISCV_REG_A0, UC_RISCV_REG_RA, UC_RISCV_REG_SP

    era, sled = LAYOUTS[key]
    text, func, size, _ = _compile(tmp_path, sled)
    patcher = patchers_for({**ERAS, **FTRACE_ONLY}[era])
    base = 0x10000
    ftrace_caller = base + 0x800
    region = patcher.init_sled(sled, base + func, ftrace_caller)
    patched = patcher.patch(sled, base + func, base + 0x4000, ftrace_caller)
    assert patched != region
    assert patcher.unpatch(sled, base + func, ftrace_caller) == region  # byte-exact round trip
    image = bytearray(text)
    image[func - sled.pre_bytes : func + sled.entry_bytes] = region
    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    uc.mem_map(base, 0x10000)
    uc.mem_write(base, bytes(image))
    uc.reg_write(UC_RISCV_REG_SP, base + 0xF000)
    uc.reg_write(UC_RISCV_REG_A0, 41)
    sentinel = base + 0x8000
    uc.reg_write(UC_RISCV_REG_RA, sentinel)
    uc.emu_start(base + func, sentinel, count=100)
    assert uc.reg_read(UC_RISCV_REG_A0) == 42
    assert size > sled.entry_bytes
