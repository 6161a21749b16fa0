"""sledfuzz nightly's plan: shards split configurations exactly once, tasks share the time."""

from __future__ import annotations

import itertools
import random

import pytest

from sledfuzz.fuzz.campaign import shipped_configurations
from sledfuzz.fuzz.nightly_plan import (
    ATHERIS_MIN_SECONDS,
    Configuration,
    PlanError,
    Shard,
    campaign_tasks,
    kernel_configurations,
    parse_shard,
    shard_of,
)


def _all_configs() -> list[Configuration]:
    names = shipped_configurations()
    assert len(names) > 10  # the real list: eras, pairings, bug configurations
    return [Configuration(n, n) for n in names] + kernel_configurations(["/src/linux-6.12", "/tmp/linux-6.12.tar.xz"])


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 64])
def test_n_shards_cover_every_configuration_exactly_once(count: int) -> None:
    configs = _all_configs()
    shards = [shard_of(configs, Shard(i, count)) for i in range(1, count + 1)]
    labels = [c.label for s in shards for c in s]
    assert sorted(labels) == sorted(c.label for c in configs)  # every one, none twice
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # and balanced


def test_shards_do_not_depend_on_the_order_machines_list_configurations_in() -> None:
    configs = _all_configs()
    shuffled = configs[:]
    random.Random(7).shuffle(shuffled)
    for i in (1, 2, 3):
        assert shard_of(configs, Shard(i, 3)) == shard_of(shuffled, Shard(i, 3))


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "x", "1-3", ""])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(PlanError):
        parse_shard(text)


def test_shard_text_round_trips() -> None:
    assert parse_shard(" 2 / 5 ") == Shard(2, 5)
    assert str(Shard(2, 5)) == "2/5"


def test_two_trees_get_distinct_kernel_labels() -> None:
    labels = [c.label for c in kernel_configurations(["/a/linux", "/b/linux", "/c/linux-7.0.tar.gz"])]
    assert labels == ["kernel@linux", "kernel@linux-2", "kernel@linux-7.0"]


@pytest.mark.parametrize(("n_configs", "jobs", "seconds"),
                         list(itertools.product([1, 3, 9], [1, 2, 8], [20.0, 120.0, 3600.0])))
def test_tasks_share_the_worker_seconds(n_configs: int, jobs: int, seconds: float) -> None:
    configs = [Configuration(f"c{i}", f"c{i}") for i in range(n_configs)]
    tasks = campaign_tasks(configs, seconds=seconds, jobs=jobs, seed=5, atheris=True)
    assert sum(t.seconds for t in tasks) <= jobs * seconds + 1e-6
    assert all(0 < t.seconds <= seconds for t in tasks)
    assert {t.config.label for t in tasks if t.engine == "mixed"} == {c.label for c in configs}
    assert all(t.seconds >= ATHERIS_MIN_SECONDS for t in tasks if t.engine == "atheris")
    assert len({t.task_id for t in tasks}) == len(tasks)
    if seconds >= ATHERIS_MIN_SECONDS and jobs * seconds / 3 >= ATHERIS_MIN_SECONDS:
        assert any(t.engine == "atheris" for t in tasks)
    assert len(tasks) >= jobs  # enough tasks to occupy every worker


def test_atheris_rotates_over_the_configurations_night_by_night() -> None:
    configs = [Configuration(f"c{i}", f"c{i}") for i in range(6)]
    covered = set()
    for seed in range(6):
        tasks = campaign_tasks(configs, seconds=100.0, jobs=1, seed=seed, atheris=True)
        covered |= {t.config.label for t in tasks if t.engine == "atheris"}
    assert covered == {c.label for c in configs}
