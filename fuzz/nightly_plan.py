"""What a nightly run searches and for how long: configurations, shards, the time plan, the tasks.

Pure functions of the command line, so that N machines given the same list and ``--shard I/N``
split it the same way, and so that the time plan can be checked without running anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NightlyEngine = Literal["mixed", "atheris"]
ENGINES: tuple[NightlyEngine, ...] = ("mixed", "atheris")
ATHERIS_SHARE = 1 / 3  # of the campaign's worker-seconds; the rest goes to the hypothesis + shape-builder search
ATHERIS_MIN_SECONDS = 30.0  # shorter atheris tasks would spend their time instrumenting imports
PROPERTIES_SHARE = 0.2  # of --time, for the property suite when the checkout has one


@dataclass(frozen=True)
class Checkout:
    """The sledfuzz checkout a night takes its inputs from (``--checkout``, default: the current
    directory): the regression corpus it replays, the property tests it runs, the atheris seeds and
    dictionary. Run outside a checkout, a night skips what it does not find and says so."""

    root: Path

    @property
    def regressions(self) -> Path:
        return self.root / "corpus" / "regressions"

    @property
    def atheris_dict(self) -> Path:
        return self.root / "corpus" / "fuzz_trampoline.dict"

    @property
    def atheris_seeds(self) -> Path:
        return self.root / "corpus" / "seeds" / "fuzz_trampoline"

    @property
    def has_property_suite(self) -> bool:
        return (self.root / "tests" / "properties").is_dir() and (self.root / "tests" / "conftest.py").is_file()


class PlanError(ValueError):
    """A plan that cannot run (bad shard, empty shard); the message is one line."""


@dataclass(frozen=True)
class Configuration:
    """One implementation to search: a registry name, and for ``kernel`` the tree it is built from."""

    label: str  # unique in a run: the registry name, or ``kernel@TREE`` for a kernel tree
    impl: str  # the registry name (``kernel`` for every tree)
    linux_src: str | None = None


@dataclass(frozen=True)
class Shard:
    """Machine ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise PlanError(f"expected I/N (e.g. 1/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise PlanError(f"expected 1 <= I <= N, got {index}/{count}")
    return Shard(index, count)


def kernel_configurations(trees: list[str]) -> list[Configuration]:
    """``kernel@NAME`` per tree (NAME: the directory name, or the tarball's without ``.tar.*``)."""
    out: list[Configuration] = []
    used: set[str] = set()
    for tree in trees:
        name = re.sub(r"\.tar(\.[a-z0-9]+)?$", "", Path(tree.rstrip("/")).name) or "tree"
        label, n = f"kernel@{name}", 1
        while label in used:
            n += 1
            label = f"kernel@{name}-{n}"
        used.add(label)
        out.append(Configuration(label, "kernel", tree))
    return out


def shard_of(configs: list[Configuration], shard: Shard) -> list[Configuration]:
    """Round-robin over the configurations sorted by label: every one lands in exactly one shard."""
    ordered = sorted(configs, key=lambda c: c.label)
    return [c for i, c in enumerate(ordered) if i % shard.count == shard.index - 1]


def report_reserve(total: float) -> float:
    """Seconds kept at the end of ``--time`` for minimising stragglers and writing the reports."""
    return min(30.0, max(5.0, 0.08 * total))


def properties_seconds(total: float) -> float:
    return PROPERTIES_SHARE * total


@dataclass(frozen=True)
class Task:
    """One worker process's job: search ``config`` with ``engine`` for ``seconds``."""

    task_id: str
    config: Configuration
    engine: NightlyEngine
    seconds: float
    seed: int


def campaign_tasks(configs: list[Configuration], *, seconds: float, jobs: int, seed: int,
                   atheris: bool, search: bool = True) -> list[Task]:
    """Split ``jobs * seconds`` worker-seconds between the engines and the configurations.

    atheris gets ATHERIS_SHARE of them in tasks of at least ATHERIS_MIN_SECONDS (its start-up,
    instrumenting every module, takes many seconds), on as many configurations as that allows,
    rotating with the seed so that successive nights cover all of them; the search engine gets
    the rest, a task per configuration, and several per configuration (different seeds) when
    there are more workers than tasks. No task is longer than ``seconds``, the campaign's wall
    clock; atheris tasks come first, as the slowest to start.
    """
    if not configs or seconds <= 0 or not (search or atheris):
        return []
    total = jobs * seconds
    tasks: list[Task] = []

    def add(c: Configuration, engine: NightlyEngine, secs: float) -> None:
        tasks.append(Task(f"{len(tasks):03d}-{engine}-{slug(c.label)}", c, engine, min(seconds, secs),
                          seed + 1000 * len(tasks)))

    if atheris:
        share = total * (ATHERIS_SHARE if search else 1.0)
        n = min(len(configs), int(share // ATHERIS_MIN_SECONDS))
        per = min(seconds, share / n) if n else 0.0
        n = n if per >= ATHERIS_MIN_SECONDS else 0
        first = seed % len(configs)
        for k in range(n):
            add(configs[(first + k) % len(configs)], "atheris", per)
        total -= sum(t.seconds for t in tasks)
    if search and total > 0:
        copies = max(1, -(-(jobs - len(tasks)) // len(configs)))  # ceil: every worker busy
        for c in configs:
            for _ in range(copies):
                add(c, "mixed", total / (len(configs) * copies))
    return tasks


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")
