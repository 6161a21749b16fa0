"""Execution engines behind one interface (DESIGN §2): unicorn by default."""

from __future__ import annotations

from emu.engine.base import Engine, EngineError, HostFn, HostStop, MemWrite, ObserverFn, RunResult, StopKind, TracerFn

__all__ = ["Engine", "EngineError", "HostFn", "HostStop", "MemWrite", "ObserverFn", "RunResult", "StopKind",
           "TracerFn", "get_engine"]


def get_engine(name: str = "unicorn") -> Engine:
    """A fresh engine by name; keep it for the life of the worker (creating one is not cheap)."""
    if name == "unicorn":
        from emu.engine.unicorn_engine import UnicornEngine

        return UnicornEngine()
    raise EngineError(f"unknown engine {name!r} (available: unicorn)")
