"""Debian's kernel source packages as trees for the ``kernel`` implementation (``debian:7.3``).

Debian ships ``linux-source-X.Y`` packages whose one payload is ``/usr/src/linux-source-X.Y.tar.xz``.
6.12 is the machine's own (installed by scripts/setup.sh); newer ones come from other suites and
are fetched with the ordinary apt client under a private configuration, so nothing system-wide
changes: a one-entry ``.sources`` file in the cache (the mirror URI is read at run time from the
machine's own apt sources, never written into this repository), private package lists and apt
cache, then ``apt-get download`` and ``dpkg-deb -x`` into ``$XDG_CACHE_HOME/sledfuzz/trees/``.
The build reads the extracted tarball like any other (emu/kernel/build.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PREFIX = "debian:"
#: Version -> the Debian suite that carries ``linux-source-<version>`` (6.12: installed locally).
SUITES: dict[str, str] = {"6.12": "trixie", "7.2": "sid", "7.3": "trixie-backports"}
INSTALLED = {"6.12": Path("/usr/src/linux-source-6.12.tar.xz")}
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class DebianTreeError(Exception):
    """A ``debian:X.Y`` tree is unknown or cannot be fetched; the message is one line."""


@dataclass(frozen=True)
class AptMirror:
    """The machine's Debian archive: where its own sources point, and the key they trust."""

    uri: str
    signed_by: str


def trees_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sledfuzz" / "trees"


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def _is_archive(uri: str, suites: str) -> bool:
    """The main archive, not security or updates-only mirrors."""
    return uri.startswith(("http://", "https://")) and "security" not in uri and "security" not in suites


def machine_mirror(sources_dir: Path = APT_SOURCES_DIR, sources_list: Path = APT_SOURCES_LIST) -> AptMirror:
    """The Debian archive URI of this machine's own apt sources (``*.sources``, else ``sources.list``)."""
    files = sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for st in _deb822_stanzas(text):
            if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", "").split():
                continue
            for uri in st.get("uris", "").split():
                if _is_archive(uri, st.get("suites", "")):
                    return AptMirror(uri.rstrip("/"), st.get("signed-by") or DEFAULT_KEYRING)
    if sources_list.is_file():
        for line in sources_list.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
            if m and _is_archive(m.group(2), m.group(3)):
                signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
                return AptMirror(m.group(2).rstrip("/"), signed.group(1) if signed else DEFAULT_KEYRING)
    raise DebianTreeError(
        f"no Debian archive in {sources_dir}/*.sources or {sources_list}: cannot fetch kernel sources"
    )


def parse_name(name: str) -> str | None:
    """``debian:7.3`` -> ``7.3``; None when ``name`` is not a ``debian:`` name."""
    if not name.startswith(PREFIX):
        return None
    return name[len(PREFIX) :].strip()


def _apt_options(root: Path) -> list[str]:
    return [
        "-o", "Dir::Etc::sourcelist=/dev/null",
        "-o", f"Dir::Etc::sourceparts={root / 'etc'}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-q",
    ]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DebianTreeError(f"cannot run {cmd[0]}: {exc}") from exc


def _last_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E:")]
    return (errors or lines or ["(no output)"])[-1]


def tarball_path(version: str) -> Path:
    """Where ``debian:<version>``'s tarball lands in the cache once fetched."""
    return trees_root() / f"linux-source-{version}" / "usr" / "src" / f"linux-source-{version}.tar.xz"


def fetch(version: str, *, mirror: AptMirror | None = None) -> Path:
    """Download and unpack ``linux-source-<version>`` from its suite; the tarball's path.

    Already fetched: returned as is (delete the cache directory to refresh). Raises
    DebianTreeError with one line (unknown version, no apt, the suite does not carry it).
    """
    if version not in SUITES:
        raise DebianTreeError(f"debian:{version}: unknown version; known: {', '.join('debian:' + v for v in SUITES)}")
    target = tarball_path(version)
    if target.is_file():
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DebianTreeError(f"debian:{version}: no {tool} on this machine (a Debian system is needed)")
    mirror = mirror or machine_mirror()
    root = trees_root() / "apt"
    for sub in ("etc", "lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    suite = SUITES[version]
    (root / "etc" / "sledfuzz.sources").write_text(
        f"Types: deb\nURIs: {mirror.uri}\nSuites: {' '.join(sorted(set(SUITES.values())))}\n"
        f"Components: main\nSigned-By: {mirror.signed_by}\n"
    )
    opts = _apt_options(root)
    proc = _run(["apt-get", *opts, "update"])
    if proc.returncode != 0:
        raise DebianTreeError(f"debian:{version}: apt-get update failed: {_last_error(proc)}")
    package = f"linux-source-{version}"
    with tempfile.TemporaryDirectory(dir=trees_root(), prefix=".dl-") as tmp:
        os.chmod(tmp, 0o755)  # as root apt may then warn that it downloads unsandboxed; harmless
        proc = _run(["apt-get", *opts, "download", f"{package}/{suite}"], cwd=Path(tmp))
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise DebianTreeError(f"debian:{version}: {package} is not available from {suite}: {_last_error(proc)}")
        unpack = Path(tmp) / "x"
        proc = _run(["dpkg-deb", "-x", str(debs[0]), str(unpack)])
        inner = unpack / "usr" / "src" / f"{package}.tar.xz"
        if proc.returncode != 0 or not inner.is_file():
            raise DebianTreeError(f"debian:{version}: {debs[0].name} holds no {inner.name}: {_last_error(proc)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(inner, target)
    return target


def resolve_tree(name: str, *, download: bool = True) -> Path:
    """A ``--linux-src`` value as a path: ``debian:X.Y`` from the machine or the cache, else as given."""
    version = parse_name(name)
    if version is None:
        return Path(name)
    installed = INSTALLED.get(version)
    if installed is not None and installed.is_file():
        return installed
    if not download:
        target = tarball_path(version)
        if not target.is_file():
            raise DebianTreeError(f"debian:{version}: not fetched yet (run scripts/setup.sh)")
        return target
    return fetch(version)


def main(argv: list[str] | None = None) -> int:
    """``python -m sledfuzz.emu.kernel.debian [VERSION...]``: fetch the trees (scripts/setup.sh runs it)."""
    import sys

    versions = (argv if argv is not None else sys.argv[1:]) or list(SUITES)
    status = 0
    for version in versions:
        try:
            path = resolve_tree(PREFIX + version)
        except DebianTreeError as exc:
            print(f"setup: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"setup: debian:{version} -> {path}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
