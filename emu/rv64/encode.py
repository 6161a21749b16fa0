"""RV64GC instruction encoder: one pure function per mnemonic, returning the instruction word.

Every public function here is an encoder (the GNU-as differential test enumerates them), so
helpers stay private. Operands are register numbers (see ``regs``) and plain integers; an operand
that does not fit its field raises ``EncodingError`` -- nothing is masked or wrapped silently.

Conventions (operand order follows the assembly text, not the kernel's ``rv_*`` helpers):
R-type ``(rd, rs1, rs2)``; I-type and loads ``(rd, rs1, imm)`` (``ld(rd, rs1, imm)`` is
``ld rd, imm(rs1)``); stores ``(rs2, rs1, imm)`` (``sd rs2, imm(rs1)``); branches
``(rs1, rs2, off)`` with a byte offset; ``lui``/``auipc`` take the 20-bit field, written either
unsigned (0..0xfffff) or signed (-0x80000..0x7ffff). Compressed forms return 16-bit values.
"""

from __future__ import annotations


class EncodingError(ValueError):
    """An operand does not fit the instruction's field or is not allowed there."""


# --------------------------------------------------------------------------------------------
# operand checks


def _reg(reg: int, what: str = "register") -> int:
    if not 0 <= reg < 32:
        raise EncodingError(f"{what} x{reg} is not a register number 0..31")
    return reg


def _nonzero_reg(reg: int, what: str, *forbidden: int) -> int:
    _reg(reg, what)
    if reg == 0 or reg in forbidden:
        bad = ", ".join(f"x{r}" for r in (0, *forbidden))
        raise EncodingError(f"{what} may not be {bad} in this form (got x{reg})")
    return reg


def _creg(reg: int, what: str) -> int:
    """3-bit register field of the compressed forms: only x8..x15 can be named."""
    if not 8 <= reg <= 15:
        raise EncodingError(f"{what} x{reg} is not one of x8..x15 (compressed 3-bit register)")
    return reg - 8


