"""Execution engines behind one interface (DESIGN §2): unicorn by default, Spike to cross-check."""

from __future__ import annotations

from sledfuzz.emu.engine.base import (
    Engine,
    EngineError,
    HostFn,
    HostStop,
    MemWrite,
    ObserverFn,
    RunResult,
    StopKind,
    TracerFn,
)

__all__ = ["Engine", "EngineError", "HostFn", "HostStop", "MemWrite", "ObserverFn", "RunResult", "StopKind",
           "TracerFn", "get_engine"]


def get_engine(name: str = "unicorn") -> Engine:
    """A fresh engine by name; keep it for the life of the worker (creating one is not cheap)."""
    if name == "unicorn":
        from sledfuzz.emu.engine.unicorn_engine import UnicornEngine

        return UnicornEngine()
    if name == "spike":  # the `spike` extra (EngineError saying so when it is missing)
        from sledfuzz.emu.engine.spike_engine import SpikeEngine

        return SpikeEngine()
    raise EngineError(f"unknown engine {name!r} (available: unicorn, spike)")
