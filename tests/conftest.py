"""Shared pytest setup: the repo root on sys.path, hypothesis profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
