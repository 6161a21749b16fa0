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
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sledfuzz.emu.engine import Engine, EngineError, RunResult, get_engine
from sledfuzz.emu.engine.base import MASK64
from sledfuzz.emu.impls.api import Implementation
from sledfuzz.emu.scenario import LayoutError, run_case
from sledfuzz.fuzz.corpus import atomic_write_text
from sledfuzz.model.case import Case
from sledfuzz.model.observation import Observation

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


# ---- ISA level: random instruction streams in lockstep ------------------------------------------

ISA_TEXT = 0xFFFF_FFFF_8000_0000
ISA_DATA = 0xFFFF_FFFF_8010_0000
ISA_SPAN = 0x2000
#: Major opcodes of the integer instructions a 32-bit word is drawn with (OP, OP-IMM, their 32-bit
#: forms, LUI, AUIPC, LOAD, STORE, BRANCH, JAL, JALR, AMO); 30% of the parcels are random RVC.
_ISA_OPCODES = (0x13, 0x33, 0x1B, 0x3B, 0x37, 0x17, 0x03, 0x23, 0x63, 0x6F, 0x67, 0x2F)


@dataclass(frozen=True)
class IsaProgram:
    """A random RV64GC instruction stream with its registers and data page contents."""

    code: bytes
    regs: tuple[tuple[int, int], ...]
    data: bytes


def isa_program(seed: int, n: int = 24) -> IsaProgram:
    """n random parcels; registers point into the data pages, or are random/small values."""
    rng = random.Random(seed)
    parts = []
    for _ in range(n):
        if rng.random() < 0.3:
            h = rng.getrandbits(16)
            parts.append((h & ~1 if h & 3 == 3 else h).to_bytes(2, "little"))
        else:
            parts.append((rng.getrandbits(32) & ~0x7F | rng.choice(_ISA_OPCODES)).to_bytes(4, "little"))
    regs = tuple((r, rng.choice((
        (ISA_DATA + rng.randrange(0, ISA_SPAN - 0x800)) & ~7,
        ISA_DATA + rng.randrange(0, ISA_SPAN),
        rng.getrandbits(64),
        rng.randrange(-5, 5) & MASK64,
    ))) for r in range(1, 32))
    return IsaProgram(b"".join(parts), regs, rng.randbytes(ISA_SPAN))


@dataclass(frozen=True)
class IsaDivergence:
    """The first instruction on which the engines disagree, and the known cause when it is one."""

    pc: int
    word: int
    reference: RunResult
    other: RunResult
    cause: str | None  # a key of ISA_CAUSES, None: unexplained


#: Known causes of ISA-level divergences (unicorn 2.1.4 vs Spike); docs/engines.md has the details.
ISA_CAUSES = {
    "budget-then-fetch": "unicorn: the last budgeted instruction jumps to an unmapped address; unicorn "
                         "reports the fetch fault of the next instruction instead of the budget stop",
    "rvc-fp-ldst-fs-off": "unicorn: compressed FP load/store with mstatus.FS = Off executes as a no-op "
                          "(no trap, no memory access)",
    "rvc-reserved": "unicorn: reserved RVC encodings (quadrant 0 funct3=100; quadrant 1 c.subw/c.addw "
                    "slots with funct2=10/11) execute as no-ops instead of raising illegal instruction",
    "sc-misaligned": "unicorn: a misaligned SC without a reservation fails silently instead of trapping",
    "amo-fault-kind": "modelling: an AMO on unmapped memory is a load fault in unicorn (its read comes "
                      "first), a store/AMO page fault in Spike (what the privileged spec says)",
}


def isa_cause(word: int, ref: RunResult, other: RunResult) -> str | None:
    """Which known cause explains a one-instruction divergence (None: none does)."""
    ran = ref.stop in ("budget", "sentinel")  # unicorn executed the instruction
    if word & 3 != 3 and ran and other.stop == "illegal_insn":
        quadrant, f3 = word & 3, word >> 13
        if quadrant in (0, 2) and f3 in (1, 5):
            return "rvc-fp-ldst-fs-off"
        if quadrant == 0 and f3 == 4:
            return "rvc-reserved"
        if quadrant == 1 and f3 == 4 and (word >> 12) & 1 and (word >> 10) & 3 == 3 and (word >> 5) & 3 >= 2:
            return "rvc-reserved"
    if (ref.stop, other.stop) == ("fetch_unmapped", "budget") and ref.steps == other.steps \
            and other.pc <= ref.pc < other.pc + 4:  # the next instruction, or its half on the next page
        return "budget-then-fetch"
    if word & 0x7F == 0x2F:
        funct5 = word >> 27
        if funct5 == 3 and ran and other.stop == "misaligned":
            return "sc-misaligned"
        if funct5 != 2 and (ref.stop, other.stop) == ("read_unmapped", "write_unmapped") \
                and (ref.pc, ref.fault_addr) == (other.pc, other.fault_addr):
            return "amo-fault-kind"
    return None


def _prepare(eng: Engine, prog: IsaProgram) -> None:
    eng.map(ISA_TEXT, ISA_SPAN)
    eng.map(ISA_DATA, ISA_SPAN)
    eng.write(ISA_TEXT, bytes(ISA_SPAN))
    eng.write(ISA_TEXT, prog.code)
    eng.write(ISA_DATA, prog.data)
    eng.set_regs(prog.regs)


def isa_lockstep(ref: Engine, other: Engine, prog: IsaProgram, max_steps: int = 100) -> IsaDivergence | None:
    """Run prog one instruction at a time on both engines; the first step after which the stop,
    pc, fault address, logged stores or any x-register differ (None: they never do)."""
    for eng in (ref, other):
        _prepare(eng, prog)
    pc, end = ISA_TEXT, ISA_TEXT + len(prog.code)
    for _ in range(max_steps):
        try:
            lo = ref.read(pc, 2)
            word = int.from_bytes(ref.read(pc, 4) if lo[0] & 3 == 3 else lo, "little")
        except EngineError:
            word = 0
        a, b = ref.run(pc, end, 1), other.run(pc, end, 1)
        sa = (a.stop, a.pc, a.fault_addr, a.steps, a.writes, ref.regs(range(32)))
        sb = (b.stop, b.pc, b.fault_addr, b.steps, b.writes, other.regs(range(32)))
        if sa != sb:
            return IsaDivergence(pc, word, a, b, isa_cause(word, a, b))
        if a.stop != "budget":
            return None
        pc = a.pc
    return None
