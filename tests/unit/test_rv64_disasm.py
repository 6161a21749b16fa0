"""Capstone-based disassembly in emu/rv64/disasm.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sledfuzz.emu.rv64.disasm import Insn, disassemble, format_listing


def test_sled_words() -> None:
    code = bytes.fromhex("9702 0cf7 e782 02eb 0100 1300 0000".replace(" ", ""))
    insns = disassemble(code, 0x1000)
    assert [(i.addr, i.size) for i in insns] == [(0x1000, 4), (0x1004, 4), (0x1008, 2), (0x100A, 4)]
    assert [i.mnemonic for i in insns] == ["auipc", "jalr", "c.nop", "nop"]
    assert insns[0].op_str == "t0, 0xf70c0"
    assert insns[1].raw == bytes.fromhex("e78202eb")


def test_undecodable_bytes_become_directives() -> None:
    insns = disassemble(b"\xff\xff\xff\xff" + b"\x13\x00\x00\x00" + b"\x00", 0)
    assert insns[0] == Insn(0, 4, b"\xff\xff\xff\xff", ".word", "0xffffffff")
    assert insns[1].mnemonic == "nop"
    assert insns[2].mnemonic == ".byte"


def test_listing_mentions_every_insn() -> None:
    text = format_listing(bytes.fromhex("828013000000"), 0x2000)
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("0x0000000000002000:") and "8082" in lines[0]
    assert "nop" in lines[1]


@given(st.binary(max_size=64), st.integers(0, (1 << 48)))
def test_never_raises_and_covers_all_bytes(code: bytes, addr: int) -> None:
    insns = disassemble(code, addr)
    assert b"".join(i.raw for i in insns) == code
    pos = addr
    for i in insns:
        assert i.addr == pos and i.size == len(i.raw)
        pos += i.size
