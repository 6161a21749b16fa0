"""``--linux-src`` on the command line: debian:X.Y names, one clear line, several trees in one run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree
from sledfuzz.fuzz.cli import main
from tests.support.tools import missing


@pytest.fixture(autouse=True)
def _restore_kernel_tree(restore_kernel_tree: None) -> None:
    """Every test here may name another tree (tests/conftest.py: restore_kernel_tree)."""


def _fetched(version: str) -> str:
    try:
        return str(resolve_tree(f"debian:{version}", download=False))
    except DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")


def test_an_unknown_debian_version_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["fuzz", "--impl", "kernel", "--linux-src", "debian:9.9", "--time", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "debian:9.9: unknown version" in err


def test_linux_src_is_for_the_kernel_implementation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["fuzz", "--impl", "v6.19", "--linux-src", "debian:7.3", "--time", "1", "--out", str(tmp_path)])
    assert rc == 2 and "--linux-src is for --impl kernel" in capsys.readouterr().err


@pytest.mark.kernel
def test_impls_prints_the_trees_exact_version(capsys: pytest.CaptureFixture[str]) -> None:
    _fetched("7.3")
    assert main(["impls", "--linux-src", "debian:7.3"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("kernel "))
    assert re.search(r"real JIT of linux 7\.3\.\d+ ", line), line


@pytest.mark.kernel
@pytest.mark.slow
def test_several_trees_are_judged_each_under_its_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fetched("6.12")
    _fetched("7.2")
    rc = main(["fuzz", "--impl", "kernel", "--linux-src", "debian:6.12", "--linux-src", "debian:7.2",
               "--time", "3", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    names = re.findall(r"^(kernel-[0-9.]+): ", out, re.MULTILINE)
    assert [n.rsplit(".", 1)[0] for n in names] == ["kernel-6.12", "kernel-7.2"], out
