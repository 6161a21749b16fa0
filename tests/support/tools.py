"""Skipping a test for a missing tool, and only for that: outside CI the test is skipped with the
reason (which names the package scripts/setup.sh installs); in CI (``CI`` set) nothing the tests
need may be missing, so the test runs, or fails saying what is missing. Never skip on an exception."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = bool(os.environ.get("CI"))


def skip_if_missing(missing: bool, *, reason: str) -> pytest.MarkDecorator:
    """``pytest.mark.skipif`` for a missing tool: skips outside CI only (in CI the test runs and
    fails on the missing tool)."""
    return pytest.mark.skipif(missing and not IN_CI, reason=reason)


def missing(reason: str) -> NoReturn:
    """Inside a test or fixture: a tool is missing. Skip outside CI; fail in CI."""
    if IN_CI:
        pytest.fail(f"missing in CI (scripts/setup.sh installs it): {reason}", pytrace=False)
    pytest.skip(reason)
