"""What every invariant is made of: the Invariant and Violation types, and the shared readers.

An invariant is a small object with a stable ``name``, a ``doc`` paragraph (what, why, which kernel
bug broke it) and the commits it catches (``catches``, from ``model.known_bugs``). It judges one
property of a run; which arguments its check gets says what it needs:

* ``run_invariant``: a check of a run, called only when the model expects one (``Expected``) and
  the implementation made one (it did not refuse) — the guard most invariants share, applied once;
* ``expectation_invariant``: a check that judges refusals or every expectation kind itself;
* ``caps_invariant``: the one check that also needs the declared capabilities (I-REJECT's page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sledfuzz.model.caps import Capabilities
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import PARENT_RET_OFFSET
from sledfuzz.model.expectation import Expectation, Expected, ExpectedEvent
from sledfuzz.model.known_bugs import catching
from sledfuzz.model.observation import Event, Observation


@dataclass(frozen=True)
class Violation:
    """One broken invariant, one line: ``I-RETURN-VALUE: parent got a0=0x3 want 0x2``."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


Judge = Callable[[Case, Capabilities, Expectation, Observation], "str | None"]
RunCheck = Callable[[Case, Expected, Observation], "str | None"]
ExpectationCheck = Callable[[Case, Expectation, Observation], "str | None"]


@dataclass(frozen=True)
class Invariant:
    """A named invariant. ``doc`` is the paragraph docs/invariants.md explains it with."""

    name: str
    doc: str
    judge: Judge

    def check(self, case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> Violation | None:
        """The violation this run commits against ``expected``, or None."""
        msg = self.judge(case, caps, expected, observed)
        return None if msg is None else Violation(self.name, msg)

    @property
    def summary(self) -> str:
        """The first sentence of the docstring."""
        return self.doc.split(". ")[0].rstrip(".") + "."

    @property
    def catches(self) -> frozenset[str]:
        """The fixing commits of the historical bugs that can make this invariant fail."""
        return catching(self.name)


def _doc(fn: Callable[..., object]) -> str:
    return " ".join((fn.__doc__ or "").split())


def run_invariant(name: str) -> Callable[[RunCheck], Invariant]:
    """An invariant over a run: its check sees the ``Expected`` run and is skipped when there is no
    run to judge (the model expects no run, or the implementation refused)."""

    def make(fn: RunCheck) -> Invariant:
        def judge(case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> str | None:
            if isinstance(expected, Expected) and observed.refused is None:
                return fn(case, expected, observed)
            return None

        return Invariant(name, _doc(fn), judge)

    return make


def expectation_invariant(name: str) -> Callable[[ExpectationCheck], Invariant]:
    """An invariant that judges every kind of expectation itself (refusals included)."""

    def make(fn: ExpectationCheck) -> Invariant:
        def judge(case: Case, caps: Capabilities, expected: Expectation, observed: Observation) -> str | None:
            return fn(case, expected, observed)

        return Invariant(name, _doc(fn), judge)

    return make


def caps_invariant(name: str) -> Callable[[Judge], Invariant]:
    """An invariant whose check also reads the declared capabilities."""

    def make(fn: Judge) -> Invariant:
        return Invariant(name, _doc(fn), fn)

    return make


def returned(observed: Observation) -> bool:
    """The run came back to the parent: final-state checks apply."""
    return observed.trap is None and observed.return_pc is not None and observed.final is not None


#: Bytes on either side of the parent's return address that belong to the parent stub (its call,
#: at most a ``li`` of 8 instructions and a ``jalr``, then the return sentinel).
PARENT_STUB_REACH = 0x40


def in_parent(case: Case, pc: int) -> bool:
    """``pc`` lies in the parent stub around its return address."""
    ret = case.layout.parent + PARENT_RET_OFFSET
    return 0 <= (pc - ret + PARENT_STUB_REACH) & MASK64 < 2 * PARENT_STUB_REACH


def fmt(value: int | None) -> str:
    """A register or address in a violation line (``none`` when unknown)."""
    return "none" if value is None else f"{value & MASK64:#x}"


def fmt_all(values: tuple[int, ...]) -> str:
    """``[0x1, 0x2]`` (not a list of quoted strings)."""
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def first_diff(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """``[2]=0x5 want 0x6``: the first word that differs, or the lengths."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"[{i}]={fmt(g)} want {fmt(w)}"
    return f"{len(got)} words want {len(want)}"


def event_name(ev: Event) -> str:
    """``prog(link 2)``, or the bare kind for calls that belong to no link."""
    return ev.kind if ev.link < 0 else f"{ev.kind}(link {ev.link})"


def prog_pairs(exp: Expected, obs: Observation) -> list[tuple[Event, ExpectedEvent]]:
    """Each observed ``prog`` event with the expected one it answers: the n-th run of a link with
    the link's n-th expected run (a session program runs twice, once per phase)."""
    seen: dict[int, int] = {}
    out: list[tuple[Event, ExpectedEvent]] = []
    for ev in obs.events:
        if ev.kind != "prog":
            continue
        nth = seen.get(ev.link, 0)
        seen[ev.link] = nth + 1
        want = exp.prog_event(ev.link, nth)
        if want is not None:
            out.append((ev, want))
    return out
