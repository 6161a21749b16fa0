"""Emitter vs the kernel's own JIT helpers: linux 6.12 bpf_jit.h compiled for the host.

The header and the emit_imm / emit_jump_and_link functions are extracted from the source tarball
into a temporary directory at test time (never committed), compiled with a small driver that
prints what each helper emits for a grid of registers and immediates (and 20,000 pseudo-random
64-bit constants for emit_imm), with CONFIG_RISCV_ISA_C on and off. Every output must match the
Emitter halfword for halfword.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sledfuzz.emu.rv64.emitter import Emitter
from tests.support.tools import skip_if_missing

TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
NET = "linux-source-6.12/arch/riscv/net"

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    skip_if_missing(not TARBALL.exists(), reason=f"{TARBALL} missing (apt-get install linux-source-6.12)"),
    skip_if_missing(shutil.which("gcc") is None, reason="host gcc missing"),
]

DRIVER = r"""#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdbool.h>
typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;
typedef int32_t s32; typedef int64_t s64;
#define BIT(x) (1UL << (x))
#define CONFIG_RISCV_ISA_C RVC
#define CONFIG_RISCV_ISA_ZBA 0
#define CONFIG_RISCV_ISA_ZBB 0
#define CONFIG_64BIT 1
#define IS_ENABLED(x) (x)
#define riscv_has_extension_likely(x) 0
#define BUILD_BUG_ON(x)
#define pr_err(...) 0
#define __riscv_xlen 64
struct bpf_prog; struct bpf_binary_header;
static void flush_icache_range(unsigned long a, unsigned long b) {}
#include "bpf_jit.h"
static unsigned long __ffs(unsigned long x) { return __builtin_ctzl(x); }
#include "imm.c"
static u16 buf[64];
static void out(struct rv_jit_context *c) { for (int i = 0; i < c->ninsns; i++) printf("%04x", buf[i]); printf("\n"); }
#define CTX struct rv_jit_context c = { .insns = buf }
int main(void) {
  int regs[] = {0,1,2,5,6,8,9,10,15,16,31};
  int imms[] = {0,1,-1,4,8,-8,16,-16,31,32,-32,-33,48,56,63,64,
                124,128,248,252,256,496,504,512,-512,-528,1020,1024,2047,-2048};
  int nr = sizeof regs/sizeof *regs, ni = sizeof imms/sizeof *imms;
  for (int a = 0; a < nr; a++) for (int b = 0; b < nr; b++) for (int k = 0; k < ni; k++) {
    int rd = regs[a], rs = regs[b], imm = imms[k];
    { CTX; emit_addi(rd, rs, imm, &c); printf("addi %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_addiw(rd, rs, imm, &c); printf("addiw %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_andi(rd, rs, imm, &c); printf("andi %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_ld(rd, imm, rs, &c); printf("ld %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_sd(rs, imm, rd, &c); printf("sd %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_lw(rd, imm, rs, &c); printf("lw %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_sw(rs, imm, rd, &c); printf("sw %d %d %d ", rd, rs, imm); out(&c); }
    { CTX; emit_jalr(rd, rs, imm, &c); printf("jalr %d %d %d ", rd, rs, imm); out(&c); }
    if (imm >= 0 && imm < 64) {
      { CTX; emit_slli(rd, rs, imm, &c); printf("slli %d %d %d ", rd, rs, imm); out(&c); }
      { CTX; emit_srli(rd, rs, imm, &c); printf("srli %d %d %d ", rd, rs, imm); out(&c); }
      { CTX; emit_srai(rd, rs, imm, &c); printf("srai %d %d %d ", rd, rs, imm); out(&c); }
    }
    if (b == 0) {
      { CTX; emit_li(rd, imm, &c); printf("li %d 0 %d ", rd, imm); out(&c); }
      { CTX; emit_lui(rd, imm, &c); printf("lui %d 0 %d ", rd, imm); out(&c); }
    }
  }
  for (int a = 0; a < nr; a++) for (int b = 0; b < nr; b++) for (int k = 0; k < nr; k++) {
    int rd = regs[a], r1 = regs[b], r2 = regs[k];
    { CTX; emit_add(rd, r1, r2, &c); printf("add %d %d %d ", rd, r1, r2); out(&c); }
    { CTX; emit_sub(rd, r1, r2, &c); printf("sub %d %d %d ", rd, r1, r2); out(&c); }
    { CTX; emit_or(rd, r1, r2, &c); printf("or %d %d %d ", rd, r1, r2); out(&c); }
    { CTX; emit_and(rd, r1, r2, &c); printf("and %d %d %d ", rd, r1, r2); out(&c); }
    { CTX; emit_xor(rd, r1, r2, &c); printf("xor %d %d %d ", rd, r1, r2); out(&c); }
    { CTX; emit_subw(rd, r1, r2, &c); printf("subw %d %d %d ", rd, r1, r2); out(&c); }
    if (k == 0) {
      { CTX; emit_mv(rd, r1, &c); printf("mv %d %d 0 ", rd, r1); out(&c); }
      { CTX; emit_sextw(rd, r1, &c); printf("sextw %d %d 0 ", rd, r1); out(&c); }
      { CTX; emit_sextb(rd, r1, &c); printf("sextb %d %d 0 ", rd, r1); out(&c); }
      { CTX; emit_sexth(rd, r1, &c); printf("sexth %d %d 0 ", rd, r1); out(&c); }
      { CTX; emit_zexth(rd, r1, &c); printf("zexth %d %d 0 ", rd, r1); out(&c); }
      { CTX; emit_zextw(rd, r1, &c); printf("zextw %d %d 0 ", rd, r1); out(&c); }
    }
  }
  unsigned long long seed = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
    s64 v = (s64)seed;
    int mode = i % 4;
    if (mode == 1) v = (s32)v; else if (mode == 2) v >>= (seed >> 58);
    else if (mode == 3) v = v & ~((1LL << (seed & 63)) - 1);
    int rd = regs[(seed >> 20) % nr];
    { CTX; emit_imm(rd, v, &c); printf("imm %d 0 %lld ", rd, (long long)v); out(&c); }
  }
  s64 offs[] = {0, 2, -2, 0x800, -0x800, 0x7fe, (1<<20)-2, -(1<<20), 1<<20, -(1<<20)-2,
                -0x8f40150, 0x7ffff7ff, -0x80000800LL};
  for (int f = 0; f < 2; f++) for (int a = 0; a < nr; a++) for (unsigned k = 0; k < sizeof offs/sizeof *offs; k++) {
    CTX; emit_jump_and_link(regs[a], offs[k], f, &c);
    printf("jal%d %d 0 %lld ", f, regs[a], (long long)offs[k]); out(&c);
  }
  return 0;
}
"""


def kernel_outputs(rvc: bool) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="sledfuzz-kjit-") as tmp:
        d = Path(tmp)
        subprocess.run(["tar", "xJf", str(TARBALL), "-C", tmp, f"{NET}/bpf_jit.h", f"{NET}/bpf_jit_comp64.c"], check=True)
        src = d / NET
        shutil.copy(src / "bpf_jit.h", d / "bpf_jit.h")
        comp = (src / "bpf_jit_comp64.c").read_text()
        imm = re.search(r"^static bool is_32b_int.*?(?=^static void __build_epilogue)", comp, re.S | re.M)
        jal = re.search(r"^static int emit_jump_and_link.*?^}", comp, re.S | re.M)
        assert imm and jal, "emit_imm / emit_jump_and_link not found in bpf_jit_comp64.c"
        (d / "imm.c").write_text(imm.group(0) + "\n" + jal.group(0) + "\n")
        for stub in ("linux/filter.h", "asm/cacheflush.h"):
            (d / stub).parent.mkdir(exist_ok=True)
            (d / stub).write_text("")
        (d / "linux/bpf.h").write_text(
            "enum {BPF_JEQ=1,BPF_JNE,BPF_JGT,BPF_JLE,BPF_JLT,BPF_JGE,BPF_JSGT,BPF_JSLE,BPF_JSLT,BPF_JSGE};\n"
            "#include <errno.h>\n"
        )
        (d / "h.c").write_text(DRIVER)
        subprocess.run(["gcc", "-O1", "-w", "-fwrapv", f"-DRVC={int(rvc)}", "-I.", "h.c", "-o", "h"], cwd=d, check=True)
        out = subprocess.run([str(d / "h")], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def call(e: Emitter, op: str, a: int, b: int, c: int) -> None:
    ops: dict[str, Callable[[], None]] = {
        "addi": lambda: e.emit_addi(a, b, c),
        "addiw": lambda: e.emit_addiw(a, b, c),
        "andi": lambda: e.emit_andi(a, b, c),
        "ld": lambda: e.emit_ld(a, c, b),
        "sd": lambda: e.emit_sd(b, c, a),
        "lw": lambda: e.emit_lw(a, c, b),
        "sw": lambda: e.emit_sw(b, c, a),
        "jalr": lambda: e.emit_jalr(a, b, c),
        "slli": lambda: e.emit_slli(a, b, c),
        "srli": lambda: e.emit_srli(a, b, c),
        "srai": lambda: e.emit_srai(a, b, c),
        "li": lambda: e.emit_li(a, c),
        "lui": lambda: e.emit_lui(a, c),
        "add": lambda: e.emit_add(a, b, c),
        "sub": lambda: e.emit_sub(a, b, c),
        "or": lambda: e.emit_or(a, b, c),
        "and": lambda: e.emit_and(a, b, c),
        "xor": lambda: e.emit_xor(a, b, c),
        "subw": lambda: e.emit_subw(a, b, c),
        "mv": lambda: e.emit_mv(a, b),
        "sextw": lambda: e.emit_sextw(a, b),
        "sextb": lambda: e.emit_sextb(a, b),
        "sexth": lambda: e.emit_sexth(a, b),
        "zexth": lambda: e.emit_zexth(a, b),
        "zextw": lambda: e.emit_zextw(a, b),
        "imm": lambda: e.emit_imm(a, c),
        "jal0": lambda: e.emit_jump_and_link(a, c, False),
        "jal1": lambda: e.emit_jump_and_link(a, c, True),
    }
    ops[op]()


@pytest.mark.parametrize("rvc", [False, True], ids=["norvc", "rvc"])
def test_emitter_matches_kernel_helpers(rvc: bool) -> None:
    lines = kernel_outputs(rvc)
    assert len(lines) > 60000
    diffs = []
    for line in lines:
        op, a, b, c, *rest = line.split()
        e = Emitter(rvc=rvc)
        call(e, op, int(a), int(b), int(c))
        mine = "".join(f"{int.from_bytes(e.code[i : i + 2], 'little'):04x}" for i in range(0, e.pos, 2))
        if mine != (rest[0] if rest else ""):
            diffs.append(f"{line}  <- kernel; Emitter: {mine}")
    assert not diffs, f"{len(diffs)} differ, e.g.\n" + "\n".join(diffs[:10])
