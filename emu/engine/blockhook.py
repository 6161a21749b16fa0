"""Build and load the native block hook (blockhook.c) for UnicornEngine.

Why: a Python UC_HOOK_BLOCK callback costs ~1 us per block entered through ctypes, and generated
cases enter ~30 blocks each. The C file is compiled once with the system C compiler into the
user's cache directory (keyed by a hash of the source and the compiler), then loaded with ctypes.
When no compiler is available or the build fails, `load()` returns None and the engine keeps its
Python hook (`UnicornEngine.native_block_hook` says which one is in use); nothing is printed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_SRC = Path(__file__).with_name("blockhook.c")
_U64 = ctypes.c_uint64
_P64 = ctypes.POINTER(ctypes.c_uint64)


class BhState(ctypes.Structure):
    """The public leading fields of blockhook.c's bh_state (same order and types)."""

    _fields_ = [
        ("steps", _U64),
        ("limit", _U64),
        ("over", _U64),
        ("failed", _U64),
        ("has_last", _U64),
        ("last_addr", _U64),
        ("last_size", _U64),
        ("epoch", _U64),
        ("npages", _U64),
        ("pages", _P64),
        ("nrun", _U64),
        ("runkeys", _P64),
        ("host_done", _U64),
        ("host_ret_set", _U64),
        ("host_ret", _U64),
        ("watch_lo", _U64),
        ("watch_hi", _U64),
        ("ncross", _U64),
        ("cross", _P64),
        ("xregs", _U64 * 32),
        ("xdirty", _U64),
    ]


_loaded: ctypes.CDLL | None = None
_tried = False
why_not = ""  # why the native hook is unavailable (empty when it loaded)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sledfuzz" / "engine"


def _build() -> Path | None:
    global why_not
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        why_not = "no C compiler (gcc/cc) on PATH"
        return None
    try:
        src = _SRC.read_bytes()
    except OSError as e:
        why_not = f"cannot read {_SRC}: {e}"
        return None
    key = hashlib.sha256(src + cc.encode() + sys.platform.encode()).hexdigest()[:20]
    out = _cache_dir() / f"blockhook-{key}.so"
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp, str(_SRC)],
                           capture_output=True, text=True, timeout=120, check=False)
        if r.returncode != 0:
            os.unlink(tmp)
            why_not = f"build failed: {r.stderr.strip()[:500]}"
            return None
        os.replace(tmp, out)  # atomic: concurrent workers may build at the same time
    except (OSError, subprocess.SubprocessError) as e:
        why_not = f"build failed: {e}"
        return None
    return out


def load() -> ctypes.CDLL | None:
    """The loaded library (built on first use), or None when unavailable (see `why_not`)."""
    global _loaded, _tried, why_not
    if _tried:
        return _loaded
    _tried = True
    if os.environ.get("SLEDFUZZ_PY_BLOCK_HOOK"):
        why_not = "disabled by SLEDFUZZ_PY_BLOCK_HOOK"
        return None
    path = _build()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        why_not = f"cannot load {path}: {e}"
        return None
    vp = ctypes.c_void_p
    lib.bh_new.restype = ctypes.POINTER(BhState)
    lib.bh_new.argtypes = [vp, vp]
    lib.bh_free.restype = None
    lib.bh_free.argtypes = [vp]
    lib.bh_count.restype = ctypes.c_int64
    lib.bh_count.argtypes = [vp, vp, _U64, _U64]
    lib.bh_drop_range.restype = None
    lib.bh_drop_range.argtypes = [vp, _U64, _U64]
    lib.bh_clear.restype = None
    lib.bh_clear.argtypes = [vp]
    lib.bh_set_hosts.restype = ctypes.c_int
    lib.bh_set_hosts.argtypes = [vp, vp, _U64]
    lib.bh_set_host_cb.restype = None
    lib.bh_set_host_cb.argtypes = [vp, vp, vp, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    _loaded = lib
    why_not = ""
    return lib
