"""The ``kernel`` implementation: a Linux tree's own trampoline JIT, text poke and ftrace patch.

* JIT and ``bpf_arch_text_poke``: ``KernelJit`` on the library ``emu.kernel.build`` makes from the
  tree's ``arch/riscv/net/bpf_jit_comp64.c``.
* ftrace patch (``emu.kernel.ftrace``): the tree's ``make_call_t0`` and ``NOP4`` macros from
  ``arch/riscv/include/asm/ftrace.h``, compiled (not parsed) into a tiny host library in the
  cache directory, so the ``auipc t0; jalr t0`` words are the header's own arithmetic. Which
  mechanism writes them (stop_machine, preemption, direct calls) is read from
  ``arch/riscv/kernel/ftrace.c`` and ``arch/riscv/Kconfig``.
* capabilities: an ``Era`` derived from the feature probe (``emu.kernel.probe``) and the ftrace
  facts, put through ``building.capabilities`` exactly as the eras are; a missing fix that has a
  revert model becomes a declared known bug. On Debian's 6.12.117 the derived era equals ``v6.12``
  field for field (tests/unit/test_kernel_impl.py), so the two declare the same capabilities.

The tree: ``factory(path)``, else ``set_default_tree(path)``, else ``$SLEDFUZZ_LINUX_SRC``, else
Debian's ``linux-source-6.12`` tarball. Every failure is one ``ImplementationError`` line.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from sledfuzz.emu.impls.api import Implementation, PokeKind, PokeResult
from sledfuzz.emu.impls.building import ImplementationError, capabilities
from sledfuzz.emu.impls.eras import ERAS, REVERTS, Era
from sledfuzz.emu.impls.patchers import BpfPoker, BpfProloguePatcher, Concurrency, FtracePatcher, SledPatchers
from sledfuzz.emu.kernel.adapter import KernelJit
from sledfuzz.emu.kernel.build import (
    KernelBuild,
    KernelBuildError,
    build,
    default_linux_src,
)
from sledfuzz.emu.kernel.debian import PREFIX, DebianTreeError, resolve_tree
from sledfuzz.emu.kernel.ftrace import (
    FTRACE_H,
    INSN_DEF_H,
    FtraceEncoder,
    FtraceError,
    FtraceFacts,
    KernelAtomicPatcher,
    KernelFtracePatcher,
    compile_encoder,
    ftrace_facts,
    insn_nop4,
    read_ftrace_files,
)
from sledfuzz.emu.kernel.probe import KernelFeatures
from sledfuzz.model.caps import KnownBug
from sledfuzz.model.known_bugs import KNOWN_BUGS

ENV_VAR = "SLEDFUZZ_LINUX_SRC"
ENV_TREES = "SLEDFUZZ_LINUX_SRCS"

_default_tree: str | None = None
_impls: dict[str, Implementation] = {}
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# which tree


def set_default_tree(path: str | os.PathLike[str] | None) -> None:
    """The tree ``factory()`` uses without an argument (the CLI's ``--linux-src``).

    Also exported as ``$SLEDFUZZ_LINUX_SRC`` so that worker processes see it. Call it before the
    registry first resolves ``kernel`` (the registry caches the implementation by name).
    """
    global _default_tree
    _default_tree = None if path is None else str(path)
    if path is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = str(path)


def default_tree() -> Path | None:
    """``set_default_tree``, else ``$SLEDFUZZ_LINUX_SRC``, else Debian's tarball when installed."""
    chosen = _default_tree or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else default_linux_src()


# ---------------------------------------------------------------------------------------------
# the BPF text poke


@dataclass(frozen=True)
class KernelBpfPoker(BpfPoker):
    """The BPF prologue poke through the tree's own ``bpf_arch_text_poke``."""

    jit: KernelJit | None = field(default=None, compare=False, repr=False)

    def poke(self, ip: int, site: bytes, old: PokeKind, new: PokeKind, old_addr: int, new_addr: int) -> PokeResult:
        if self.jit is None:
            raise ValueError("KernelBpfPoker without a JIT")
        return self.jit.text_poke(ip, site, old, new, old_addr, new_addr)


# ---------------------------------------------------------------------------------------------
# capabilities: an era from the probe


def era_from_probe(features: KernelFeatures, facts: FtraceFacts, *, name: str = "kernel", summary: str = "") -> Era:
    """The newest era the tree's interface facts allow: what the tree is judged against.

    Interface facts only (the ftrace scheme and mechanism, the sled the JIT emits and pokes, the
    poke API, direct calls); everything else is the newest era's (v6.12 for the two-word t0
    scheme, v6.19 for the atomic one). Fix markers never enter it (``known_bug_labels``).
    """
    atomic = facts.mcount_insn_size != 8
    base = ERAS["v6.12"]
    if atomic:
        base = ERAS["v7.3"] if features.subprog_tailcalls else ERAS["v7.2"] if features.tramp_nodes else ERAS["v6.19"]
    one_frame = features.fentry_ninsns != 2  # 4-word detour poke before 25ad10658dc1
    return replace(
        base,
        name=name,
        summary=summary or base.summary,
        ftrace="atomic" if atomic else "t0",
        ftrace_preemptible=facts.preemptible,
        bpf_sled="detour16" if one_frame else "t0",
        poke_kinds="old_new" if features.poke_old_new_types else "single",
        direct_calls=facts.direct_calls,
        frames="one" if one_frame else "two",
        skip=features.fentry_ninsns * 4,
        struct_ops_frame="no_frame_rule" if one_frame else base.struct_ops_frame,
        teardown="ip_after_call" if features.teardown_poke else "prog_skips",
        fsession=features.fsession,
        tail_call_ctx=features.subprog_tailcalls,
    )


def known_bug_labels(features: KernelFeatures, facts: FtraceFacts) -> tuple[KnownBug, ...]:
    """Known bugs whose fix the tree's markers say is missing: labels for findings, never expectations."""
    era = era_from_probe(features, facts)
    seen = replace(
        era,
        ftrace_preemptible=facts.preemptible and era.ftrace == "t0",  # the atomic scheme is built for it
        retval="a0_a5" if features.saves_a0_and_a5 else "a5_only",
        mv_s1_before_branch=era.mv_s1_before_branch if features.mv_s1_before_branch is None
        else features.mv_s1_before_branch,
        size_pass="max_count" if features.size_max_count_imm else "local_im",
        struct_ops_frame=era.struct_ops_frame if features.indirect_frame else "func_addr",
        struct_ops_ret="btf" if features.struct_ops_sign_extend else "slot",
        prog_a0="sext32" if features.prog_sext_return else "raw",
        orig_call=features.orig_call or era.orig_call,
    )
    if seen.orig_call == "skip_frame" and era.ftrace == "atomic":
        seen = replace(seen, orig_call="orig_stack")  # the t0-era condition on an atomic tree
    return tuple(KNOWN_BUGS[c] for c, over in REVERTS.items() if all(getattr(seen, k) == v for k, v in over.items()))


# ---------------------------------------------------------------------------------------------
# the factory


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass(frozen=True)
class TreeReport:
    """What one tree gave: its build, the labels its fix markers suggest, and what could not be read."""

    build: KernelBuild
    labels: tuple[KnownBug, ...]
    notes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The configuration name of the tree in reports and finding paths: ``kernel-7.3.4``."""
        return f"kernel-{self.build.version}"


_reports: dict[str, TreeReport] = {}


def tree_report(linux_src: str | None = None) -> TreeReport:
    """The report of the tree ``factory(linux_src)`` uses (building it if needed)."""
    impl = factory(linux_src)
    return _reports[impl.description]


def _make(src: Path, name: str) -> Implementation:
    kbuild: KernelBuild = build(src)
    jit = KernelJit(kbuild)
    files = read_ftrace_files(src, kbuild.tree_name)
    encoder = FtraceEncoder(compile_encoder(files[FTRACE_H], nop4=insn_nop4(files[INSN_DEF_H])))
    facts = ftrace_facts(files, encoder)
    labels = known_bug_labels(kbuild.features, facts)
    description = f"real JIT of linux {kbuild.version} ({src})"
    if labels:
        description += "; markers suggest missing fixes: " + ", ".join(b.commit for b in labels)
    era = era_from_probe(kbuild.features, facts, name=name, summary=description)
    conc = Concurrency(stop_machine=facts.stop_machine, preemptible=facts.preemptible)
    ftrace: FtracePatcher
    if era.ftrace == "atomic":
        ftrace = KernelAtomicPatcher("atomic", conc, name, encoder, facts)
    else:
        ftrace = KernelFtracePatcher("t0", conc, name, encoder)
    patcher = SledPatchers(ftrace, BpfProloguePatcher(era.bpf_sled, KernelBpfPoker(era.bpf_sled, era.poke_kinds, jit)))
    _reports[description] = TreeReport(kbuild, labels, kbuild.notes + facts.notes)
    return Implementation(name=name, caps=capabilities(name, era, era), patcher=patcher, jit=jit,
                          description=description)


def factory(linux_src: str | None = None, *, name: str = "kernel") -> Implementation:
    """The ``kernel`` implementation for ``linux_src`` (default: ``default_tree()``), cached per path.

    ``linux_src`` may be ``debian:7.3`` (emu/kernel/debian.py). Raises ``ImplementationError``
    with one line when there is no tree, or it does not build.
    """
    if linux_src and linux_src.startswith(PREFIX):
        try:
            linux_src = str(resolve_tree(linux_src))
        except DebianTreeError as exc:
            raise ImplementationError(f"kernel: {exc}") from None
    src = Path(linux_src) if linux_src else default_tree()
    if src is None:
        raise ImplementationError(
            f"kernel: no Linux tree: pass --linux-src PATH (a source directory or tarball), set {ENV_VAR}, "
            "or apt-get install linux-source-6.12"
        )
    key = f"{name}\0{src}"
    with _lock:
        impl = _impls.get(key)
        if impl is not None and not src.is_dir():  # a work tree is re-read: it may have been edited
            return impl
        try:
            impl = _make(src, name)
        except (KernelBuildError, FtraceError, OSError, RuntimeError) as exc:
            raise ImplementationError(f"kernel: {_one_line(exc)}") from None
        _impls[key] = impl
        return impl


def register_trees(paths: list[str]) -> list[str]:
    """Several trees in one run: each becomes the configuration ``kernel-<version>``; their names.

    The paths are exported as ``$SLEDFUZZ_LINUX_SRCS`` so that worker processes resolve the same
    names (``factory_named``). Raises ImplementationError (one line) for a tree that does not build
    or two trees with the same version.
    """
    names: list[str] = []
    for path in paths:
        report = tree_report(path)
        if report.name in names:
            raise ImplementationError(f"kernel: two trees declare version {report.build.version}")
        names.append(report.name)
    os.environ[ENV_TREES] = os.pathsep.join(paths)
    return names


def factory_named(name: str) -> Implementation:
    """``kernel-<version>``: the tree registered under that version (this process or ``$SLEDFUZZ_LINUX_SRCS``)."""
    trees = [p for p in os.environ.get(ENV_TREES, "").split(os.pathsep) if p]
    for path in trees:
        if tree_report(path).name == name:
            return factory(path, name=name)
    raise ImplementationError(f"{name}: no tree with that version was named (--linux-src)")


def describe_kernel_impl(linux_src: str | None = None) -> str:
    """One line for ``sledfuzz impls``: the implementation's description, or why it is unavailable."""
    try:
        return factory(linux_src).description
    except ImplementationError as exc:
        return f"unavailable: {str(exc).removeprefix('kernel: ')}"
