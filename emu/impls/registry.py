"""Implementation names -> Implementation objects (DESIGN §3), cached, with one error type.

Accepted names:

* an era: ``v6.3``, ``v6.6``, ``v6.8``, ``v6.11``, ``v6.12``, ``v6.16``, ``next-47c9214dcbea``, ``v6.19``,
  ``v7.2``, ``v7.3``;
* a pairing ``ftrace=A,tramp=B``: everything sled-side from era A (ftrace sleds and patcher, the
  BPF prologue sled and its ``bpf_arch_text_poke``), the JIT from era B; kernel functions are
  attachable (as with the direct-calls series applied). ``A`` may also be ``v6.2`` (the pre-v6.3
  16-byte ra detour, which exists only as a sled scheme);
* a bug configuration ``ERA-pre-COMMIT``: ERA with that one fix reverted (``eras.REVERTS``);
* ``kernel``: the real JIT from a Linux tree (``emu.kernel``), when that package provides it;
* ``module:factory``, or a name registered in the entry point group ``sledfuzz.impls``.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from dataclasses import replace
from importlib.metadata import entry_points

from sledfuzz.emu.impls.api import Implementation
from sledfuzz.emu.impls.building import ImplementationError as ImplementationError
from sledfuzz.emu.impls.building import capabilities as capabilities
from sledfuzz.emu.impls.building import patchers_for as patchers_for
from sledfuzz.emu.impls.eras import ERAS, FTRACE_ONLY, Era, RevertError, revert
from sledfuzz.emu.impls.jit import EraJit
from sledfuzz.emu.impls.patchers import BpfPoker
from sledfuzz.model.caps import KnownBug
from sledfuzz.model.known_bugs import KNOWN_BUGS

ENTRY_POINT_GROUP = "sledfuzz.impls"


_cache: dict[str, Implementation] = {}
_lock = threading.RLock()  # a plugin factory may resolve the era it wraps

#: Pairings worth listing (any ``ftrace=A,tramp=B`` of known eras resolves).
PAIRINGS: dict[str, str] = {
    "ftrace=v6.6,tramp=v6.3": "the seed's bug: the pre-25ad10658dc1 trampoline on the 8-byte t0 sled "
                              "(body at func+16, fentry-only skips the body, SKIP_FRAME returns through [sp-8])",
    "ftrace=v6.6,tramp=v6.19": "the 8-byte t0 sled with the fixed JIT: what the seed's pairing derives from",
    "ftrace=v6.2,tramp=v6.3": "the 16-byte ra detour the v6.3 JIT was written for (consistent; the detour's "
                              "preemptible two-word patch is its 8547649981e6 bug)",
}

#: Bug configurations: each isolates one historical bug (DESIGN §5, SEMANTICS 4).
BUG_CONFIGS: tuple[str, ...] = (
    "v6.19-pre-7112cd26e606",
    "v6.19-pre-1732ebc4a261",
    "v6.19-pre-10541b374aa0",
    "v6.19-pre-9f1e16fb1fc9",
    "v6.19-pre-8f3e00af8e52",
    "v6.19-pre-fd2e08128944",
    "v6.19-pre-2f1b0d3d7331",
    "v6.6-pre-8547649981e6",
)


# ---------------------------------------------------------------------------------------------
# building


class _PairedJit(EraJit):
    """The JIT of one era with the ``bpf_arch_text_poke`` of the sled era (the poke goes with the
    sleds it writes; the teardown NOP->JUMP poke is the same two words in every era)."""

    def __init__(self, jit_era: Era, sled_era: Era) -> None:
        super().__init__(jit_era)
        self.poker = BpfPoker(sled_era.bpf_sled, sled_era.poke_kinds)


def _era_impl(era: Era) -> Implementation:
    return Implementation(
        name=era.name,
        caps=capabilities(era.name, era, era),
        patcher=patchers_for(era),
        jit=EraJit(era),
        description=era.summary,
    )


def _pairing(name: str, a: str, b: str) -> Implementation:
    sled_era = ERAS.get(a) or FTRACE_ONLY.get(a)
    if sled_era is None:
        raise ImplementationError(f"{name}: unknown ftrace era {a!r} (known: {', '.join([*FTRACE_ONLY, *ERAS])})")
    jit_era = ERAS.get(b)
    if jit_era is None:
        raise ImplementationError(f"{name}: unknown tramp era {b!r} (known: {', '.join(ERAS)})")
    extra: tuple[KnownBug, ...] = ()
    if (sled_era.ftrace != "detour16") != (jit_era.frames == "two"):
        extra = (KNOWN_BUGS["25ad10658dc1"],)  # sled and JIT disagree on skip and link register
    desc = PAIRINGS.get(name, f"sleds of {a}, trampoline JIT of {b}")
    return Implementation(
        name=name,
        caps=capabilities(name, sled_era, jit_era, direct_calls=True, extra_bugs=extra),
        patcher=patchers_for(sled_era),
        jit=_PairedJit(jit_era, sled_era),
        description=desc,
    )


def _bug_config(name: str, base: str, commit: str) -> Implementation:
    era = ERAS.get(base)
    if era is None:
        raise ImplementationError(f"{name}: unknown era {base!r} (known: {', '.join(ERAS)})")
    try:
        bug_era = revert(era, commit)
    except RevertError as exc:
        raise ImplementationError(f"{name}: {exc}") from None
    impl = _era_impl(bug_era)
    return replace(impl, name=name, caps=replace(impl.caps, name=name))


def _plugin(name: str) -> Implementation:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImplementationError(f"{name}: cannot import module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ImplementationError(f"{name}: module {module_name!r} has no callable {attr!r}")
    return _checked(name, factory())


def _checked(name: str, impl: object) -> Implementation:
    if not isinstance(impl, Implementation):
        raise ImplementationError(f"{name}: the factory returned {type(impl).__name__}, not an Implementation")
    return impl


def _entry_point(name: str) -> Implementation | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _checked(name, ep.load()())
    return None


def _kernel() -> Implementation:
    for module_name in ("sledfuzz.emu.kernel.impl", "sledfuzz.emu.kernel"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        factory = getattr(module, "factory", None)
        if callable(factory):
            return _checked("kernel", factory())
    raise ImplementationError("kernel: emu.kernel provides no factory() (is the kernel adapter installed?)")


def _build(name: str) -> Implementation:
    if name in ERAS:
        return _era_impl(ERAS[name])
    if name.startswith("ftrace="):
        left, sep, right = name.partition(",")
        if not sep or not right.startswith("tramp="):
            raise ImplementationError(f"{name}: a pairing is spelled ftrace=ERA,tramp=ERA")
        return _pairing(name, left.removeprefix("ftrace="), right.removeprefix("tramp="))
    if "-pre-" in name:
        base, _, commit = name.partition("-pre-")
        return _bug_config(name, base, commit)
    if name == "kernel":
        return _kernel()
    if name.startswith("kernel-"):  # one of several trees named in a run (emu/kernel/impl.py)
        from sledfuzz.emu.kernel.impl import factory_named

        return factory_named(name)
    if ":" in name:
        return _plugin(name)
    impl = _entry_point(name)
    if impl is not None:
        return impl
    names = [n for n, _ in available(include_plugins=False)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
    raise ImplementationError(f"unknown implementation {name!r}; {hint}")


# ---------------------------------------------------------------------------------------------
# the public surface


def resolve(name: str) -> Implementation:
    """The implementation called ``name``; the same object on every call (cached)."""
    if not isinstance(name, str) or not name.strip():
        raise ImplementationError(f"an implementation name is a non-empty string, got {name!r}")
    name = name.strip()
    key = name
    if name == "kernel":  # the tree is part of what "kernel" means: another default tree, another object
        from sledfuzz.emu.kernel.impl import default_tree

        key = f"kernel\0{default_tree()}"
    with _lock:
        impl = _cache.get(key)
        if impl is None:
            impl = _build(name)
            _cache[key] = impl
        return impl


def available(include_plugins: bool = True) -> list[tuple[str, str]]:
    """Every era, the pairings of interest, every bug configuration, then entry-point plugins."""
    out: list[tuple[str, str]] = [(n, e.summary) for n, e in ERAS.items()]
    out += list(PAIRINGS.items())
    for n in BUG_CONFIGS:
        base, _, commit = n.partition("-pre-")
        out.append((n, f"{base} with {commit} reverted: {KNOWN_BUGS[commit].summary}"))
    if include_plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            out.append((ep.name, f"plugin {ep.value}"))
    return out


def derives_from(name: str) -> str:
    """The clean configuration a name's counterexamples must pass on (DESIGN §5).

    ``ERA-pre-X`` derives from ERA; a pairing from the same sleds with the v6.19 JIT; a clean
    configuration from itself; any other era from v6.19 when its sleds match, else itself.
    """
    if "-pre-" in name:
        return name.partition("-pre-")[0]
    if name.startswith("ftrace="):
        left = name.partition(",")[0]
        sled_era = ERAS.get(left.removeprefix("ftrace="))
        if sled_era is None or sled_era.ftrace == "detour16":
            return name  # no clean JIT exists for the 16-byte detour
        return f"{left},tramp=v6.19"
    if name in ERAS or name in PAIRINGS or name == "kernel":
        return name  # a clean configuration, or an era that carries its bugs
    try:
        return resolve(name).derives_from or name  # a plugin: what it declares
    except ImplementationError:
        return name


def display_name(name: str) -> str:
    """The name to show and to name directories by: a ``module:factory`` plugin's own
    ``Implementation.name`` (``my-v6.19``), else ``name`` itself."""
    return resolve(name).name if ":" in name else name
