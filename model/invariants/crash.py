"""The pseudo-invariant I-IMPL-CRASH: no run to judge, because the implementation itself raised."""

from __future__ import annotations

from sledfuzz.model.invariants.base import Violation

#: The implementation crashed on this case: its JIT, patcher or poke (an era, the kernel
#: adapter, a plugin) raised an exception while the case was sized, emitted, patched, run or
#: poked — e.g. the encoder's ``EncodingError`` on an immediate the kernel would silently
#: truncate. Judged by the oracle (``fuzz.oracle.judge``), not by ``check_all``: there is no
#: observation. Exceptions of the harness itself are not this finding; they stop the tool.
IMPL_CRASH = "I-IMPL-CRASH"


def impl_crash(exc_type: str, call: str, detail: str, where: str = "") -> Violation:
    """The I-IMPL-CRASH violation: ``EncodingError in jit.emit: <message> (at encode.py:57)``."""
    at = f" (at {where})" if where else ""
    return Violation(IMPL_CRASH, f"{exc_type} in {call}: {detail}{at}")


def crash_exception(message: str) -> str | None:
    """The exception type a violation line names (``str(violation)``, ``I-IMPL-CRASH: ValueError in
    ...``), None for any other line. Minimisation keeps it: a smaller case must crash the same way."""
    prefix = f"{IMPL_CRASH}: "
    if not message.startswith(prefix):
        return None
    head = message[len(prefix):].split(" in ", 1)[0]
    return head if head and " " not in head else None
