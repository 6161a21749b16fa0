"""Known words and operand refusals of emu/rv64/encode.py and encode_rvc.py (the full proof is the GNU as test)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sledfuzz.emu.rv64 import encode as E
from sledfuzz.emu.rv64.encode import EncodingError
from sledfuzz.emu.rv64.regs import A0, A1, A5, A6, RA, S0, SP, T0, T1, ZERO


@pytest.mark.parametrize(
    ("word", "want"),
    [
        (E.addi(ZERO, ZERO, 0), 0x00000013),  # nop
        (E.c_nop(), 0x0001),
        (E.auipc(T0, 0), 0x00000297),
        (E.jalr(T0, T0, 0), 0x000282E7),
        (E.auipc(RA, 0), 0x00000097),
        (E.jalr(RA, RA, 0), 0x000080E7),
        (E.auipc(T1, 0), 0x00000317),
        (E.jalr(T0, T1, 0), 0x000302E7),
        (E.jalr(ZERO, T1, 0), 0x00030067),
        (E.jalr(ZERO, RA, 0), 0x00008067),  # ret
        (E.jalr(ZERO, T0, 0), 0x00028067),  # jr t0
        (E.sd(RA, SP, -8), 0xFE113C23),
        (E.ld(RA, SP, -8), 0xFF813083),
        (E.addi(A6, ZERO, 33), 0x02100813),
    ],
)
def test_semantics_1_1_table(word: int, want: int) -> None:
    assert word == want


def test_lui_accepts_signed_and_unsigned_field() -> None:
    assert E.lui(A0, -1) == E.lui(A0, 0xFFFFF) == 0xFFFFF537
    assert E.auipc(T0, -0x80000) == E.auipc(T0, 0x80000) == 0x80000297


REJECTED: list[tuple[str, Callable[[], int]]] = [
    ("addi imm 2048", lambda: E.addi(A0, A0, 2048)),
    ("addi imm -2049", lambda: E.addi(A0, A0, -2049)),
    ("jalr lo12 field 0xeb0", lambda: E.jalr(T0, T0, 0xEB0)),
    ("register 32", lambda: E.add(32, A0, A0)),
    ("register -1", lambda: E.add(A0, -1, A0)),
    ("slli 64", lambda: E.slli(A0, A0, 64)),
    ("slliw 32", lambda: E.slliw(A0, A0, 32)),
    ("branch odd", lambda: E.beq(A0, A1, 3)),
    ("branch 4096", lambda: E.bne(A0, A1, 4096)),
    ("branch -4098", lambda: E.bne(A0, A1, -4098)),
    ("jal 1<<20", lambda: E.jal(RA, 1 << 20)),
    ("jal odd", lambda: E.jal(RA, 1)),
    ("lui 0x100000", lambda: E.lui(A0, 0x100000)),
    ("lui -0x80001", lambda: E.lui(A0, -0x80001)),
    ("sd 2048", lambda: E.sd(RA, SP, 2048)),
    ("fence 0", lambda: E.fence(0, 15)),
    ("c.lui rd 0", lambda: E.c_lui(ZERO, 1)),
    ("c.lui rd sp", lambda: E.c_lui(SP, 1)),
    ("c.lui imm 0", lambda: E.c_lui(A0, 0)),
    ("c.lui imm 32", lambda: E.c_lui(A0, 32)),
    ("c.lui imm 0xfffdf", lambda: E.c_lui(A0, 0xFFFDF)),
    ("c.addi16sp 8", lambda: E.c_addi16sp(8)),
    ("c.addi16sp 0", lambda: E.c_addi16sp(0)),
    ("c.addi16sp 512", lambda: E.c_addi16sp(512)),
    ("c.addi4spn 0", lambda: E.c_addi4spn(A0, 0)),
    ("c.addi4spn t0", lambda: E.c_addi4spn(T0, 4)),
    ("c.addi4spn 1024", lambda: E.c_addi4spn(A0, 1024)),
    ("c.addi imm 0", lambda: E.c_addi(A0, 0)),
    ("c.addi rd 0", lambda: E.c_addi(ZERO, 1)),
    ("c.addi imm 32", lambda: E.c_addi(A0, 32)),
    ("c.li rd 0", lambda: E.c_li(ZERO, 1)),
    ("c.mv rs 0", lambda: E.c_mv(A0, ZERO)),
    ("c.add rd 0", lambda: E.c_add(ZERO, A0)),
    ("c.sub x7", lambda: E.c_sub(7, A0)),
    ("c.and x16", lambda: E.c_and(A0, 16)),
    ("c.slli 0", lambda: E.c_slli(A0, 0)),
    ("c.srli t0", lambda: E.c_srli(T0, 1)),
    ("c.ldsp rd 0", lambda: E.c_ldsp(ZERO, 8)),
    ("c.ldsp 4", lambda: E.c_ldsp(RA, 4)),
    ("c.sdsp 512", lambda: E.c_sdsp(RA, 512)),
    ("c.ld 256", lambda: E.c_ld(A0, A1, 256)),
    ("c.sd ra", lambda: E.c_sd(RA, S0, 0)),
    ("c.lw 128", lambda: E.c_lw(A0, A1, 128)),
    ("c.sw 2", lambda: E.c_sw(A0, A1, 2)),
    ("c.jr x0", lambda: E.c_jr(ZERO)),
    ("c.jalr x0", lambda: E.c_jalr(ZERO)),
    ("c.j 2048", lambda: E.c_j(2048)),
    ("c.beqz 256", lambda: E.c_beqz(A0, 256)),
    ("c.bnez t0", lambda: E.c_bnez(T0, 0)),
    ("c.andi 32", lambda: E.c_andi(A5, 32)),
]


@pytest.mark.parametrize("call", [c for _, c in REJECTED], ids=[n for n, _ in REJECTED])
def test_operand_that_does_not_fit_raises(call: Callable[[], int]) -> None:
    with pytest.raises(EncodingError):
        call()


def test_encoding_error_is_value_error() -> None:
    assert issubclass(EncodingError, ValueError)


def test_compressed_words_are_16_bit_and_not_32_bit_encodings() -> None:
    for word in (E.c_nop(), E.c_ebreak(), E.c_jr(RA), E.c_lui(A0, 0xFFFFF), E.c_addi16sp(-512), E.c_j(-2048)):
        assert 0 <= word <= 0xFFFF and word & 0b11 != 0b11
    assert E.c_jr(RA) == 0x8082  # ret
    assert E.c_ebreak() == 0x9002
