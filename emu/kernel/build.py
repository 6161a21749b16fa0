"""Build a Linux tree's RV64 trampoline JIT as a host shared library, cached by content hash.

The tree is read every time it is named (a directory, or a tarball such as Debian's
``/usr/src/linux-source-6.12.tar.xz``); only the few files the JIT needs are extracted, into
``$XDG_CACHE_HOME/sledfuzz/kernel/<content-hash>/``, outside the repository. The JIT file is
compiled unmodified except for one rewrite of a copy in that directory: the casts that turn the
``im`` and prog pointers into immediates, ``(const s64)im`` and ``(const s64)p``, become
``(const s64)sf_kaddr(im)`` / ``(const s64)sf_kaddr(p)`` so that the emitted ``li`` loads the
request's kernel-like address, not a host pointer (docs/kernel.md says why nothing less works).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sledfuzz.emu.kernel.probe import KernelFeatures, probe_source

_log = logging.getLogger(__name__)  # the CLI shows INFO records: a first build takes half a minute
DEFAULT_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
JIT_C = "arch/riscv/net/bpf_jit_comp64.c"
JIT_H = "arch/riscv/net/bpf_jit.h"
BPF_H = "include/linux/bpf.h"
#: Tree-relative files the build reads; their contents make the cache key.
NEEDED: tuple[str, ...] = (
    "Makefile",
    JIT_C,
    JIT_H,
    BPF_H,
    "include/uapi/linux/bpf.h",
    "include/uapi/linux/bpf_common.h",
    "include/uapi/linux/filter.h",
)
REWRITTEN = "arch/riscv/net/bpf_jit_comp64.sf.c"
SHIM_DIR = Path(__file__).resolve().parent / "shim"
CFLAGS: tuple[str, ...] = (
    "-shared",
    "-fPIC",
    "-O1",
    "-std=gnu11",
    "-Wl,-z,defs",
    "-D__riscv_xlen=64",
    "-fno-strict-aliasing",
    "-fno-strict-overflow",
)
#: The pointer casts rewritten in the build's copy: (pattern, replacement, what it is).
_REWRITES: tuple[tuple[str, str, str], ...] = (
    (r"\(const s64\)im\b", "(const s64)sf_kaddr(im)", "im"),
    (r"\(const s64\)p\b(?!\s*->)", "(const s64)sf_kaddr(p)", "prog"),
)


#: 7.x: the JIT overrides kernel/bpf/trampoline.c's __weak arch_bpf_trampoline_skip
_TRAMP_SKIP_DEF = re.compile(r"^int arch_bpf_trampoline_skip\(", re.MULTILINE)


class KernelBuildError(Exception):
    """A tree could not be read or did not build against the shims; the message says why."""


@dataclass(frozen=True)
class KernelBuild:
    """A built adapter library and what it was built from."""

    library: Path
    source: Path
    tree_name: str
    version: str
    content_hash: str
    features: KernelFeatures
    rvc: bool
    from_cache: bool
    seconds: float
    rewrites: tuple[tuple[str, int], ...]
    #: one line per fact the probe or the rewrite could not read (the newest value was taken)
    notes: tuple[str, ...] = ()

    @property
    def describe(self) -> str:
        """One line for reports: ``6.12.117 (linux-source-6.12, 3f2a...)``."""
        return f"{self.version} ({self.tree_name}, {self.content_hash[:12]})"


def default_linux_src() -> Path | None:
    """Debian's 6.12 source tarball when ``linux-source-6.12`` is installed."""
    return DEFAULT_TARBALL if DEFAULT_TARBALL.is_file() else None


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sledfuzz" / "kernel"


