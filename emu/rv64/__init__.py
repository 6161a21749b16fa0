"""RV64GC encoder, offset split, JIT-style emitter and capstone disassembly (own code).

Modules: ``regs`` (register numbers/names), ``encode`` (one function per mnemonic; the compressed
ones in ``encode_rvc``, the operand checks in ``operands``), ``offsets``
(reach checks, auipc/jalr split), ``emitter`` (kernel-JIT-like buffer and RVC choices), ``disasm``.
"""

from sledfuzz.emu.rv64.encode import EncodingError
from sledfuzz.emu.rv64.offsets import ReachError

__all__ = ["EncodingError", "ReachError"]
