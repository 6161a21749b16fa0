"""The nightly job: the long searches a CI schedule runs, one summary file, one exit code.

Steps (each optional): corpus replay; the property suite under the hypothesis ``nightly`` profile
(large budget, example database on, so a failure found tonight is replayed first tomorrow); a
hypothesis campaign over every shipped configuration; atheris on the clean configurations. New
findings are written as corpus entries under ``OUT/new-regressions/`` for a person to review and
copy into ``corpus/regressions/``. Exit 0 when every step is as expected, else 1.

    python -m fuzz.nightly --minutes 60 --out nightly-out [--db .hypothesis] [--skip-pytest]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fuzz.campaign import CellSpec, default_jobs, expectation, merge_results, resolve, run_cells, shipped_configurations
from fuzz.corpus import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
CLEAN_FOR_ATHERIS = ("v6.19", "v6.12")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz.nightly", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="campaign budget (default 60)")
    ap.add_argument("--out", default="nightly-out")
    ap.add_argument("--db", default=".hypothesis", help="hypothesis example database directory for pytest")
    ap.add_argument("--jobs", type=int, default=default_jobs())
    ap.add_argument("--seed", type=int, default=int(time.strftime("%Y%m%d")))
    ap.add_argument("--skip-pytest", action="store_true")
    ap.add_argument("--skip-atheris", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {"seed": args.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    ok = True

    replay = subprocess.run([sys.executable, "-m", "fuzz.cli", "replay", str(ROOT / "corpus" / "regressions")],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    summary["replay"] = {"exit": replay.returncode, "tail": replay.stdout.splitlines()[-1:]}
    ok &= replay.returncode == 0

    if not args.skip_pytest:
        env = dict(os.environ, HYPOTHESIS_PROFILE="nightly", SLEDFUZZ_HYPOTHESIS_DB=args.db)
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "tests/properties", "-n", str(args.jobs)],
                               cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        summary["properties"] = {"exit": tests.returncode, "tail": tests.stdout.splitlines()[-3:]}
        ok &= tests.returncode == 0

    configs = shipped_configurations()
    seconds = args.minutes * 60 * args.jobs / max(1, len(configs))
    specs = [CellSpec(n, seconds, args.seed + i, False, str(out), stop_when_found=False) for i, n in enumerate(configs)]
    results, interrupted = run_cells(specs, jobs=args.jobs)
    cells = merge_results(results)
    summary["campaign"] = [c.to_json() for c in cells]
    ok &= all(c.ok for c in cells) and not interrupted
    new_dir = out / "new-regressions"
    for c in cells:
        for inv in c.unexpected:
            f = c.findings[inv]
            if f.case_path:
                new_dir.mkdir(exist_ok=True)
                shutil.copy(f.case_path, new_dir / f"{c.impl.replace('=', '_').replace(',', '_')}-{inv}.json")

    if not args.skip_atheris:
        from fuzz.atheris_run import run_atheris

        ath = []
        for name in CLEAN_FOR_ATHERIS:
            expectation(resolve(name))
            res = run_atheris(name, seconds=args.minutes * 60 / 4, jobs=args.jobs, seed=args.seed, out_dir=str(out))
            ath.append(res.to_json())
            ok &= not res.findings
        summary["atheris"] = ath

    summary["ok"] = ok
    atomic_write_text(out / "nightly.json", json.dumps(summary, indent=2) + "\n")
    print(f"nightly: {'ok' if ok else 'FINDINGS'}; summary in {out / 'nightly.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
