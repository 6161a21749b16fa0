"""Mutation score: how many single-edit faults of the newest era's code the search finds in time.

Each mutant (``bench/mutants/*.toml``, ``[[mutant]]`` tables: ``name``, ``file``, ``old``, ``new``,
``why``) is one slip a kernel developer could make in the code the newest era runs — the JIT
(``emu/impls/jit.py``), its era description, the ftrace and BPF patchers and the text poke
(``emu/impls/patchers.py``). ``old`` must occur exactly once in ``file``; the mutant is that text
replaced by ``new``. For every mutant the project (``model``, ``emu``, ``fuzz``, ``bench``,
``corpus``) is copied to a temporary directory, the edit applied there, and the search
(``fuzz.campaign.search_cell`` on ``--impl``, ``--engine``, no output files) runs in a fresh
process with that copy first on ``sys.path``, for at most ``--budget-seconds``. The mutant is
killed by the first case judged ``fail`` (any invariant: the unmutated implementation is clean),
or by an exception raised while judging a case — the implementation crashed on that case, a
finding (reported with the file and line that raised). Before the mutants, the unmutated copy is
searched for the same budget and must stay clean, else the score means nothing (exit 1).

    python bench/mutants.py [--budget-seconds 10] [--jobs 1] [--mutant NAME ...] [--json PATH]

The last line is ``mutation_score: KILLED/TOTAL``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MUTANT_DIR = Path(__file__).resolve().parent / "mutants"
COPIED = ("model", "emu", "fuzz", "sledfuzz", "bench", "corpus")


@dataclass(frozen=True)
class Mutant:
    """One single-edit fault: ``old`` (exactly once in ``file``) becomes ``new``."""

    name: str
    file: str
    old: str
    new: str
    why: str
    source: str  # the .toml it came from

    def apply(self, root: Path) -> None:
        """Edit the copy under ``root``; a stale mutant (``old`` not exactly once) is an error."""
        path = root / self.file
        text = path.read_text(encoding="utf-8")
        n = text.count(self.old)
        if n != 1:
            raise ValueError(f"mutant {self.name} ({self.source}): the old text occurs {n} times in {self.file}, "
                             "expected exactly once (the file changed: update the mutant)")
        path.write_text(text.replace(self.old, self.new), encoding="utf-8")


def load_mutants(directory: Path = MUTANT_DIR) -> list[Mutant]:
    """Every mutant of every ``*.toml`` in ``directory``, in file then declaration order."""
    out: list[Mutant] = []
    for f in sorted(directory.glob("*.toml")):
        data = tomllib.loads(f.read_text(encoding="utf-8"))
        for m in data.get("mutant", []):
            out.append(Mutant(m["name"], m["file"], m["old"], m["new"], m.get("why", ""), f.name))
    names = [m.name for m in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate mutant names: {', '.join(dup)}")
    return out


def copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)


def run_one(mutant: Mutant | None, args: argparse.Namespace) -> dict[str, Any]:
    """Search one mutant (None: the unmutated copy) in a child process; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="sledfuzz-mutant-") as tmp:
        root = Path(tmp)
        copy_project(root)
        if mutant is not None:
            mutant.apply(root)
        out = root / "result.json"
        cmd = [sys.executable, str(root / "bench" / "mutants.py"), "--child", "--impl", args.impl,
               "--engine", args.engine, "--budget-seconds", str(args.budget_seconds), "--seed", str(args.seed),
               "--out", str(out)]
        env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=str(root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=args.budget_seconds + 120, check=False)
            stderr = proc.stderr
        except subprocess.TimeoutExpired:
            return {"killed": False, "how": "timeout", "error": "the child did not finish", "cases": 0}
        if not out.exists():
            tail = " | ".join(stderr.strip().splitlines()[-3:])
            return {"killed": False, "how": "error", "error": f"no result (child failed): {tail}", "cases": 0,
                    "process_seconds": time.monotonic() - t0}
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        result["process_seconds"] = time.monotonic() - t0
        return result


def describe(name: str, r: dict[str, Any]) -> str:
    if r["killed"] and r["how"] == "violation":
        return (f"KILLED   {name}: {', '.join(r['invariants'])} after {r['cases']} cases, {r['seconds']:.2f}s"
                f" ({r['summary'][:110]})")
    if r["killed"]:
        return (f"KILLED   {name}: the implementation crashed after {r['cases']} cases, {r['seconds']:.2f}s: "
                f"{r['error'][:90]} at {r['where']}")
    if r["how"] in ("error", "timeout"):
        return f"ERROR    {name}: {r['error']}"
    return f"SURVIVED {name}: {r['cases']} cases in {r['seconds']:.1f}s, nothing found"


