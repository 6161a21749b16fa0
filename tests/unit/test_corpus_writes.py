"""Finding files: never one run's case replacing another's, never half written, a full disk
named as such, and the version of the code that wrote them recorded."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sledfuzz.fuzz import corpus
from sledfuzz.fuzz.corpus import (
    Entry,
    ExpectedVerdict,
    WriteError,
    load_entry,
    tool_version,
    with_tool_version,
    write_finding,
)
from sledfuzz.model.case import Case, Function, Link


def _entry(r0: int) -> Entry:
    case = Case(target="bpf_prog", function=Function(), sled="2,0/w", links=(Link("fentry", r0=r0),))
    return Entry(case, {"v6.19": ExpectedVerdict("fail", frozenset({"I-SIZE"}))}, {"invariant": "I-SIZE"})


def test_a_different_case_gets_its_own_name_and_the_same_case_keeps_its_file(tmp_path: Path) -> None:
    first = write_finding(tmp_path / "I-SIZE.raw.json", _entry(1))
    other = write_finding(tmp_path / "I-SIZE.raw.json", _entry(2))
    again = write_finding(tmp_path / "I-SIZE.raw.json", _entry(2))
    assert first == tmp_path / "I-SIZE.raw.json"
    assert other != first and other.name.startswith("I-SIZE-") and other.name.endswith(".raw.json")
    assert again == other
    assert load_entry(first).case.links[0].r0 == 1 and load_entry(other).case.links[0].r0 == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({first.name, other.name})  # no temp files left


WRITER = """
import sys
from sledfuzz.fuzz.corpus import Entry, ExpectedVerdict, write_finding
from sledfuzz.model.case import Case, Function, Link
r0 = int(sys.argv[2])
case = Case(target="bpf_prog", function=Function(), sled="2,0/w", links=(Link("fentry", r0=r0),))
write_finding(sys.argv[1], Entry(case, {"v6.19": ExpectedVerdict("fail", frozenset({"I-SIZE"}))}, {}))
"""


def test_writers_in_many_processes_keep_every_case(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "I-SIZE.json"), str(r0)], env=env)
             for r0 in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    kept = {load_entry(p).case.links[0].r0 for p in tmp_path.glob("I-SIZE*.json")}
    assert kept == set(range(8))


def test_a_full_disk_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object, **_kw: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(corpus.tempfile, "mkstemp", full)
    with pytest.raises(WriteError) as err:
        write_finding(tmp_path / "I-SIZE.json", _entry(1))
    assert "I-SIZE.json" in str(err.value) and "(ENOSPC)" in str(err.value)
    assert err.value.errno == errno.ENOSPC


def test_finding_files_record_the_version_and_commit() -> None:
    version = tool_version()
    assert version.startswith("sledfuzz 0.")
    if (Path(corpus.__file__).resolve().parents[1] / ".git").exists():
        assert "(git " in version  # a checkout: the commit too
    assert with_tool_version({"invariant": "I-SIZE"}) == {"invariant": "I-SIZE", "sledfuzz": version}
