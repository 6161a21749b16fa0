"""A shared example database on a real Redis server (Debian ``redis-server``, on a loopback port).

What one machine finds is stored in Redis and replayed first on another machine that has never
seen it (its own cache empty): the nightly's minimised findings, and the property suite's
hypothesis failures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tools import missing

ROOT = Path(__file__).resolve().parents[2]
BUG = "v6.19-pre-9f1e16fb1fc9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        missing("redis-server is not installed (scripts/setup.sh installs Debian's redis-server)")
    import redis

    port = _free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        end = time.monotonic() + 60
        while True:  # until it answers (or died)
            assert proc.poll() is None, "redis-server exited"
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < end, "redis-server never answered"
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def _machine(tmp: Path, name: str) -> dict[str, str]:
    """Another machine: its own cache (state file, directory database) and working directory."""
    return dict(os.environ, XDG_CACHE_HOME=str(tmp / name / "cache"), PYTHONPATH=str(ROOT), HYPOTHESIS_PROFILE="ci")


@pytest.mark.slow
def test_a_finding_from_one_machine_is_replayed_first_on_another(tmp_path: Path, redis_url: str) -> None:
    common = ["--impl", BUG, "--jobs", "1", "--skip", "properties", "--skip", "atheris", "--skip", "replay",
              "--hypothesis-db", redis_url, "--no-progress"]
    a = subprocess.run([sys.executable, "-m", "sledfuzz", "nightly", "--time", "25", "--out", str(tmp_path / "a"),
                        *common], cwd=str(ROOT), env=_machine(tmp_path, "a"), capture_output=True, text=True,
                       timeout=300, check=False)
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())
    found_a = {(f["impl"], f["invariant"], f["signature"]) for f in sa["findings"]}
    assert (BUG, "I-SIZE") in {k[:2] for k in found_a}, (a.stdout, a.stderr)
    assert sa["database"].startswith("redis 127.0.0.1:")
    # machine b only replays (no search): everything it reports came from Redis
    b = subprocess.run([sys.executable, "-m", "sledfuzz", "nightly", "--time", "20", "--out", str(tmp_path / "b"),
                        "--skip", "search", *common], cwd=str(ROOT), env=_machine(tmp_path, "b"), capture_output=True,
                       text=True, timeout=300, check=False)
    sb = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert b.returncode == 0, (b.stdout, b.stderr)
    assert sb["phases"]["shared_db"]["replayed"] >= len(found_a)
    assert {(f["impl"], f["invariant"], f["signature"]) for f in sb["findings"]} == found_a
    assert all(f["source"].startswith("shared database") for f in sb["findings"])
    assert all(c["cases"] == 0 for e in sb["cases"].values() for c in e.values())
    assert not (tmp_path / "b" / "cache" / "sledfuzz" / "hypothesis").exists()  # nothing came from b's own disk


PROPERTY = '''
import os

from hypothesis import given, settings, strategies as st

@settings(derandomize=False, max_examples=300)
@given(st.integers(0, 10**6))
def test_small(n):
    with open(os.environ["PROPERTY_LOG"], "a") as f:
        f.write(f"{n}\\n")
    assert n < 777
'''


@pytest.mark.slow
def test_the_property_suite_replays_another_machines_failure_first(tmp_path: Path, redis_url: str) -> None:
    """The pytest plugin the nightly's property phase uses points hypothesis at Redis."""
    tests = tmp_path / "props"
    tests.mkdir()
    (tests / "test_prop.py").write_text(PROPERTY)  # the same source on both machines: the same database key
    runs = []
    for name in ("a", "b"):
        log = tmp_path / f"{name}.log"
        env = dict(_machine(tmp_path, name), SLEDFUZZ_NIGHTLY_DB=redis_url, PROPERTY_LOG=str(log))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "sledfuzz.fuzz.nightly_pytest",
                            "-p", "no:cacheprovider", str(tests / "test_prop.py")], cwd=str(tmp_path), env=env,
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 1, r.stdout  # the property fails on both machines
        runs.append([int(x) for x in log.read_text().split()])
    assert 777 in runs[0]  # a shrank to the boundary and stored it in Redis
    assert runs[1][0] == 777  # b tried that stored failure before anything else
