"""Engine cross-check: run a case through the scenario on unicorn and on a second engine (Spike)
and report where the two observations differ, as an *engine finding* (separate from the
trampoline findings the oracle reports: a divergence says an emulator, not a trampoline, is wrong).

`sledfuzz fuzz --cross-check spike` turns it on for every case the search judges: the CLI sets
``$SLEDFUZZ_CROSS_CHECK`` (and where findings go) before the worker processes start, and
`fuzz.campaign.judge_case` calls `cross_check_hook` first, which is a no-op when it is unset.
Each divergent case is written atomically to ``<out>/engine-findings/`` the moment it is seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from emu.engine import Engine, get_engine
from emu.impls.api import Implementation
from emu.scenario import LayoutError, run_case
from fuzz.corpus import atomic_write_text
from model.case import Case
from model.observation import Observation

ENV_ENGINE = "SLEDFUZZ_CROSS_CHECK"
ENV_OUT = "SLEDFUZZ_CROSS_CHECK_OUT"
FINDINGS_DIR = "engine-findings"
#: Engines `--cross-check` accepts (unicorn is always the reference).
CROSS_ENGINES = ("spike",)


@dataclass(frozen=True)
class Difference:
    """One Observation field whose value differs between the engines (values as repr)."""

    field: str
    reference: str
    other: str


@dataclass(frozen=True)
class EngineFinding:
    """A case on which the two engines observed different things."""

    impl: str
    engine: str
    case: Case
    differences: tuple[Difference, ...]

    @property
    def signature(self) -> str:
        """The differing fields, e.g. ``trap+writes`` (what a campaign groups findings by)."""
        return "+".join(d.field for d in self.differences)

    def to_json(self) -> str:
        return json.dumps({
            "engine_finding": 1,
            "reference": "unicorn",
            "engine": self.engine,
            "impl": self.impl,
            "signature": self.signature,
            "differences": [{"field": d.field, "unicorn": d.reference, self.engine: d.other}
                            for d in self.differences],
            "case": self.case.to_dict(),
        }, indent=2) + "\n"


def _comparable(obs: Observation) -> Observation:
    """The observation without what only names the engine: a trap's free-text detail."""
    if obs.trap is not None and obs.trap.detail:
        return replace(obs, trap=replace(obs.trap, detail=""))
    return obs


def compare(ref: Observation | str, other: Observation | str) -> tuple[Difference, ...]:
    """Field-by-field differences (a string stands for a run that raised: its text is compared)."""
    if isinstance(ref, str) or isinstance(other, str):
        return () if ref == other else (Difference("run", str(ref), str(other)),)
    a, b = _comparable(ref), _comparable(other)
    out = []
    for f in fields(Observation):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if va != vb:
            out.append(Difference(f.name, repr(va), repr(vb)))
    return tuple(out)


def _observe(case: Case, impl: Implementation, engine: Engine) -> Observation | str:
    try:
        return run_case(case, impl, engine=engine)
    except LayoutError as e:
        return f"LayoutError: {e}"


class CrossChecker:
    """A unicorn engine and a second one, each kept for the life of the checker (one per worker)."""

    def __init__(self, engine: str = "spike", *, other: Engine | None = None) -> None:
        """`other`: an engine instance to use instead of a fresh `get_engine(engine)`."""
        self.engine = engine
        self._ref = get_engine("unicorn")
        self._other = other if other is not None else get_engine(engine)
        #: Seconds spent running cases, per engine ("unicorn", and the other's name).
        self.seconds: dict[str, float] = {"unicorn": 0.0, engine: 0.0}

    def check(self, case: Case, impl: Implementation) -> EngineFinding | None:
        """Run case on both engines; the finding when their observations differ."""
        t0 = time.perf_counter()
        ref = _observe(case, impl, self._ref)
        t1 = time.perf_counter()
        other = _observe(case, impl, self._other)
        self.seconds["unicorn"] += t1 - t0
        self.seconds[self.engine] += time.perf_counter() - t1
        diffs = compare(ref, other)
        return EngineFinding(impl.name, self.engine, case, diffs) if diffs else None


def finding_path(out_dir: Path, finding: EngineFinding) -> Path:
    """One file per (implementation, case): the same divergence seen again overwrites itself."""
    digest = hashlib.sha256(json.dumps(finding.case.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in ".+-" else "_" for c in finding.impl)
    return out_dir / f"{safe}-{finding.signature}-{digest}.json"


# ---- the campaign hook ----------------------------------------------------------------------

_HOOK: tuple[CrossChecker, Path] | None = None
_HOOK_READ = False
_CHECKED = 0


def cross_check_hook(case: Case, impl: Any) -> None:
    """Called by `fuzz.campaign.judge_case` for every case: when ``$SLEDFUZZ_CROSS_CHECK`` names
    an engine, run the case on it and on unicorn and write a divergence to the findings directory."""
    global _HOOK, _HOOK_READ, _CHECKED
    if not _HOOK_READ:
        _HOOK_READ = True
        name = os.environ.get(ENV_ENGINE)
        if name:
            _HOOK = (CrossChecker(name), Path(os.environ.get(ENV_OUT) or FINDINGS_DIR))
    if _HOOK is None:
        return
    checker, out = _HOOK
    finding = checker.check(case, impl)
    out.mkdir(parents=True, exist_ok=True)
    if finding is not None:
        atomic_write_text(finding_path(out, finding), finding.to_json())
    _CHECKED += 1
    atomic_write_text(out / f".checked-{os.getpid()}", f"{_CHECKED}\n")  # the summary's case count


@contextmanager
def enabled(engine: str, out_dir: str) -> Iterator[Path]:
    """Turn the hook on for this process and the worker processes it starts; yields the directory
    engine findings are written to."""
    get_engine(engine)  # fail early, in one line (EngineError), when the engine cannot start
    path = Path(out_dir) / FINDINGS_DIR
    old = {k: os.environ.get(k) for k in (ENV_ENGINE, ENV_OUT)}
    os.environ[ENV_ENGINE] = engine
    os.environ[ENV_OUT] = str(path.resolve())
    global _HOOK, _HOOK_READ, _CHECKED
    _HOOK, _HOOK_READ, _CHECKED = None, False, 0
    for stale in path.glob(".checked-*"):  # counts of an earlier campaign in the same directory
        stale.unlink()
    try:
        yield path
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _HOOK, _HOOK_READ = None, False


def findings_in(path: Path, since: float = 0.0) -> list[Path]:
    """Engine findings in path written at or after `since` (a time.time())."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.glob("*.json") if p.stat().st_mtime >= since)


def checked_in(path: Path) -> int:
    """How many cases the worker processes cross-checked (each keeps a count file)."""
    return sum(int(p.read_text() or 0) for p in path.glob(".checked-*")) if path.is_dir() else 0
