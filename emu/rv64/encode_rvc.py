"""RV64C (compressed) instruction encoder: one pure function per mnemonic, returning the 16-bit
instruction. Re-exported by ``encode``, where callers take them from (``encode.c_addi(...)``); the
conventions are ``encode``'s. Every public function here is an encoder (the GNU-as differential
test enumerates them)."""

from __future__ import annotations

from sledfuzz.emu.rv64.operands import bit_slice as _bit
from sledfuzz.emu.rv64.operands import compressed_register as _creg
from sledfuzz.emu.rv64.operands import nonzero_register as _nonzero_reg
from sledfuzz.emu.rv64.operands import register as _reg
from sledfuzz.emu.rv64.operands import signed as _simm
from sledfuzz.emu.rv64.operands import unsigned as _uimm
from sledfuzz.emu.rv64.operands import upper20 as _imm20

__all__ = [
    "c_add",
    "c_addi",
    "c_addi4spn",
    "c_addi16sp",
    "c_addiw",
    "c_addw",
    "c_and",
    "c_andi",
    "c_beqz",
    "c_bnez",
    "c_ebreak",
    "c_j",
    "c_jalr",
    "c_jr",
    "c_ld",
    "c_ldsp",
    "c_li",
    "c_lui",
    "c_lw",
    "c_lwsp",
    "c_mv",
    "c_nop",
    "c_or",
    "c_sd",
    "c_sdsp",
    "c_slli",
    "c_srai",
    "c_srli",
    "c_sub",
    "c_subw",
    "c_sw",
    "c_swsp",
    "c_xor",
]


# --------------------------------------------------------------------------------------------
# C extension (RV64C). Register/immediate restrictions follow the ISA manual: encodings that are
# reserved or HINTs (rd=x0, zero immediates where "nz" is required) are refused.


def _ci(funct3: int, op: int, rd: int, imm6: int) -> int:
    return funct3 << 13 | _bit(imm6, 5) << 12 | rd << 7 | _bit(imm6, 4, 0) << 2 | op


def _ca(funct6: int, funct2: int, rd: int, rs2: int) -> int:
    return funct6 << 10 | _creg(rd, "rd") << 7 | funct2 << 5 | _creg(rs2, "rs2") << 2 | 0b01


def _cr(funct4: int, rd: int, rs2: int) -> int:
    return funct4 << 12 | rd << 7 | rs2 << 2 | 0b10


def c_nop() -> int:
    return 0x0001


def c_ebreak() -> int:
    return 0x9002


def c_addi(rd: int, imm: int) -> int:
    """``c.addi rd, nzimm``: rd != x0, imm in [-32, 31] and nonzero."""
    return _ci(0b000, 0b01, _nonzero_reg(rd, "rd"), _simm(imm, 6, "c.addi immediate", nonzero=True))


def c_addiw(rd: int, imm: int) -> int:
    """``c.addiw rd, imm``: rd != x0, imm in [-32, 31] (0 is sext.w)."""
    return _ci(0b001, 0b01, _nonzero_reg(rd, "rd"), _simm(imm, 6, "c.addiw immediate"))


def c_li(rd: int, imm: int) -> int:
    return _ci(0b010, 0b01, _nonzero_reg(rd, "rd"), _simm(imm, 6, "c.li immediate"))


def c_lui(rd: int, imm20: int) -> int:
    """``c.lui rd, imm20``: the lui field must be a nonzero sign-extended 6-bit value.

    Accepted as signed (-32..31) or as the 20-bit field (1..31, 0xfffe0..0xfffff); rd not x0/x2.
    """
    _nonzero_reg(rd, "rd", 2)
    field = _imm20(imm20, "c.lui immediate")
    signed = field - (1 << 20) if field & 0x80000 else field
    return _ci(0b011, 0b01, rd, _simm(signed, 6, "c.lui immediate", nonzero=True))


