"""Shared pytest setup: the repo root on sys.path, hypothesis profiles."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=20000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # the example database on (a directory; fuzz/nightly.py points it at a persistent path)
    database=DirectoryBasedExampleDatabase(os.environ.get("SLEDFUZZ_HYPOTHESIS_DB", str(ROOT / ".hypothesis" / "examples"))),
)
def _import_first_party() -> None:
    """Hypothesis mixes literals of every loaded first-party module into what it draws
    (``hypothesis.internal.conjecture.providers._get_local_constants``): a seeded search would draw
    other cases depending on which tests imported what before it. Loading every module of the
    package first makes the constant pool, and so every seeded test, independent of test order."""
    import importlib
    import pkgutil

    for pkg in ("sledfuzz", "bench"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            if info.name.endswith(("fuzz_trampoline", "__main__")):  # a libFuzzer script, not a module
                continue
            importlib.import_module(info.name)


_import_first_party()


def _freeze_hypothesis_constants() -> None:
    """Tests also import modules of their own (plugins written to a temp dir, for one): freeze the
    pool at every first-party module, so no later import changes what a seeded search draws.
    Private API of hypothesis (checked: 6.170); without it there is nothing to freeze."""
    from hypothesis.internal.conjecture import providers

    get = getattr(providers, "_get_local_constants", None)
    if get is not None:
        frozen = get()
        providers._get_local_constants = lambda: frozen  # type: ignore[attr-defined]


_freeze_hypothesis_constants()

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def restore_kernel_tree(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI sets the process's default tree (also in the environment, for workers) and the
    registry caches ``kernel``: undo all of it after the test, so no later test sees its tree."""
    import sledfuzz.emu.impls.registry as registry
    import sledfuzz.emu.kernel.impl as kimpl

    monkeypatch.setattr(kimpl, "_default_tree", kimpl._default_tree)
    monkeypatch.setattr(registry, "_cache", dict(registry._cache))
    saved = {var: os.environ.get(var) for var in (kimpl.ENV_VAR, kimpl.ENV_TREES)}
    yield
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
