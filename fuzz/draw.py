"""Sources of choices for the case space (``fuzz.space``): what a generator is, below its description.

A ``Draw`` answers three kinds of question (an integer in a range, a flag, 64 bits) and draws a
part of a case as a whole. ``RandomDraw`` answers from a seeded ``random.Random`` (the fast
generator); libFuzzer's bytes (``fuzz/fuzz_trampoline.py``) and hypothesis (``fuzz.strategies``)
answer the same questions.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Draw(Protocol):
    """A source of choices. Implementations must never raise, whatever they are fed.

    ``part(fn)`` draws one part of a case (an argument list, a link, a layout) with ``fn``: plain
    sources just call it; hypothesis draws it as a nested strategy, so its shrinker sees the part
    as one span it can simplify or drop as a whole."""

    def int_in(self, lo: int, hi: int) -> int: ...

    def flag(self) -> bool: ...

    def u64(self) -> int: ...

    def part(self, fn: Callable[[Draw], T]) -> T: ...


class PlainDraw(ABC):
    """A source of choices with no notion of spans: a part is drawn in place."""

    @abstractmethod
    def int_in(self, lo: int, hi: int) -> int: ...

    @abstractmethod
    def flag(self) -> bool: ...

    @abstractmethod
    def u64(self) -> int: ...

    def part(self, fn: Callable[[Draw], T]) -> T:
        return fn(self)


class RandomDraw(PlainDraw):
    """Choices from a seeded ``random.Random``: the fast generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int_in(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        if span <= 1:
            return lo
        if span <= 1 << 32:  # a float's 53 bits: uniform within 2^-21, and much faster than randint
            return lo + int(self.rng.random() * span)
        return lo + self.rng.randrange(span)

    def flag(self) -> bool:
        return self.rng.random() < 0.5

    def u64(self) -> int:
        return self.rng.getrandbits(64)


def pick(draw: Draw, seq: Sequence[T]) -> T:
    """One of ``seq`` (repeat an option to weight it; the first is the simplest)."""
    return seq[draw.int_in(0, len(seq) - 1)]
