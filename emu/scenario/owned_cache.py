"""A bounded memo of pure results per owning object (a JIT, a patcher, an implementation).

The scenario caches what an implementation returns for the same request (an image, a poke's
result, the torn states): each is pure in (owner, key). An entry is a hit only for the very object
that produced it, compared by identity: a different implementation, even an equal-looking one,
must never get another's image or poke result, and owners need not be hashable (a plugin's JIT
may be a plain mutable dataclass). The entry holds the owner itself, so its address cannot be
reused by another object while the entry lives. Past ``limit`` entries the memo starts over.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class OwnedCache(Generic[V]):
    """``get(owner, key)`` / ``put(owner, key, value)``, bounded by ``limit`` entries."""

    def __init__(self, limit: int = 512) -> None:  # keys hold layout addresses: bounded memory (docs/results.md)
        self._entries: dict[tuple[int, Hashable], tuple[object, V]] = {}
        self._limit = limit

    def get(self, owner: object, key: Hashable) -> V | None:
        hit = self._entries.get((id(owner), key))
        return hit[1] if hit is not None and hit[0] is owner else None

    def put(self, owner: object, key: Hashable, value: V) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(id(owner), key)] = (owner, value)
