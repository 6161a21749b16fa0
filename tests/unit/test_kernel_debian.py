"""debian:X.Y trees: the mirror comes from the machine's own apt sources, names resolve, errors are one line.

No network here: the mirror parser reads files written by the test, and the fetched trees (when
scripts/setup.sh fetched them) are checked by the version their Makefile declares.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sledfuzz.emu.kernel import debian
from sledfuzz.emu.kernel.build import kernel_version, read_tree
from tests.support.tools import missing


def test_the_mirror_is_the_deb822_archive_entry_not_security(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: trixie-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.invalid/debian\nSuites: trixie\n\n"
        "# comment\nTypes: deb\nURIs: http://mirror.invalid/debian/\nSuites: trixie trixie-updates\n"
        "Components: main\nSigned-By: /etc/keys/k.gpg\n"
    )
    assert debian.machine_mirror(d, tmp_path / "none") == debian.AptMirror("http://mirror.invalid/debian", "/etc/keys/k.gpg")


def test_the_mirror_falls_back_to_sources_list(tmp_path: Path) -> None:
    lst = tmp_path / "sources.list"
    lst.write_text("deb http://sec.invalid/debian-security bookworm-security main\n"
                   "deb [arch=amd64 signed-by=/k.gpg] http://arch.invalid/debian bookworm main\n")
    mirror = debian.machine_mirror(tmp_path / "missing", lst)
    assert mirror == debian.AptMirror("http://arch.invalid/debian", "/k.gpg")


def test_no_mirror_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(debian.DebianTreeError) as info:
        debian.machine_mirror(tmp_path / "missing", tmp_path / "missing.list")
    assert "\n" not in str(info.value) and "no Debian archive" in str(info.value)


def test_names() -> None:
    assert debian.parse_name("debian:7.3") == "7.3"
    assert debian.parse_name("/usr/src/x.tar.xz") is None
    assert debian.resolve_tree("/some/dir") == Path("/some/dir")
    with pytest.raises(debian.DebianTreeError, match=r"debian:9\.9: unknown version; known: debian:6\.12"):
        debian.resolve_tree("debian:9.9")


def test_nothing_is_fetched_into_the_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert debian.tarball_path("7.3") == tmp_path / "sledfuzz/trees/linux-source-7.3/usr/src/linux-source-7.3.tar.xz"
    with pytest.raises(debian.DebianTreeError, match="not fetched yet"):
        debian.resolve_tree("debian:7.2", download=False)


@pytest.mark.kernel
@pytest.mark.parametrize("version", sorted(debian.SUITES))
def test_each_fetched_tree_declares_its_version(version: str) -> None:
    try:
        src = debian.resolve_tree(f"debian:{version}", download=False)
    except debian.DebianTreeError as exc:
        missing(f"{exc} (scripts/setup.sh fetches it)")
    files, name, _ = read_tree(src)
    assert name == f"linux-source-{version}"
    assert kernel_version(files["Makefile"].decode()).startswith(version + ".")
