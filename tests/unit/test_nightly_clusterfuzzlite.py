""".clusterfuzzlite/build.sh builds every fuzz_*.py target with its seed corpus zip and dictionary.

The ClusterFuzzLite base image cannot be pulled here, so ``compile_python_fuzzer`` and ``pip3``
are stand-ins on PATH that record their arguments; everything else is the real script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".clusterfuzzlite" / "build.sh"


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A copy of the checkout's targets, seeds and dictionaries, plus one extra target without seeds."""
    root, src, out, bin_dir = tmp_path / "sledfuzz", tmp_path / "src", tmp_path / "out", tmp_path / "bin"
    for d in (root / "fuzz", src, out, bin_dir):
        d.mkdir(parents=True)
    for f in (ROOT / "fuzz").glob("fuzz_*.py"):
        shutil.copy(f, root / "fuzz" / f.name)
    (root / "fuzz" / "fuzz_extra.py").write_text("# another target\n")
    (root / "fuzz" / "helper.py").write_text("# not a target\n")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    log = tmp_path / "calls.log"
    _stub(bin_dir, "compile_python_fuzzer", f'echo "compile $*" >> {log}\n'
                                            'touch "$OUT/$(basename -s .py "$1")"\n')
    _stub(bin_dir, "pip3", f'echo "pip3 $*" >> {log}\n')
    return {"root": root, "src": src, "out": out, "bin": bin_dir, "log": log}


def _build(t: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SRC=str(t["src"]), OUT=str(t["out"]), SLEDFUZZ_ROOT=str(t["root"]),
               PATH=f"{t['bin']}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(BUILD)], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_build_sh_builds_every_target_with_seed_corpus_and_dictionary(tree: dict[str, Path]) -> None:
    r = _build(tree)
    assert r.returncode == 0, r.stderr
    calls = tree["log"].read_text().splitlines()
    assert calls[0] == "pip3 install ."
    compiled = sorted(Path(c.split()[1]).name for c in calls if c.startswith("compile "))
    targets = sorted(f.name for f in (ROOT / "fuzz").glob("fuzz_*.py"))
    assert targets and compiled == sorted([*targets, "fuzz_extra.py"])
    assert all("--collect-all unicorn" in c for c in calls if c.startswith("compile "))
    for target in targets:
        name = target.removesuffix(".py")
        seeds = ROOT / "corpus" / "seeds" / name
        with zipfile.ZipFile(tree["out"] / f"{name}_seed_corpus.zip") as z:
            assert z.testzip() is None
            assert sorted(z.namelist()) == sorted(f.name for f in seeds.iterdir())
            some = next(iter(seeds.iterdir()))
            assert z.read(some.name) == some.read_bytes()
        assert (tree["out"] / f"{name}.dict").read_bytes() == (ROOT / "corpus" / f"{name}.dict").read_bytes()
    assert not (tree["out"] / "fuzz_extra_seed_corpus.zip").exists()  # no seeds, no zip


def test_build_sh_fails_when_there_is_no_target(tree: dict[str, Path]) -> None:
    for f in (tree["root"] / "fuzz").glob("fuzz_*.py"):
        f.unlink()
    r = _build(tree)
    assert r.returncode != 0 and "no fuzz/fuzz_*.py target" in r.stderr
