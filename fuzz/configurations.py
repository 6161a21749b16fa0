"""The configurations a campaign searches, through the registry: names, origins, known bugs.

A cell searches one configuration (an era, a pairing, a bug configuration, a plugin or a kernel
tree). What it must find follows from the registry: the known bugs it declares, minus those of
the configuration it derives from (``CellContext``); a finding's minimal case must pass there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sledfuzz.emu.impls import registry
from sledfuzz.emu.impls.api import Implementation
from sledfuzz.fuzz.results import CellResult, Expect
from sledfuzz.model.caps import KnownBug


def resolve(name: str) -> Implementation:
    """The implementation a name stands for (``emu.impls.registry.resolve``, cached)."""
    return registry.resolve(name)


def derives_from(name: str) -> str | None:
    """The configuration ``name``'s counterexamples must pass on; None for a clean configuration."""
    origin = registry.derives_from(name)
    return origin if origin != name else None


def shipped_configurations() -> list[str]:
    """Every shipped era, pairing and bug configuration (not the tree-built ``kernel``, not plugins)."""
    return [name for name, _ in registry.available() if name != "kernel" and ":" not in name]


def expectation(impl: Implementation) -> Expect:
    """``fail`` for a configuration that declares known bugs, else ``pass``."""
    return "fail" if impl.caps.known_bugs else "pass"


def slug(name: str) -> str:
    """``name`` as one path component."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")


def dir_name(impl_name: str) -> str:
    """The directory a configuration's findings go to: its name as a path component (a
    ``module:factory`` plugin's own name, e.g. ``my-v6.19``)."""
    return slug(registry.display_name(impl_name))


def bug_keys(bugs: Iterable[KnownBug]) -> dict[str, KnownBug]:
    """Known bugs by commit; a commit declaring several bugs gets ``COMMIT#2``, ``COMMIT#3``..."""
    out: dict[str, KnownBug] = {}
    for bug in bugs:
        key, n = bug.commit, 1
        while key in out:
            n += 1
            key = f"{bug.commit}#{n}"
        out[key] = bug
    return out


@dataclass(frozen=True)
class CellContext:
    """An implementation, the configuration it derives from, and which known bugs are its own."""

    name: str
    impl: Implementation
    origin_name: str | None
    origin: Implementation | None
    known: dict[str, list[str]]  # bug key -> its invariants
    inherited: frozenset[str]  # bug keys the origin declares too
    origin_invariants: frozenset[str]  # invariants the origin's own known bugs break

    def new_result(self, seed: int = 0) -> CellResult:
        return CellResult(impl=self.name, expect=expectation(self.impl), seconds=0.0, known_bugs=dict(self.known),
                          inherited=self.inherited, origin=self.origin_name, seed=seed)


def cell_context(name: str) -> CellContext:
    impl = resolve(name)
    origin_name = derives_from(name)
    origin = resolve(origin_name) if origin_name else None
    bugs = bug_keys(impl.caps.known_bugs)
    known = {key: sorted(bug.invariants) for key, bug in bugs.items()}
    origin_bugs = set(origin.caps.known_bugs) if origin is not None else set()
    inherited = frozenset(key for key, bug in bugs.items() if bug in origin_bugs)
    return CellContext(name, impl, origin_name, origin, known, inherited,
                       origin.caps.known_invariants if origin is not None else frozenset())