def c_addi16sp(imm: int) -> int:
    """``c.addi16sp sp, nzimm``: nonzero multiple of 16 in [-512, 496]."""
    v = _simm(imm, 10, "c.addi16sp immediate", align=16, nonzero=True)
    field = _bit(v, 9) << 5 | _bit(v, 4) << 4 | _bit(v, 6) << 3 | _bit(v, 8, 7) << 1 | _bit(v, 5)
    return _ci(0b011, 0b01, 2, field)


def c_addi4spn(rd: int, imm: int) -> int:
    """``c.addi4spn rd', sp, nzuimm``: rd in x8..x15, nonzero multiple of 4 in [4, 1020]."""
    v = _uimm(imm, 1020, "c.addi4spn immediate", align=4, lo=4)
    field = _bit(v, 5, 4) << 6 | _bit(v, 9, 6) << 2 | _bit(v, 2) << 1 | _bit(v, 3)
    return field << 5 | _creg(rd, "rd") << 2 | 0b00


def c_slli(rd: int, shamt: int) -> int:
    return _ci(0b000, 0b10, _nonzero_reg(rd, "rd"), _uimm(shamt, 63, "c.slli shift amount", lo=1))


def _cb_shift(funct2: int, rd: int, imm6: int) -> int:
    return 0b100 << 13 | _bit(imm6, 5) << 12 | funct2 << 10 | _creg(rd, "rd") << 7 | _bit(imm6, 4, 0) << 2 | 0b01


def c_srli(rd: int, shamt: int) -> int:
    return _cb_shift(0b00, rd, _uimm(shamt, 63, "c.srli shift amount", lo=1))


def c_srai(rd: int, shamt: int) -> int:
    return _cb_shift(0b01, rd, _uimm(shamt, 63, "c.srai shift amount", lo=1))


def c_andi(rd: int, imm: int) -> int:
    return _cb_shift(0b10, rd, _simm(imm, 6, "c.andi immediate"))


def c_mv(rd: int, rs: int) -> int:
    return _cr(0b1000, _nonzero_reg(rd, "rd"), _nonzero_reg(rs, "rs2"))


def c_add(rd: int, rs: int) -> int:
    return _cr(0b1001, _nonzero_reg(rd, "rd"), _nonzero_reg(rs, "rs2"))


def c_jr(rs1: int) -> int:
    return _cr(0b1000, _nonzero_reg(rs1, "rs1"), 0)


def c_jalr(rs1: int) -> int:
    return _cr(0b1001, _nonzero_reg(rs1, "rs1"), 0)


def c_sub(rd: int, rs: int) -> int:
    return _ca(0b100011, 0b00, rd, rs)


def c_xor(rd: int, rs: int) -> int:
    return _ca(0b100011, 0b01, rd, rs)


def c_or(rd: int, rs: int) -> int:
    return _ca(0b100011, 0b10, rd, rs)


def c_and(rd: int, rs: int) -> int:
    return _ca(0b100011, 0b11, rd, rs)


def c_subw(rd: int, rs: int) -> int:
    return _ca(0b100111, 0b00, rd, rs)


def c_addw(rd: int, rs: int) -> int:
    return _ca(0b100111, 0b01, rd, rs)


def c_lwsp(rd: int, imm: int) -> int:
    """``c.lwsp rd, uimm(sp)``: rd != x0, multiple of 4 in [0, 252]."""
    v = _uimm(imm, 252, "c.lwsp offset", align=4)
    return _ci(0b010, 0b10, _nonzero_reg(rd, "rd"), _bit(v, 5) << 5 | _bit(v, 4, 2) << 2 | _bit(v, 7, 6))


def c_ldsp(rd: int, imm: int) -> int:
    """``c.ldsp rd, uimm(sp)``: rd != x0, multiple of 8 in [0, 504]."""
    v = _uimm(imm, 504, "c.ldsp offset", align=8)
    return _ci(0b011, 0b10, _nonzero_reg(rd, "rd"), _bit(v, 5) << 5 | _bit(v, 4, 3) << 3 | _bit(v, 8, 6))


