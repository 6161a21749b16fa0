"""The plugin example in docs/implementations.md, extracted and resolved through module:factory."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sledfuzz.emu.impls.api import ArgModel, FuncModel, Image, LinkReq, TrampRequest
from sledfuzz.emu.impls.registry import ImplementationError, resolve
from sledfuzz.emu.rv64.disasm import disassemble
from sledfuzz.model.contract import F_RESTORE_REGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "implementations.md"


def example() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- example: plugin -->\s*```python\n(.*?)```", text, re.S)
    assert m, "docs/implementations.md lost its plugin example"
    return m.group(1)


def test_doc_example_resolves_and_changes_one_thing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sf_doc_plugin_example.py").write_text(example(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    impl = resolve("sf_doc_plugin_example:factory")
    assert impl is resolve("sf_doc_plugin_example:factory")
    assert impl.name == "my-v6.19" and impl.caps.name == "my-v6.19"
    assert "I-PROG-PROTOCOL" in impl.caps.known_invariants

    req = TrampRequest(
        model=FuncModel((ArgModel(8),)), links=(LinkReq("fentry", 0xFFFFFFFF81100000, 0xFFFFFFFF80500000),),
        flags=F_RESTORE_REGS, func_addr=0xFFFFFFFF80200000, im=0xFFFFFFFF81000000,
        prog_enter=0xFFFFFFFF80600000, prog_exit=0xFFFFFFFF80600100,
        tramp_enter=0xFFFFFFFF80600200, tramp_exit=0xFFFFFFFF80600300,
    )
    mine, ref = impl.jit.emit(req, 0xFFFFFFFF80400000, 4096), resolve("v6.19").jit.emit(req, 0xFFFFFFFF80400000, 4096)
    assert isinstance(mine, Image) and isinstance(ref, Image)
    assert mine.used_len == ref.used_len and mine.code != ref.code

    def mnemonics(img: Image) -> list[str]:
        return [i.mnemonic.removeprefix("c.") for i in disassemble(img.code[: img.used_len], img.addr)]

    m, r = mnemonics(mine), mnemonics(ref)
    k = r.index("mv", r.index("jalr"))  # the first mv s1, a0 after the enter call
    assert r[k : k + 2] == ["mv", "beqz"] and m[k : k + 2] == ["beqz", "mv"]
    sys.modules.pop("sf_doc_plugin_example", None)


def test_factory_must_return_an_implementation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sf_bad_plugin.py").write_text("def factory():\n    return 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImplementationError, match="not an Implementation"):
        resolve("sf_bad_plugin:factory")
