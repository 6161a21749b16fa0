"""The values a correct run hands over: ABI extension rules and the traced body's own result.

Pure functions of the case (and, nominally, the capabilities): what a program's a0 must be for its
R0, how a struct_ops return is extended, what the body computes. ``model.semantics`` and
``model.expected_run`` build expectations from them.
"""

from __future__ import annotations

from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import MASK64, Case


def sext(value: int, size: int) -> int:
    """Sign-extend the low ``size`` bytes of ``value`` to an unsigned 64-bit pattern."""
    bits = 8 * size
    v = value & ((1 << bits) - 1)
    if v >> (bits - 1):
        v -= 1 << bits
    return v & MASK64


def prog_a0(r0: int, caps: Capabilities) -> int:
    """The a0 a program must hand a C caller for its R0: sext.w(R0), the RISC-V rule that 32-bit
    values are held sign-extended (2f1b0d3d7331). This is the contract in every era: an era whose
    programs leave R0 raw in a0 (``caps.ret_convention == "raw"``, the environment the scenario
    reproduces) passes a wrong a0 on and declares 2f1b0d3d7331; the fmod_ret test is judged on
    this value too (SEMANTICS 3.7)."""
    del caps
    return sext(r0, 4)


def struct_ops_a0(r0: int, ret_size: int, ret_signed: bool, caps: Capabilities) -> int:
    """a0 a struct_ops trampoline returns for the fentry prog's R0 (SEMANTICS 3.7, step 14 of 3.4).

    ``btf`` follows fd2e08128944 as read in the 6.12 tree (``sign_extend``): 1- and 2-byte values
    are sign-extended when BTF says signed and passed through unchanged (``mv``, no zero-extension)
    otherwise; 4-byte values are always ``sext.w`` whatever the signedness; 8 bytes are ``mv``.
    This is what correct means in every era: before fd2e08128944 a0 was the slot the program
    itself stored (its own, sext.w'd, a0), which truncates a u64/pointer return — a known bug
    those eras declare, not a different contract.
    """
    del caps  # correct is per BTF in every era; eras before fd2e08128944 declare that bug
    r0 &= MASK64
    if ret_size in (1, 2):
        return sext(r0, ret_size) if ret_signed else r0
    if ret_size == 4:
        return sext(r0, 4)
    return r0


def body_result(case: Case) -> int:
    """The traced body's a0: ``k + sum(c_i * slot_i)`` mod 2^64, sext.w'd when ``ret32``; for a
    compiled function, the a0 its untraced run returned (measured, carried by the case)."""
    if case.function.compiled is not None:
        return case.function.compiled.ret & MASK64
    fn = case.function
    ret = fn.body.k + sum(c * v for c, v in zip(fn.body.coeffs, fn.values, strict=False))
    ret &= MASK64
    return sext(ret, 4) if fn.body.ret32 else ret