def c_swsp(rs2: int, imm: int) -> int:
    """``c.swsp rs2, uimm(sp)``: multiple of 4 in [0, 252]."""
    v = _uimm(imm, 252, "c.swsp offset", align=4)
    return 0b110 << 13 | _bit(v, 5, 2) << 9 | _bit(v, 7, 6) << 7 | _reg(rs2, "rs2") << 2 | 0b10


def c_sdsp(rs2: int, imm: int) -> int:
    """``c.sdsp rs2, uimm(sp)``: multiple of 8 in [0, 504]."""
    v = _uimm(imm, 504, "c.sdsp offset", align=8)
    return 0b111 << 13 | _bit(v, 5, 3) << 10 | _bit(v, 8, 6) << 7 | _reg(rs2, "rs2") << 2 | 0b10


def _cls(funct3: int, r_data: int, rs1: int, hi3: int, lo2: int) -> int:
    return funct3 << 13 | hi3 << 10 | _creg(rs1, "rs1") << 7 | lo2 << 5 | _creg(r_data, "rd/rs2") << 2


def c_lw(rd: int, rs1: int, imm: int) -> int:
    """``c.lw rd', uimm(rs1')``: multiple of 4 in [0, 124]."""
    v = _uimm(imm, 124, "c.lw offset", align=4)
    return _cls(0b010, rd, rs1, _bit(v, 5, 3), _bit(v, 2) << 1 | _bit(v, 6))


def c_ld(rd: int, rs1: int, imm: int) -> int:
    """``c.ld rd', uimm(rs1')``: multiple of 8 in [0, 248]."""
    v = _uimm(imm, 248, "c.ld offset", align=8)
    return _cls(0b011, rd, rs1, _bit(v, 5, 3), _bit(v, 7, 6))


def c_sw(rs2: int, rs1: int, imm: int) -> int:
    """``c.sw rs2', uimm(rs1')``: multiple of 4 in [0, 124]."""
    v = _uimm(imm, 124, "c.sw offset", align=4)
    return _cls(0b110, rs2, rs1, _bit(v, 5, 3), _bit(v, 2) << 1 | _bit(v, 6))


def c_sd(rs2: int, rs1: int, imm: int) -> int:
    """``c.sd rs2', uimm(rs1')``: multiple of 8 in [0, 248]."""
    v = _uimm(imm, 248, "c.sd offset", align=8)
    return _cls(0b111, rs2, rs1, _bit(v, 5, 3), _bit(v, 7, 6))


def c_j(off: int) -> int:
    """``c.j off``: even byte offset in [-2048, 2046]."""
    v = _simm(off, 12, "c.j offset", align=2)
    field = (
        _bit(v, 11) << 10
        | _bit(v, 4) << 9
        | _bit(v, 9, 8) << 7
        | _bit(v, 10) << 6
        | _bit(v, 6) << 5
        | _bit(v, 7) << 4
        | _bit(v, 3, 1) << 1
        | _bit(v, 5)
    )
    return 0b101 << 13 | field << 2 | 0b01


def _cbranch(funct3: int, rs1: int, off: int) -> int:
    v = _simm(off, 9, "compressed branch offset", align=2)
    return (
        funct3 << 13
        | _bit(v, 8) << 12
        | _bit(v, 4, 3) << 10
        | _creg(rs1, "rs1") << 7
        | _bit(v, 7, 6) << 5
        | _bit(v, 2, 1) << 3
        | _bit(v, 5) << 2
        | 0b01
    )


def c_beqz(rs1: int, off: int) -> int:
    """``c.beqz rs1', off``: even byte offset in [-256, 254]."""
    return _cbranch(0b110, rs1, off)


def c_bnez(rs1: int, off: int) -> int:
    """``c.bnez rs1', off``: even byte offset in [-256, 254]."""
    return _cbranch(0b111, rs1, off)
