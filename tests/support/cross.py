"""Compile the traced-function C sources with the real cross compilers, cached by content.

Build products go to ``$XDG_CACHE_HOME/sledfuzz/elf-tests/`` (never into git): the key is the
source, the compiler's version line and the flags, so a changed compiler rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "elf_src"
GCC = "riscv64-linux-gnu-gcc"
CLANG = "clang"
LD = "riscv64-linux-gnu-ld"
QEMU = "qemu-riscv64"

#: the kernel's -fpatchable-function-entry layouts (6.2-: 8 c.nop / 4 nop (16 B); 6.3+: 4 c.nop / 2 nop;
#: CALL_OPS (6.16+): two entry nops behind a literal's worth before the symbol)
LAYOUTS = ("4", "2", "8,4", "4,2", "8")
COMPILERS = ("gcc", "clang")


@dataclass(frozen=True)
class Build:
    compiler: str
    pfe: str
    march: str = "rv64gc"
    frame_pointer: bool = False
    align8: bool = False
    debug: bool = True

    def argv(self, src: Path, out: Path) -> list[str]:
        cc = [GCC] if self.compiler == "gcc" else [CLANG, "--target=riscv64-linux-gnu"]
        flags = ["-O2", f"-march={self.march}", "-mabi=lp64d", f"-fpatchable-function-entry={self.pfe}",
                 "-fno-stack-protector", "-ffreestanding"]
        if self.frame_pointer:
            flags.append("-fno-omit-frame-pointer")
        if self.align8:
            flags.append("-falign-functions=8")  # v6.16+ alignment; GCC 12 has no -fmin-function-alignment
        if self.debug:
            flags.append("-g")
        return [*cc, *flags, "-c", str(src), "-o", str(out)]

    @property
    def nop_width(self) -> int:
        return 2 if self.march == "rv64gc" else 4

    @property
    def n_m(self) -> tuple[int, int]:
        parts = [int(p) for p in self.pfe.split(",")]
        return parts[0], parts[1] if len(parts) > 1 else 0


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = base / "sledfuzz" / "elf-tests"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


def compile_object(build: Build, source: str = "traced.c") -> Path:
    """The object for ``build`` of ``source`` (from the cache when nothing changed)."""
    src = SRC / source
    tool = GCC if build.compiler == "gcc" else CLANG
    key = hashlib.sha256(
        "\0".join([src.read_text(), _version(tool), *build.argv(Path("s"), Path("o"))]).encode()
    ).hexdigest()[:20]
    out = cache_dir() / f"{src.stem}-{key}.o"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(build.argv(src, tmp), check=True, capture_output=True)
        os.replace(tmp, out)
    return out


def link_static(objects: list[Path], out: Path) -> Path:
    """Link ``objects`` into a static executable with no C library (the driver has ``_start``)."""
    subprocess.run([LD, "-static", "-nostdlib", "-e", "_start", "-o", str(out), *map(str, objects)],
                   check=True, capture_output=True)
    return out


def assemble(source: str, out: Path) -> Path:
    subprocess.run([GCC, "-march=rv64gc", "-mabi=lp64d", "-c", "-x", "assembler", "-", "-o", str(out)],
                   input=source, text=True, check=True, capture_output=True)
    return out


def tools_present() -> list[str]:
    """Which of the tools these tests need are missing (scripts/setup.sh installs them all)."""
    return [t for t in (GCC, CLANG, LD, QEMU) if shutil.which(t) is None]