# ---------------------------------------------------------------------------------------------
# the child: runs inside the (mutated) copy


def child(args: argparse.Namespace) -> None:
    import traceback

    sys.path.insert(0, str(ROOT))
    import sledfuzz.fuzz.oracle
    from sledfuzz.fuzz.campaign import search_cell

    real = sledfuzz.fuzz.oracle.judge
    start = [0.0]
    n = [0]

    def write(result: dict[str, Any]) -> None:
        result.setdefault("cases", n[0])
        result.setdefault("seconds", time.monotonic() - start[0] if start[0] else 0.0)
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")
        os._exit(0)

    def judge(case: Any, impl: Any, **kw: Any) -> Any:
        if not start[0]:
            start[0] = time.monotonic()
        n[0] += 1
        try:
            verdict = real(case, impl, **kw)
        except Exception as exc:  # the mutated implementation raised on this case: a finding
            frames = traceback.extract_tb(exc.__traceback__)
            ours = [f for f in frames if str(ROOT) in f.filename] or frames
            spots = [f for f in ours if f"{os.sep}emu{os.sep}impls{os.sep}" in f.filename][-1:] + ours[-1:]
            where = " -> ".join(dict.fromkeys(f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}" for f in spots)) or "?"
            write({"killed": True, "how": "crash", "error": f"{type(exc).__name__}: {exc}", "where": where,
                   "case": case.to_json(indent=None)})
        if verdict.status == "fail":
            write({"killed": True, "how": "violation", "invariants": sorted(verdict.invariants),
                   "summary": verdict.summary, "case": case.to_json(indent=None)})
        return verdict

    sledfuzz.fuzz.oracle.judge = judge  # type: ignore[assignment]
    res = search_cell(args.impl, seconds=args.budget_seconds, seed=args.seed, out_dir=None, minimize=False,
                      stop_when_found=False, engine=args.engine)
    if res.error:
        write({"killed": False, "how": "error", "error": f"search error: {res.error}"})
    write({"killed": False, "how": "survived"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-seconds", type=float, default=10.0, help="search time per mutant (default 10)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants searched in parallel (default 1)")
    ap.add_argument("--mutant", action="append", metavar="NAME", help="only these mutants (repeatable)")
    ap.add_argument("--impl", default="v6.19", help="the configuration searched (default v6.19)")
    ap.add_argument("--engine", default="mixed", help="search_cell engine (default mixed, as sledfuzz run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write every result as JSON here")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated control run")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0

    try:
        mutants = load_mutants()
        for m in mutants:  # stale mutants fail here, before any search
            text = (ROOT / m.file).read_text(encoding="utf-8")
            if text.count(m.old) != 1:
                raise ValueError(f"mutant {m.name}: old text occurs {text.count(m.old)} times in {m.file}")
    except (ValueError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"mutants: error: {exc}", file=sys.stderr)
        return 2
    if args.mutant:
        unknown = sorted(set(args.mutant) - {m.name for m in mutants})
        if unknown:
            print(f"mutants: error: unknown mutant(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.name in args.mutant]
    if args.list:
        for m in mutants:
            print(f"{m.name:36s} {m.file}: {m.why}")
        return 0

    print(f"{len(mutants)} mutants, {args.budget_seconds:g}s each, {args.impl}, engine {args.engine}, "
          f"seed {args.seed}, {args.jobs} job(s)", flush=True)
    status = 0
    results: dict[str, dict[str, Any]] = {}
    if not args.no_baseline:
        base = run_one(None, args)
        results["(baseline)"] = base
        clean = not base["killed"] and base["how"] == "survived"
        print(f"baseline (no mutation): {base['cases']} cases in {base.get('seconds', 0.0):.1f}s, "
              + ("clean" if clean else "NOT CLEAN: " + describe("(baseline)", base)), flush=True)
        if not clean:
            status = 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_one, m, args): m for m in mutants}
        for fut in concurrent.futures.as_completed(futures):
            m = futures[fut]
            r = fut.result()
            r["file"], r["why"] = m.file, m.why
            results[m.name] = r
            print(describe(m.name, r), flush=True)
    killed = sum(1 for m in mutants if results[m.name]["killed"])
    survivors = [m.name for m in mutants if not results[m.name]["killed"]]
    if survivors:
        print("survivors: " + ", ".join(survivors))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"mutation_score: {killed}/{len(mutants)}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
