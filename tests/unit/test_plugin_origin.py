"""A ``module:factory`` plugin keeps its own name for directories and gets the origin check of
the configuration it declares it derives from (docs/implementations.md's example)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sledfuzz.emu.impls import registry
from sledfuzz.fuzz.campaign import cell_context, search_cell
from sledfuzz.fuzz.corpus import load_entry

DOC = Path(__file__).resolve().parents[2] / "docs" / "implementations.md"
SPEC = "sf_origin_plugin:factory"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    m = re.search(r"<!-- example: plugin -->\s*```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert m
    (tmp_path / "sf_origin_plugin.py").write_text(m.group(1), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield SPEC
    registry._cache.pop(SPEC, None)
    sys.modules.pop("sf_origin_plugin", None)


def test_a_plugin_declares_its_origin_and_keeps_its_name(plugin: str) -> None:
    assert registry.derives_from(plugin) == "v6.19"
    assert registry.display_name(plugin) == "my-v6.19"
    ctx = cell_context(plugin)
    assert ctx.origin_name == "v6.19" and ctx.origin is registry.resolve("v6.19")


def test_a_plugin_finding_is_written_under_its_name_and_passes_on_its_origin(plugin: str, tmp_path: Path) -> None:
    res = search_cell(plugin, seconds=60, seed=3, out_dir=str(tmp_path / "out"), engine="random")
    assert "I-PROG-PROTOCOL" in res.findings, res.error
    finding = res.findings["I-PROG-PROTOCOL"]
    assert Path(finding.case_path).parent == tmp_path / "out" / "my-v6.19"
    entry = load_entry(finding.case_path)
    assert entry.expect[plugin].status == "fail"  # replay resolves the entry by the name it was run with
    assert entry.expect["v6.19"].status == "pass"  # the origin check ran, and the case passes there
    assert finding.origin_status == "pass"
