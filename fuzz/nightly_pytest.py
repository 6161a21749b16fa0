"""pytest plugin for the nightly's property-suite phase (``pytest -p fuzz.nightly_pytest``).

It points the hypothesis ``nightly`` profile at the nightly's example database (a directory or
Redis, from ``$SLEDFUZZ_NIGHTLY_DB``), so a failure stored by any machine is replayed first; skips
the tests that would start after ``$SLEDFUZZ_NIGHTLY_DEADLINE`` (the phase's share of ``--time``);
and appends each test's outcome to ``$SLEDFUZZ_NIGHTLY_RESULTS`` as one JSON line the moment it is
known, so a phase cut short still says what passed and what failed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from sledfuzz.fuzz.nightly_db import ENV_DB, DatabaseSpec, open_database

ENV_DEADLINE = "SLEDFUZZ_NIGHTLY_DEADLINE"
ENV_RESULTS = "SLEDFUZZ_NIGHTLY_RESULTS"
_ROLE = {"xdist_worker": False}


def pytest_configure(config: Any) -> None:
    """After the test tree's conftest registered its profiles: the nightly one, with our database."""
    from hypothesis import settings

    _ROLE["xdist_worker"] = hasattr(config, "workerinput")
    url = os.environ.get(ENV_DB)
    if not url:
        return
    try:
        parent = settings.get_profile("nightly")
    except Exception:  # a checkout without a nightly profile: the current one
        parent = settings()
    settings.register_profile("sledfuzz-nightly", parent=parent, database=open_database(DatabaseSpec(url)))
    settings.load_profile("sledfuzz-nightly")


def pytest_runtest_setup(item: Any) -> None:
    deadline = os.environ.get(ENV_DEADLINE)
    if deadline and time.time() > float(deadline):
        pytest.skip("nightly: the property suite's share of --time is used up")


def pytest_runtest_logreport(report: Any) -> None:
    path = os.environ.get(ENV_RESULTS)
    if not path or _ROLE["xdist_worker"]:  # with xdist, the controller records every worker's reports
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2])
        elif report.failed:
            lines = str(report.longreprtext).strip().splitlines()
            reason = lines[-1] if lines else ""
        line = json.dumps({"test": report.nodeid, "outcome": report.outcome, "reason": reason[:300]})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
