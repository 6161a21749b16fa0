"""RV64GC instruction encoder: one pure function per mnemonic, returning the instruction word.

Every public function here is an encoder (the GNU-as differential test enumerates them), so
helpers stay private. Operands are register numbers (see ``regs``) and plain integers; an operand
that does not fit its field raises ``EncodingError`` -- nothing is masked or wrapped silently.

Conventions (operand order follows the assembly text, not the kernel's ``rv_*`` helpers):
R-type ``(rd, rs1, rs2)``; I-type and loads ``(rd, rs1, imm)`` (``ld(rd, rs1, imm)`` is
``ld rd, imm(rs1)``); stores ``(rs2, rs1, imm)`` (``sd rs2, imm(rs1)``); branches
``(rs1, rs2, off)`` with a byte offset; ``lui``/``auipc`` take the 20-bit field, written either
unsigned (0..0xfffff) or signed (-0x80000..0x7ffff). Compressed forms return 16-bit values.

The compressed forms live in ``encode_rvc`` and are re-exported here, so ``encode`` stays the one
place callers take an encoder from; operand checks live in ``operands``.
"""

from __future__ import annotations

from sledfuzz.emu.rv64.encode_rvc import *  # noqa: F403  (the compressed encoders, listed in its __all__)
from sledfuzz.emu.rv64.operands import EncodingError as EncodingError
from sledfuzz.emu.rv64.operands import bit_slice as _bit
from sledfuzz.emu.rv64.operands import register as _reg
from sledfuzz.emu.rv64.operands import signed as _simm
from sledfuzz.emu.rv64.operands import unsigned as _uimm
from sledfuzz.emu.rv64.operands import upper20 as _imm20

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
