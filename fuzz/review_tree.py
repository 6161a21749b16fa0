"""The before/after trees of a patch series, as scratch copies of the files sledfuzz reads.

``sledfuzz review`` never builds or boots a kernel: the kernel implementation reads a handful of
files (the JIT, its headers, ftrace's header and C file, ...). Those files of the tree are copied
into ``$XDG_CACHE_HOME/sledfuzz/review/<key>/before``, copied again to ``after``, and the series
is applied to ``after`` with ``git apply`` (mbox or ``git format-patch`` files), restricted to
those files: a patch that touches only other files changes nothing here. A patch that does not
apply is one line naming the patch and the file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sledfuzz.emu.kernel.build import NEEDED, cache_root, kernel_version, read_tree
from sledfuzz.emu.kernel.ftrace import FTRACE_FILES, read_ftrace_files

#: every tree-relative file the kernel implementation reads
RELEVANT: tuple[str, ...] = tuple(dict.fromkeys((*NEEDED, *FTRACE_FILES)))

__all__ = ["RELEVANT", "ReviewTreeError", "SeriesTrees", "patch_files", "prepare"]


class ReviewTreeError(Exception):
    """The tree cannot be read, or a patch cannot be applied; one line."""


@dataclass(frozen=True)
class SeriesTrees:
    """The scratch trees and, per patch, the relevant files it touches."""

    before: Path
    after: Path
    touched: tuple[tuple[str, tuple[str, ...]], ...]  # (patch path, relevant files it changes)
    version: str

    def patches_touching(self, files: set[str]) -> list[str]:
        return [p for p, fs in self.touched if set(fs) & files]


_DIFF_PATH = re.compile(r"^\+\+\+ (?:b/)?(\S+)|^--- (?:a/)?(\S+)", re.M)


def patch_files(text: str) -> set[str]:
    """Tree-relative paths a patch (or mbox of patches) modifies."""
    out = set()
    for m in _DIFF_PATH.finditer(text):
        path = m.group(1) or m.group(2)
        if path and path != "/dev/null":
            out.add(path)
    return out


def _key(digest: str, patches: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(digest.encode())
    for name, data in patches:
        h.update(b"\0" + Path(name).name.encode() + b"\0" + data)
    return h.hexdigest()[:24]


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)


def prepare(linux_src: str, patches: list[str]) -> SeriesTrees:
    """Scratch ``before`` and ``after`` trees of ``linux_src`` with ``patches`` applied in order."""
    src = Path(linux_src)
    try:
        files, name, digest = read_tree(src)
        files = {**files, **read_ftrace_files(src, name)}
    except Exception as exc:  # the kernel module raises its own one-line errors
        raise ReviewTreeError(f"--linux-src {linux_src}: {' '.join(str(exc).split())}") from None
    texts: list[tuple[str, bytes]] = []
    for p in patches:
        path = Path(p)
        if not path.is_file():
            raise ReviewTreeError(f"{p}: no such patch file")
        texts.append((p, path.read_bytes()))
    work = cache_root() / "review" / _key(digest, texts)
    before, after = work / "before", work / "after"
    if work.exists():
        shutil.rmtree(work)
    _write_tree(before, files)
    _write_tree(after, files)
    touched: list[tuple[str, tuple[str, ...]]] = []
    for p, data in texts:
        text = data.decode("utf-8", "replace")
        mine = tuple(sorted(patch_files(text) & set(RELEVANT)))
        touched.append((p, mine))
        if not mine:
            continue
        includes = [f"--include={rel}" for rel in mine]
        proc = subprocess.run(["git", "apply", "-p1", "--whitespace=nowarn", *includes, str(Path(p).resolve())],
                              cwd=after, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            where = next((ln.removeprefix("error: ").split(":")[0] for ln in lines if "does not apply" in ln), mine[0])
            first = lines[0].removeprefix("error: ") if lines else "git apply failed"
            raise ReviewTreeError(f"{p}: does not apply to {where} ({first})")
    makefile = files.get("Makefile", b"").decode("utf-8", "replace")
    return SeriesTrees(before, after, tuple(touched), kernel_version(makefile))
