"""Why the execution engine is unicorn and not riscv-model (the package the design card names).

These tests pin the four facts stated in README.md: if a future riscv-model release fixes them,
a test here fails and the README's claim must be revisited. riscv-model is in the ``test`` extra
(scripts/setup.sh installs it), so an import error here is a failure, not a skip.
"""

from __future__ import annotations

import pytest
from riscvmodel.code import MachineDecodeError, decode
from riscvmodel.insn import InstructionJALR, InstructionLD, InstructionSD
from riscvmodel.model import Model
from riscvmodel.variant import RV64GC


def test_registers_are_32_bits_even_for_rv64gc() -> None:
    m = Model(RV64GC)
    m.state.intreg[6].set(0x123456789)
    assert m.state.intreg[6].bits == 32
    assert m.state.intreg[6].unsigned() == 0x23456789  # the upper half is lost


def test_ld_and_sd_do_nothing() -> None:
    m = Model(RV64GC)
    m.state.intreg[2].set(0x1000)
    m.state.intreg[5].set(0x55)
    InstructionSD(2, 5, 0).execute(m)  # sd t0, 0(sp)
    m.state.intreg[7].set(0x77)
    InstructionLD(7, 2, 0).execute(m)  # ld t2, 0(sp)
    assert m.state.intreg[7].unsigned() == 0x77  # unchanged: the load did not happen


def test_jalr_keeps_bit_zero_of_the_target() -> None:
    m = Model(RV64GC)
    m.state.intreg[5].set(0x2001)
    InstructionJALR(1, 5, 0).execute(m)
    assert m.state.pc_update.unsigned() == 0x2001  # the ISA clears bit 0: 0x2000


def test_no_compressed_decode() -> None:
    with pytest.raises(MachineDecodeError):
        decode(0x0001, variant=RV64GC)  # c.nop
