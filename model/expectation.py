"""What ``expect()`` answers (DESIGN §1-§4): the four closed expectation types, plain data.

``Invalid`` (not a case for these capabilities), ``Refusal`` (must refuse with an errno),
``Unspecified`` (raw flags the core never generates), ``Expected`` (the host calls, results and
frames a correct run produces). ``model.semantics`` computes them; the invariants judge an
``Observation`` against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from sledfuzz.model.case import MASK64, BodyStore
from sledfuzz.model.observation import EventKind


@dataclass(frozen=True)
class Invalid:
    """Not a valid case for these capabilities: nothing is judged."""

    reason: str


@dataclass(frozen=True)
class Refusal:
    """The implementation must refuse with ``errno`` (positive) and run nothing."""

    errno: int
    reason: str


@dataclass(frozen=True)
class ExpectedEvent:
    """One host call the trampoline (or the body's helper) must make, with what it must see.

    ``None`` means "not judged". ``link`` is the index into ``case.links`` (-1 for none).
    For ``prog_enter``: a0 = prog, a1 = &run_ctx (judged as equal to prog_exit's a2), returns
    the link's ``enter``. For ``prog``: ``ctx`` the argument slots, ``nregs`` ctx[-1], ``ip``
    ctx[-2], ``retval`` ctx[slots], ``cookie`` the run_ctx cookie; returns R0. For
    ``prog_exit``: a0 = prog, a1 = start (the enter value; 0 when enter returned 0).
    A session program's run: ``is_return`` the IS_RETURN bit it must see, ``session_cookie`` what
    it must read from its cookie (0 in the fentry run, its token in the fexit run; None: no cookie).
    """

    kind: EventKind
    link: int = -1
    a0: int | None = None
    a1: int | None = None
    ctx: tuple[int, ...] | None = None
    nregs: int | None = None
    ip: int | None = None
    retval: int | None = None
    cookie: int | None = None
    returns: int | None = None
    is_return: bool | None = None
    session_cookie: int | None = None


#: Host-call kinds made from the trampoline's own frame (judged by I-UNWIND, I-SP).
TRAMPOLINE_EVENT_KINDS: frozenset[str] = frozenset({"tramp_enter", "tramp_exit", "prog_enter", "prog", "prog_exit"})


@dataclass(frozen=True)
class Expected:
    """What a correct implementation does with this case (see the module docstring).

    ``a0``/``a5`` None: not judged (a5 only for bpf_prog targets, DESIGN §6; a struct_ops slot
    the skipped fentry never wrote is stack garbage). ``a5_model`` is the modelled a5 anyway,
    for reports. ``frames`` is the prefix the fp-chain walk must give at every trampoline host
    call. ``teardown`` is True when the teardown poke takes effect (the original ran).
    ``store`` is the body's side effect (address, value) when the body runs; ``body_stores``
    are a compiled body's stores (each made once per run, ``body_runs`` times in all).
    ``func_meta``: ctx[-1] is 7.x's ``func_meta`` word (I-NARGS judges its low 8 bits).
    ``body_a6``/``a6``: the tail-call count the body must be entered with and the parent must get
    back (7.3, TAIL_CALL_CTX on a BPF-program target; None: not judged).
    """

    flags: int
    events: tuple[ExpectedEvent, ...]
    body_runs: int
    body_args: tuple[int, ...]
    body_addr: int
    a0: int | None
    a5: int | None
    parent_ret: int
    frames: tuple[int, ...]
    allowed_refusals: frozenset[int] = frozenset()
    returns_to: Literal["parent"] = "parent"
    teardown: bool = False
    store: tuple[int, int] | None = None
    body_stores: tuple[BodyStore, ...] = ()
    short_circuit: int | None = None
    nr_slots: int = 0
    call_orig: bool = False
    restore_regs: bool = False
    a5_model: int | None = None
    notes: tuple[str, ...] = field(default=())
    func_meta: bool = False
    body_a6: int | None = None
    a6: int | None = None

    def prog_event(self, link: int, nth: int = 0) -> ExpectedEvent | None:
        """The ``nth`` expected ``prog`` event of one link (a session program has two: its fentry
        and its fexit run); None when the program must be skipped."""
        for ev in self.events:
            if ev.kind == "prog" and ev.link == link:
                if nth == 0:
                    return ev
                nth -= 1
        return None


@dataclass(frozen=True)
class Unspecified:
    """Raw flags outside what the core generates and the JIT does not refuse.

    ``strict`` is the documented strict expectation (``--strict-flags``): the natural semantics
    for a well-formed combination, else ``Refusal(EINVAL)`` (docs/invariants.md lists the rules).
    """

    reason: str
    strict: Expected | Refusal


#: What ``expect`` answers for one case: an expectation, not yet a judgement (that is
#: ``fuzz.oracle.Verdict``).
Expectation = Expected | Refusal | Unspecified | Invalid


def with_parent_ret(expected: Expected, parent_ret: int) -> Expected:
    """The same expectation for a scenario whose parent returns elsewhere (frames follow)."""
    frames = (*expected.frames[:-1], parent_ret & MASK64)
    return replace(expected, parent_ret=parent_ret & MASK64, frames=frames)

