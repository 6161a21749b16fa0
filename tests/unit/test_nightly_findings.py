"""Which nightly findings are new: signatures of minimised cases, the corpus, earlier nights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sledfuzz.fuzz.nightly_findings import FindingKey, NightState, corpus_keys, signature
from sledfuzz.model.case import Arg, Case, Function, Link

ROOT = Path(__file__).resolve().parents[2]


def _case(**kw: object) -> Case:
    base = Case(target="bpf_prog", function=Function(args=(Arg(8), Arg(4)), values=(1, 2)), sled="2,0/w",
                links=(Link("fentry"), Link("fexit", r0=3)))
    return replace(base, **kw)  # type: ignore[arg-type]


def test_values_a_minimiser_may_stop_at_do_not_change_the_signature() -> None:
    a = _case()
    b = _case(function=replace(a.function, values=(99, 12345)), links=(Link("fentry", cookie=7), Link("fexit", r0=8)),
              seed=42)
    assert signature(a) == signature(b)


def test_structure_changes_the_signature() -> None:
    a = _case()
    others = [
        _case(links=(Link("fentry"), Link("fmod_ret"))),
        _case(links=(Link("fentry"),)),
        _case(function=replace(a.function, args=(Arg(8), Arg(16, is_struct=True)), values=(1, 2, 3))),
        _case(function=replace(a.function, ret_size=4)),
        _case(teardown=True),
        _case(layout=replace(a.layout, image=a.layout.image + 0x1000_0000)),
    ]
    sigs = {signature(a), *(signature(c) for c in others)}
    assert len(sigs) == 1 + len(others)


def test_state_file_keeps_keys_across_nights(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.json"
    key = FindingKey("v6.19", "I-SIZE", "0123456789ab")
    night1 = NightState(path)
    assert night1.keys() == set()
    night1.add(key, "/out/findings/x.json")
    night2 = NightState(path)
    assert night2.keys() == {key}
    assert night2.seen[key.text()]["case"] == "/out/findings/x.json"


def test_a_damaged_state_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert NightState(path).keys() == set()


def test_every_failing_verdict_of_the_corpus_is_a_known_key() -> None:
    corpus = ROOT / "corpus" / "regressions"
    want = set()
    for f in sorted(corpus.glob("*.json")):
        data = json.loads(f.read_text())
        for impl, v in data["expect"].items():
            for inv in v.get("invariants", []) if v["status"] == "fail" else []:
                want.add((impl, inv))
    keys = corpus_keys([corpus])
    assert want and {(k.impl, k.invariant) for k in keys} == want
