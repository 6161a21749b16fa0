"""Building an implementation from eras: the capabilities it declares, its sled patchers, and the
one error a name that does not resolve raises.

Below the registry (``emu.impls.registry``, which names implementations and re-exports these), so
that an implementation built elsewhere -- the ``kernel`` one of ``emu.kernel.impl``, which the
registry imports lazily -- uses them without importing the registry: no import loop
(pyproject.toml's import-linter contracts check it).
"""

from __future__ import annotations

from sledfuzz.emu.impls.eras import Era
from sledfuzz.emu.impls.patchers import BpfPoker, BpfProloguePatcher, Concurrency, FtracePatcher, SledPatchers
from sledfuzz.model.caps import Capabilities, KnownBug


class ImplementationError(LookupError):
    """A name that does not resolve to an implementation; the message is one line."""


def patchers_for(era: Era) -> SledPatchers:
    """The sled side of an era: its ftrace patcher and its BPF prologue poke."""
    atomic = era.ftrace == "atomic"
    conc = Concurrency(stop_machine=not atomic, preemptible=era.ftrace_preemptible)
    ftrace = FtracePatcher(era.ftrace, conc, era.name)
    bpf = BpfProloguePatcher(era.bpf_sled, BpfPoker(era.bpf_sled, era.poke_kinds))
    return SledPatchers(ftrace, bpf)


def capabilities(name: str, sled_era: Era, jit_era: Era, *, direct_calls: bool | None = None,
                 extra_bugs: tuple[KnownBug, ...] = ()) -> Capabilities:
    """Capabilities of sleds from ``sled_era`` with the JIT of ``jit_era`` (the same era usually)."""
    bugs: list[KnownBug] = []
    for bug in (*jit_era.known_bugs, *extra_bugs, *(b for b in sled_era.known_bugs if b.commit == "8547649981e6")):
        if bug not in bugs:
            bugs.append(bug)
    return Capabilities(
        name=name,
        targets=frozenset({"kernel_function", "bpf_prog", "struct_ops"}),
        sleds=sled_era.sleds(),
        max_arg_slots=jit_era.max_arg_slots,
        kernel_direct_calls=jit_era.direct_calls if direct_calls is None else direct_calls,
        ret_convention=jit_era.ret_convention,
        known_bugs=tuple(bugs),
        fsession=jit_era.fsession,
        tail_call_ctx=jit_era.tail_call_ctx,
    )