def kernel_version(makefile: str) -> str:
    """``VERSION.PATCHLEVEL.SUBLEVEL`` plus EXTRAVERSION, from the top-level Makefile."""
    fields: dict[str, str] = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=[ \t]*(\S*)", makefile, re.MULTILINE)
        fields[key] = m.group(1) if m else ""
    if not fields["VERSION"] or not fields["PATCHLEVEL"]:
        raise KernelBuildError("the tree's Makefile has no VERSION/PATCHLEVEL: is it a Linux tree?")
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    if fields["SUBLEVEL"]:
        version += f".{fields['SUBLEVEL']}"
    return version + fields["EXTRAVERSION"]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _content_hash(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{len(files[rel])}\0".encode())
        h.update(files[rel])
    return h.hexdigest()


def _read_dir(root: Path) -> dict[str, bytes]:
    missing = [rel for rel in NEEDED if not (root / rel).is_file()]
    if missing:
        raise KernelBuildError(f"{root} is not a Linux tree with the RV64 BPF JIT: missing {', '.join(missing)}.")
    return {rel: (root / rel).read_bytes() for rel in NEEDED}


def _tar_prefix(tarball: Path) -> str:
    """The top-level directory of the tarball (``linux-source-6.12/``), read from its first entry."""
    with tarfile.open(tarball, "r|*") as tf:
        for member in tf:
            return member.name.split("/", 1)[0] + "/"
    raise KernelBuildError(f"{tarball} is an empty archive.")


def _read_tarball(tarball: Path) -> tuple[dict[str, bytes], str]:
    try:
        prefix = _tar_prefix(tarball)
    except (tarfile.TarError, OSError) as exc:
        raise KernelBuildError(f"cannot read {tarball} as a tar archive: {exc}.") from exc
    with tempfile.TemporaryDirectory(prefix="sledfuzz-kx-") as tmp:
        if shutil.which("tar"):
            proc = subprocess.run(
                ["tar", "-xf", str(tarball), "-C", tmp, *(prefix + rel for rel in NEEDED)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode not in (0, 2):  # 2: some member missing, reported below
                raise KernelBuildError(f"tar could not read {tarball}: {proc.stderr.strip()[:300]}")
        else:  # pragma: no cover - every CI image has tar
            with tarfile.open(tarball, "r:*") as tf:
                wanted = {prefix + rel for rel in NEEDED}
                tf.extractall(tmp, members=[m for m in tf if m.name in wanted], filter="data")
        return _read_dir(Path(tmp) / prefix), prefix.rstrip("/")


def _sources_index() -> Path:
    return cache_root() / "sources.json"


def _tarball_key(tarball: Path) -> str:
    st = tarball.stat()
    return f"{tarball.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _load_index() -> dict[str, str]:
    try:
        data = json.loads(_sources_index().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def read_tree(src: Path) -> tuple[dict[str, bytes], str, str]:
    """The needed files of ``src``, the tree's name and their content hash.

    A tarball already seen (same path, size and mtime) is served from the cache's copy instead
    of being decompressed again.
    """
    if src.is_dir():
        files = _read_dir(src)
        return files, src.resolve().name, _content_hash(files)
    if not src.is_file():
        raise KernelBuildError(f"--linux-src {src}: no such directory or tarball.")
    key = _tarball_key(src)
    known = _load_index().get(key)
    if known:
        cached = cache_root() / known / "tree"
        meta = cached / "TREE_NAME"
        if meta.is_file():
            try:
                files = _read_dir(cached)
            except KernelBuildError:
                files = {}
            if files and _content_hash(files) == known:
                return files, meta.read_text().strip(), known
    _log.info("reading the JIT sources from %s (first time only; cached afterwards)", src)
    files, name = _read_tarball(src)
    digest = _content_hash(files)
    index = _load_index()
    index[key] = digest
    _store_tree(digest, files, name)
    _write_atomic(_sources_index(), json.dumps(index, indent=1, sort_keys=True).encode())
    return files, name, digest


def _store_tree(digest: str, files: dict[str, bytes], name: str) -> Path:
    tree = cache_root() / digest / "tree"
    for rel, data in files.items():
        target = tree / rel
        if not target.is_file() or target.read_bytes() != data:
            _write_atomic(target, data)
    _write_atomic(tree / "TREE_NAME", name.encode() + b"\n")
    return tree


def rewrite_jit(text: str) -> tuple[str, tuple[tuple[str, int], ...], tuple[str, ...]]:
    """Route the im/prog immediates through ``sf_kaddr``: the rewritten text, counts and notes.

    A pattern that matches nowhere (an edited or newer JIT) does not stop the build: every
    ``emit_imm`` call site then goes through ``SF_EMIT_IMM``, which maps a value equal to a
    host object's pointer to that object's kernel-like address (``sf_kimm``), and one note says so.
    """
    counts: list[tuple[str, int]] = []
    for pattern, replacement, what in _REWRITES:
        text, n = re.subn(pattern, replacement, text)
        counts.append((what, n))
    missing = [what for what, n in counts if n == 0]
    if not missing:
        return text, tuple(counts), ()
    text, n = re.subn(r"(?<![\w])emit_imm\(", "SF_EMIT_IMM(", text)
    text, defs = re.subn(r"\bvoid SF_EMIT_IMM\(", "void emit_imm(", text)  # the definition keeps its name
    counts.append(("emit_imm", n - defs))
    note = (f"build: {JIT_C} loads no {' and no '.join(missing)} pointer with a '(const s64)' cast; every "
            "emit_imm value is mapped instead (a host pointer becomes its kernel-like address)")
    return text, tuple(counts), (note,)


def _shim_values(text: str, pattern: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(pattern, text)}


def check_shim_agrees(bpf_h: str) -> None:
    """The values the shim hard-codes must be the tree's: flags, limits, the run_ctx layout."""
    shim = (SHIM_DIR / "include" / "sf_kernel.h").read_text()
    flag = r"#define (BPF_TRAMP_F_\w+)\s+BIT\((\d+)\)"
    tree_flags = _shim_values(bpf_h, flag)
    wrong = [
        f"{name} (tree BIT({tree_flags.get(name)}), shim BIT({bit}))"
        for name, bit in _shim_values(shim, flag).items()
        if tree_flags.get(name) != bit
    ]
    limits = r"#define (MAX_BPF_FUNC_ARGS) (\d+)"
    if _shim_values(bpf_h, limits) != _shim_values(shim, limits):
        wrong.append("MAX_BPF_FUNC_ARGS")
    if not re.search(r"BPF_MAX_TRAMP_LINKS = 38,", bpf_h):
        wrong.append("BPF_MAX_TRAMP_LINKS")
    shifts = r"#define (BPF_TRAMP_\w+_SHIFT)\s+(\d+)"
    tree_shifts = _shim_values(bpf_h, shifts)
    if tree_shifts and tree_shifts != _shim_values(shim, shifts):
        wrong.append("BPF_TRAMP_*_SHIFT")
    run_ctx = re.search(r"struct bpf_tramp_run_ctx \{([^}]*)\}", bpf_h)
    if run_ctx is None or re.sub(r"\s+", " ", run_ctx.group(1)).strip() != (
        "struct bpf_run_ctx run_ctx; u64 bpf_cookie; struct bpf_run_ctx *saved_run_ctx;"
    ):
        wrong.append("struct bpf_tramp_run_ctx")
    if wrong:
        raise KernelBuildError(
            f"the tree's {BPF_H} disagrees with the shim (emu/kernel/shim/include/sf_kernel.h) "
            f"on {', '.join(wrong)}; the emitted code would not be the tree's. Update the shim."
        )


def _shim_digest(flags: list[str], cc: str) -> str:
    h = hashlib.sha256()
    for path in sorted(SHIM_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".c", ".h"):
            h.update(str(path.relative_to(SHIM_DIR)).encode() + b"\0" + path.read_bytes())
    h.update("\0".join(flags).encode())
    try:
        h.update(subprocess.run([cc, "--version"], capture_output=True, check=False).stdout)
    except OSError as exc:
        raise KernelBuildError(f"no C compiler '{cc}' to build the kernel adapter: {exc}.") from exc
    return h.hexdigest()[:16]


def _compile_error(stderr: str, tree: Path, version: str, name: str) -> KernelBuildError:
    text = stderr.replace(str(tree) + "/", "").replace(REWRITTEN, JIT_C)
    text = text.replace(str(SHIM_DIR) + "/", "emu/kernel/shim/")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if " error:" in ln or "undefined reference" in ln]
    first = errors[0] if errors else (lines[0] if lines else "(no compiler output)")
    where = first.split(":", 1)[0] if ":" in first else JIT_C
    shown = "; ".join(e.strip() for e in (errors or lines)[:4])
    return KernelBuildError(
        f"The RV64 trampoline JIT of {name} ({version}) does not build against sledfuzz's shim "
        f"headers: the first failure is in {where}. Compiler said: {shown}. Most likely the tree "
        "changed a kernel type or signature the shims model (emu/kernel/shim/include/"
        "sf_kernel.h); see docs/kernel.md, 'When a tree does not build'."
    )


def build(linux_src: Path | str | None = None, *, rvc: bool = True, cc: str | None = None) -> KernelBuild:
    """Build (or find in the cache) the adapter library for ``linux_src``.

    Raises KernelBuildError with one paragraph naming what failed, never a bare traceback.
    """
    start = time.monotonic()
    if linux_src is None:
        linux_src = default_linux_src()
        if linux_src is None:
            raise KernelBuildError(
                f"no Linux tree given and {DEFAULT_TARBALL} is not installed: pass --linux-src "
                "PATH (a source directory or tarball) or apt-get install linux-source-6.12."
            )
    src = Path(linux_src)
    compiler = cc or os.environ.get("CC") or "gcc"
    files, name, digest = read_tree(src)
    text = files[JIT_C].decode("utf-8", "replace")
    version = kernel_version(files["Makefile"].decode("utf-8", "replace"))
    bpf_h = files[BPF_H].decode("utf-8", "replace")
    features = probe_source(text, bpf_h)
    check_shim_agrees(bpf_h)
    rewritten, counts, rewrite_notes = rewrite_jit(text)
    notes = features.notes + rewrite_notes

    flags = [
        *CFLAGS,
        *(["-DCONFIG_RISCV_ISA_C=1"] if rvc else []),
        f"-DSF_POKE_API={features.poke_api}",
        f"-DSF_TRAMP_NODES={1 if features.tramp_nodes else 0}",
        f"-DSF_JIT_TRAMP_SKIP={1 if _TRAMP_SKIP_DEF.search(text) else 0}",
        f"-DSF_PATCH_TEXT_UNIT={1 if features.patch_text_bytes else 4}",
    ]
    variant = _shim_digest(flags, compiler)
    out_dir = cache_root() / digest
    library = out_dir / f"libsfkjit-{'rvc' if rvc else 'norvc'}-{variant}.so"
    if library.is_file():
        return KernelBuild(library, src, name, version, digest, features, rvc, True, time.monotonic() - start, counts,
                           notes)

    _log.info("building the RV64 trampoline JIT of %s (%s) with %s (first time only)", name, version, compiler)
    tree = _store_tree(digest, files, name)
    _write_atomic(tree / REWRITTEN, rewritten.encode())
    fd, tmp_lib = tempfile.mkstemp(dir=out_dir, prefix=".lib", suffix=".so")
    os.close(fd)
    cmd = [
        compiler,
        *flags,
        "-I",
        str(SHIM_DIR / "include"),
        "-I",
        str(tree / "include"),
        "-iquote",
        str(tree / "arch/riscv/net"),
        "-I",
        str(SHIM_DIR),
        '-DSF_JIT_SOURCE="bpf_jit_comp64.sf.c"',
        "-o",
        tmp_lib,
        str(SHIM_DIR / "sf_wrapper.c"),
        str(SHIM_DIR / "sf_stubs.c"),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        os.unlink(tmp_lib)
        raise KernelBuildError(f"cannot run the C compiler '{compiler}': {exc}.") from exc
    if proc.returncode != 0:
        Path(tmp_lib).unlink(missing_ok=True)  # gcc removes its output when the link fails
        raise _compile_error(proc.stderr, tree, version, name)
    os.replace(tmp_lib, library)
    return KernelBuild(library, src, name, version, digest, features, rvc, False, time.monotonic() - start, counts,
                       notes)
