"""libFuzzer target (OSS-Fuzz naming): bytes -> case -> judged on one implementation.

Every byte string maps to a valid case for the implementation (``FuzzedDataProvider`` choices
drive ``fuzz.shape``; running out of bytes yields the smallest choices), so no input is wasted and
none raises. A failing verdict is a finding: the equivalent case JSON is written atomically next
to libFuzzer's artifacts (``<artifact_prefix>crash-<sha1>.json``, the same name libFuzzer gives
the crash file), then an exception hands the input to libFuzzer, which writes the crash file.

Configuration comes from the environment so that the target stays a plain libFuzzer binary:
``SLEDFUZZ_IMPL`` (default ``v6.19``), ``SLEDFUZZ_OUT`` (where case JSON and stats go, default
the artifact prefix or ``.``), ``SLEDFUZZ_STRICT_FLAGS=1``, ``SLEDFUZZ_ELF`` (JSON of ``fuzz.elf_cases.ElfSource``: cases
over an object's compiled functions). Run::

    python fuzz/fuzz_trampoline.py -max_total_time=30 -dict=corpus/fuzz_trampoline.dict corpus/seeds
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

import atheris

if __package__ in (None, ""):  # run as a plain script (OSS-Fuzz style): the repo root on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports():
    import sledfuzz.emu.impls.registry
    import sledfuzz.emu.scenario
    import sledfuzz.fuzz.oracle
    import sledfuzz.model.invariants
    import sledfuzz.model.semantics
    from sledfuzz.fuzz.campaign import judge_case, resolve
    from sledfuzz.fuzz.corpus import Entry, atomic_write_text
    from sledfuzz.fuzz.elf_cases import ElfSource, draw_elf_case
    from sledfuzz.fuzz.fresh import confirm, write_harness_fault
    from sledfuzz.fuzz.shape import PlainDraw, case_from_draw
    from sledfuzz.model.case import MASK64

_INSTRUMENTED = (sledfuzz.emu.impls.registry, sledfuzz.emu.scenario, sledfuzz.fuzz.oracle, sledfuzz.model.invariants,
                 sledfuzz.model.semantics)


class ProviderDraw(PlainDraw):
    """A ``fuzz.shape.Draw`` over libFuzzer bytes; exhausted input gives the minimal choices."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def int_in(self, lo: int, hi: int) -> int:
        if hi <= lo:
            return lo
        return int(self.fdp.ConsumeIntInRange(lo, hi))

    def flag(self) -> bool:
        return bool(self.fdp.ConsumeBool())

    def u64(self) -> int:
        return int(self.fdp.ConsumeUInt(8)) & MASK64


class Finding(Exception):
    """Raised for libFuzzer: the input violates an invariant on the implementation."""


_STATE: dict[str, Any] = {}


def _setup() -> None:
    name = os.environ.get("SLEDFUZZ_IMPL", "v6.19")
    _STATE["name"] = name
    _STATE["impl"] = resolve(name)
    _STATE["strict"] = os.environ.get("SLEDFUZZ_STRICT_FLAGS", "") == "1"
    _STATE["elf_targets"] = None
    if os.environ.get("SLEDFUZZ_ELF"):  # fuzz --elf: cases over an object's compiled functions
        _STATE["elf_targets"] = ElfSource.from_json(os.environ["SLEDFUZZ_ELF"]).targets(_STATE["impl"])[0]
    prefix = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("-artifact_prefix=")), "")
    _STATE["out"] = os.environ.get("SLEDFUZZ_OUT") or (os.path.dirname(prefix) if prefix else ".")
    _STATE["prefix"] = prefix
    _STATE["counts"] = {"cases": 0, "judged": 0, "failed": 0, "refused": 0, "unspecified": 0, "invalid": 0}
    _STATE["last"] = 0.0
    _STATE["start"] = time.monotonic()


def case_from_bytes(data: bytes, caps: Any, strict_flags: bool = False) -> Any:
    """The case an input stands for (also used by tests and by ``replay`` of crash files)."""
    return case_from_draw(ProviderDraw(atheris.FuzzedDataProvider(data)), caps, strict_flags=strict_flags)


def _stats(force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - _STATE["last"] < 1.0:
        return
    _STATE["last"] = now
    stats = dict(_STATE["counts"], impl=_STATE["name"], seconds=round(now - _STATE["start"], 2))
    atomic_write_text(os.path.join(_STATE["out"], f"stats-{os.getpid()}.json"), json.dumps(stats) + "\n")


def TestOneInput(data: bytes) -> None:
    if not _STATE:
        _setup()
    impl = _STATE["impl"]
    if _STATE["elf_targets"] is not None:
        case = draw_elf_case(ProviderDraw(atheris.FuzzedDataProvider(data)), impl, _STATE["elf_targets"],
                             strict_flags=_STATE["strict"])
        if case is None:
            return
    else:
        case = case_from_bytes(data, impl.caps, _STATE["strict"])
    judged = judge_case(case, impl, _STATE["strict"])
    counts = _STATE["counts"]
    counts["cases"] += 1
    key = {"pass": "judged", "fail": "judged"}.get(judged.status, judged.status)
    counts[key if key in counts else "invalid"] += 1
    _stats()
    if judged.status != "fail":
        return
    counts["failed"] += 1
    confirmed, again = confirm(case, impl, judged, _STATE["strict"])
    if not confirmed:  # the reused engine disagrees with a fresh one: a harness fault, not a finding
        counts["harness_faults"] = counts.get("harness_faults", 0) + 1
        write_harness_fault(os.environ.get("SLEDFUZZ_RUN_OUT") or _STATE["out"], case, _STATE["name"], judged, again,
                            {"found_by": "atheris (fuzz/fuzz_trampoline.py)"})
        _stats(force=True)
        return
    _stats(force=True)
    sha1 = hashlib.sha1(data).hexdigest()
    entry = Entry(case, {_STATE["name"]: judged.verdict},
                  {"found_by": "atheris (fuzz/fuzz_trampoline.py)", "input_sha1": sha1,
                   "invariant": ",".join(sorted(judged.invariants)), "message": "; ".join(judged.messages[:3])})
    path = os.path.join(_STATE["out"], f"crash-{sha1}.json")
    atomic_write_text(path, entry.to_json())
    raise Finding(f"{_STATE['name']}: {'; '.join(judged.messages[:3])} (case: {path})")


def main() -> None:
    _setup()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
