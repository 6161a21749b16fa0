"""Tell an implementation's exceptions from the harness's: ``guarded(impl)`` and ``ImplementationCrash``.

An implementation (an era JIT, the kernel adapter, a plugin) may raise while it sizes, emits,
patches or pokes — e.g. the encoder's ``EncodingError`` on an immediate the kernel would have
silently truncated. That is a finding about the implementation, not a failure of the fuzzer. The
scenario calls an implementation only through ``impl.jit`` and ``impl.patcher`` (and objects
reached from them, such as ``patcher.ftrace``), so ``guarded(impl)`` returns the same
implementation with those two replaced by proxies: every call made through a proxy that raises
an ``Exception`` raises ``ImplementationCrash`` instead, naming the call (``jit.emit``). Whatever
the harness itself raises passes through unchanged, so the oracle can report the first as the
finding I-IMPL-CRASH and let the second stop the tool.

The proxies forward every attribute, keep data attributes as they are, and give one stable
proxy per sub-object (the scenario keys its caches on ``id(impl.jit)`` and the like); the guarded
implementation is made once per implementation object.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sledfuzz.emu.impls.api import Implementation, Jit, Patcher

__all__ = ["ImplementationCrash", "guarded"]

#: Attribute values returned as they are (not wrapped): plain data.
_DATA: tuple[type, ...] = (int, float, str, bytes, bytearray, bool, type(None), tuple, frozenset, enum.Enum)


class ImplementationCrash(Exception):
    """A call into the implementation raised: ``call`` is its path (``jit.emit``), ``error`` what it raised."""

    def __init__(self, call: str, error: Exception) -> None:
        super().__init__(f"{type(error).__name__} in {call}: {error}")
        self.call = call
        self.error = error

    @property
    def exc_type(self) -> str:
        return type(self.error).__name__

    @property
    def detail(self) -> str:
        """The exception's own message, on one line."""
        return " ".join(str(self.error).split()) or "(no message)"

    @property
    def where(self) -> str:
        """``file:line`` of the innermost frame the exception came from ("" when unknown)."""
        frames = traceback.extract_tb(self.error.__traceback__)
        if not frames:
            return ""
        last = frames[-1]
        return f"{Path(last.filename).name}:{last.lineno}"


def _call(fn: Callable[..., Any], path: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImplementationCrash:
            raise
        except Exception as exc:
            raise ImplementationCrash(path, exc) from exc

    return call


class _Guarded:
    """A proxy for one implementation object (see the module docstring)."""

    __slots__ = ("_path", "_subs", "_target")

    def __init__(self, target: object, path: str) -> None:
        self._target = target
        self._path = path
        self._subs: dict[str, tuple[object, _Guarded]] = {}

    def __getattr__(self, name: str) -> Any:
        path = f"{self._path}.{name}"
        try:
            value = getattr(self._target, name)
        except AttributeError:
            raise  # the scenario probes optional attributes (``isinstance(p, FtracePatched)``, emu.impls.api)
        except Exception as exc:  # a property of the implementation raised
            raise ImplementationCrash(path, exc) from exc
        if isinstance(value, _DATA):
            return value
        if callable(value):
            return _call(value, path)
        hit = self._subs.get(name)
        if hit is None or hit[0] is not value:
            hit = (value, _Guarded(value, path))
            self._subs[name] = hit
        return hit[1]

    def __repr__(self) -> str:
        return f"guarded({self._target!r})"


_MADE: dict[int, tuple[Implementation, Implementation]] = {}


def guarded(impl: Implementation) -> Implementation:
    """``impl`` with its JIT and patcher behind proxies that raise ``ImplementationCrash``."""
    if isinstance(impl.jit, _Guarded):
        return impl
    hit = _MADE.get(id(impl))
    if hit is not None and hit[0] is impl:
        return hit[1]
    out = Implementation(
        name=impl.name,
        caps=impl.caps,
        patcher=cast(Patcher, _Guarded(impl.patcher, "patcher")),
        jit=cast(Jit, _Guarded(impl.jit, "jit")),
        description=impl.description,
    )
    # kept for the life of the process: ``impl`` stays alive, so neither its id nor the proxies'
    # ids (the scenario's cache keys) are ever reused by another implementation
    _MADE[id(impl)] = (impl, out)
    return out