def _simm(value: int, bits: int, what: str, *, align: int = 1, nonzero: bool = False) -> int:
    """Check a signed immediate and return it masked to ``bits`` bits."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - align
    if not lo <= value <= hi:
        raise EncodingError(f"{what} {value} outside [{lo}, {hi}]")
    if value % align:
        raise EncodingError(f"{what} {value} is not a multiple of {align}")
    if nonzero and value == 0:
        raise EncodingError(f"{what} must be nonzero")
    return value & ((1 << bits) - 1)


def _uimm(value: int, hi: int, what: str, *, align: int = 1, lo: int = 0) -> int:
    """Check an unsigned immediate in [lo, hi] that is a multiple of ``align``."""
    if not lo <= value <= hi:
        raise EncodingError(f"{what} {value} outside [{lo}, {hi}]")
    if value % align:
        raise EncodingError(f"{what} {value} is not a multiple of {align}")
    return value


def _imm20(value: int, what: str) -> int:
    """The U-type 20-bit field, accepted as signed (-0x80000..0x7ffff) or unsigned (..0xfffff)."""
    if not -0x80000 <= value <= 0xFFFFF:
        raise EncodingError(f"{what} {value:#x} outside [-0x80000, 0xfffff]")
    return value & 0xFFFFF


def _bit(value: int, hi: int, lo: int | None = None) -> int:
    """Bits hi..lo of value (lo defaults to hi), shifted down to bit 0."""
    lo = hi if lo is None else lo
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


# --------------------------------------------------------------------------------------------
# 32-bit formats


def _r(funct7: int, funct3: int, opcode: int, rd: int, rs1: int, rs2: int) -> int:
    return funct7 << 25 | _reg(rs2, "rs2") << 20 | _reg(rs1, "rs1") << 15 | funct3 << 12 | _reg(rd, "rd") << 7 | opcode


def _i(funct3: int, opcode: int, rd: int, rs1: int, imm: int) -> int:
    imm12 = _simm(imm, 12, "12-bit immediate")
    return imm12 << 20 | _reg(rs1, "rs1") << 15 | funct3 << 12 | _reg(rd, "rd") << 7 | opcode


def _shift(top: int, funct3: int, opcode: int, rd: int, rs1: int, shamt: int, width: int) -> int:
    _uimm(shamt, width - 1, "shift amount")
    return top << 26 | shamt << 20 | _reg(rs1, "rs1") << 15 | funct3 << 12 | _reg(rd, "rd") << 7 | opcode


def _s(funct3: int, rs2: int, rs1: int, imm: int) -> int:
    imm12 = _simm(imm, 12, "store offset")
    return (
        _bit(imm12, 11, 5) << 25
        | _reg(rs2, "rs2") << 20
        | _reg(rs1, "rs1") << 15
        | funct3 << 12
        | _bit(imm12, 4, 0) << 7
        | 0x23
    )


def _b(funct3: int, rs1: int, rs2: int, off: int) -> int:
    imm = _simm(off, 13, "branch offset", align=2)
    return (
        _bit(imm, 12) << 31
        | _bit(imm, 10, 5) << 25
        | _reg(rs2, "rs2") << 20
        | _reg(rs1, "rs1") << 15
        | funct3 << 12
        | _bit(imm, 4, 1) << 8
        | _bit(imm, 11) << 7
        | 0x63
    )


# --------------------------------------------------------------------------------------------
# RV64I


def lui(rd: int, imm20: int) -> int:
    """``lui rd, imm20``: rd = sext(imm20 << 12)."""
    return _imm20(imm20, "lui immediate") << 12 | _reg(rd, "rd") << 7 | 0x37


def auipc(rd: int, imm20: int) -> int:
    """``auipc rd, imm20``: rd = pc + sext(imm20 << 12)."""
    return _imm20(imm20, "auipc immediate") << 12 | _reg(rd, "rd") << 7 | 0x17


def jal(rd: int, off: int) -> int:
    """``jal rd, off`` with a byte offset (even, 21-bit signed)."""
    imm = _simm(off, 21, "jal offset", align=2)
    return (
        _bit(imm, 20) << 31
        | _bit(imm, 10, 1) << 21
        | _bit(imm, 11) << 20
        | _bit(imm, 19, 12) << 12
        | _reg(rd, "rd") << 7
        | 0x6F
    )


def jalr(rd: int, rs1: int, imm: int) -> int:
    """``jalr rd, imm(rs1)``; imm is the signed 12-bit value (use offsets.sign_extend on a field)."""
    return _i(0, 0x67, rd, rs1, imm)


def beq(rs1: int, rs2: int, off: int) -> int:
    return _b(0, rs1, rs2, off)


def bne(rs1: int, rs2: int, off: int) -> int:
    return _b(1, rs1, rs2, off)


def blt(rs1: int, rs2: int, off: int) -> int:
    return _b(4, rs1, rs2, off)


def bge(rs1: int, rs2: int, off: int) -> int:
    return _b(5, rs1, rs2, off)


def bltu(rs1: int, rs2: int, off: int) -> int:
    return _b(6, rs1, rs2, off)


def bgeu(rs1: int, rs2: int, off: int) -> int:
    return _b(7, rs1, rs2, off)


def lb(rd: int, rs1: int, imm: int) -> int:
    return _i(0, 0x03, rd, rs1, imm)


def lh(rd: int, rs1: int, imm: int) -> int:
    return _i(1, 0x03, rd, rs1, imm)


def lw(rd: int, rs1: int, imm: int) -> int:
    return _i(2, 0x03, rd, rs1, imm)


def ld(rd: int, rs1: int, imm: int) -> int:
    return _i(3, 0x03, rd, rs1, imm)


def lbu(rd: int, rs1: int, imm: int) -> int:
    return _i(4, 0x03, rd, rs1, imm)


def lhu(rd: int, rs1: int, imm: int) -> int:
    return _i(5, 0x03, rd, rs1, imm)


def lwu(rd: int, rs1: int, imm: int) -> int:
    return _i(6, 0x03, rd, rs1, imm)


def sb(rs2: int, rs1: int, imm: int) -> int:
    return _s(0, rs2, rs1, imm)


def sh(rs2: int, rs1: int, imm: int) -> int:
    return _s(1, rs2, rs1, imm)


def sw(rs2: int, rs1: int, imm: int) -> int:
    return _s(2, rs2, rs1, imm)


def sd(rs2: int, rs1: int, imm: int) -> int:
    return _s(3, rs2, rs1, imm)


def addi(rd: int, rs1: int, imm: int) -> int:
    return _i(0, 0x13, rd, rs1, imm)


def slti(rd: int, rs1: int, imm: int) -> int:
    return _i(2, 0x13, rd, rs1, imm)


def sltiu(rd: int, rs1: int, imm: int) -> int:
    return _i(3, 0x13, rd, rs1, imm)


def xori(rd: int, rs1: int, imm: int) -> int:
    return _i(4, 0x13, rd, rs1, imm)


def ori(rd: int, rs1: int, imm: int) -> int:
    return _i(6, 0x13, rd, rs1, imm)


def andi(rd: int, rs1: int, imm: int) -> int:
    return _i(7, 0x13, rd, rs1, imm)


def slli(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x00, 1, 0x13, rd, rs1, shamt, 64)


def srli(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x00, 5, 0x13, rd, rs1, shamt, 64)


def srai(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x10, 5, 0x13, rd, rs1, shamt, 64)


def add(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 0, 0x33, rd, rs1, rs2)


def sub(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x20, 0, 0x33, rd, rs1, rs2)


def sll(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 1, 0x33, rd, rs1, rs2)


def slt(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 2, 0x33, rd, rs1, rs2)


def sltu(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 3, 0x33, rd, rs1, rs2)


def xor(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 4, 0x33, rd, rs1, rs2)


def srl(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 5, 0x33, rd, rs1, rs2)


def sra(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x20, 5, 0x33, rd, rs1, rs2)


def or_(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 6, 0x33, rd, rs1, rs2)


def and_(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 7, 0x33, rd, rs1, rs2)


def addiw(rd: int, rs1: int, imm: int) -> int:
    return _i(0, 0x1B, rd, rs1, imm)


def slliw(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x00, 1, 0x1B, rd, rs1, shamt, 32)


def srliw(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x00, 5, 0x1B, rd, rs1, shamt, 32)


def sraiw(rd: int, rs1: int, shamt: int) -> int:
    return _shift(0x10, 5, 0x1B, rd, rs1, shamt, 32)


def addw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 0, 0x3B, rd, rs1, rs2)


def subw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x20, 0, 0x3B, rd, rs1, rs2)


def sllw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 1, 0x3B, rd, rs1, rs2)


def srlw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x00, 5, 0x3B, rd, rs1, rs2)


def sraw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x20, 5, 0x3B, rd, rs1, rs2)


def ecall() -> int:
    return 0x00000073


def ebreak() -> int:
    return 0x00100073


def fence(pred: int = 0b1111, succ: int = 0b1111) -> int:
    """``fence pred, succ``; each set is 4 bits i|o|r|w (bit 3..0). Plain ``fence`` = iorw,iorw."""
    _uimm(pred, 0b1111, "fence predecessor set", lo=1)
    _uimm(succ, 0b1111, "fence successor set", lo=1)
    return pred << 24 | succ << 20 | 0x0F


# --------------------------------------------------------------------------------------------
# M extension


def mul(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 0, 0x33, rd, rs1, rs2)


def mulh(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 1, 0x33, rd, rs1, rs2)


def mulhsu(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 2, 0x33, rd, rs1, rs2)


def mulhu(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 3, 0x33, rd, rs1, rs2)


def div(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 4, 0x33, rd, rs1, rs2)


def divu(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 5, 0x33, rd, rs1, rs2)


def rem(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 6, 0x33, rd, rs1, rs2)


def remu(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 7, 0x33, rd, rs1, rs2)


def mulw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 0, 0x3B, rd, rs1, rs2)


def divw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 4, 0x3B, rd, rs1, rs2)


def divuw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 5, 0x3B, rd, rs1, rs2)


def remw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 6, 0x3B, rd, rs1, rs2)


def remuw(rd: int, rs1: int, rs2: int) -> int:
    return _r(0x01, 7, 0x3B, rd, rs1, rs2)


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
