"""Memory over a long search: RSS at the start, after the first minute and at the end, per engine.

A search must run for hours in bounded memory. For each engine this runs one search process on a
clean configuration (so nothing is found and every second is searching) and samples the resident
set of the process and its children from ``/proc`` every second (Linux only):

* ``hypothesis``: ``fuzz.campaign.search_cell(engine="hypothesis")``, what ``sledfuzz fuzz`` runs;
* ``mixed``: the same with the engine ``sledfuzz run`` uses (hypothesis and the shape builder);
* ``random``: the shape builder alone;
* ``atheris``: the libFuzzer target ``fuzz/fuzz_trampoline.py`` (needs atheris).

    python bench/rss.py [--engines hypothesis,mixed,atheris] [--seconds 600] [--impl v6.19]

Without options it measures the three shipped engines, 10 minutes each, one after the other
(figures in docs/results.md, "Reproducibility and memory").

Prints, per engine, RSS (MB) at the first sample, at 60 s and at the end, and the growth after the
first minute (``growth_after_1min: +N.N%``; the target is under 10 %).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ("hypothesis", "mixed", "random", "atheris")
WARMUP = 60.0


def _tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc/*/stat's parent field)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _rss_mb(pid: int) -> float:
    """Resident set of ``pid`` and its descendants, in MB."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _command(engine: str, impl: str, seconds: float, work: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    if engine == "atheris":
        env.update(SLEDFUZZ_IMPL=impl, SLEDFUZZ_OUT=work)
        return ([sys.executable, "-m", "sledfuzz.fuzz.fuzz_trampoline", f"-max_total_time={int(seconds)}", "-seed=1",
                 f"-artifact_prefix={work}/", "-rss_limit_mb=8192", "-print_final_stats=0",
                 "-close_fd_mask=3", work], env)
    return ([sys.executable, str(Path(__file__).resolve()), "--child", engine, "--impl", impl,
             "--seconds", str(seconds), "--out", work], env)


def measure(engine: str, impl: str, seconds: float) -> tuple[float, float, float]:
    """(RSS at the first sample, at WARMUP seconds, at the end) of one search process."""
    with tempfile.TemporaryDirectory(prefix="sledfuzz-rss-") as work:
        cmd, env = _command(engine, impl, seconds, work)
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        first = at_warm = last = 0.0
        report = 60.0
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                rss = _rss_mb(proc.pid)
                if rss <= 0:
                    continue
                now = time.monotonic() - t0
                first = first or rss
                if now >= WARMUP and not at_warm:
                    at_warm = rss
                if now <= seconds:  # not the process's shutdown
                    last = rss
                if now >= report:
                    report += 60.0
                    print(f"  {engine}: {now:5.0f} s  RSS {rss:7.1f} MB", flush=True)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    return first, at_warm or last, last


def _child(engine: str, impl: str, seconds: float, out: str) -> int:
    from sledfuzz.fuzz.campaign import search_cell

    search_cell(impl, seconds=seconds, seed=1, out_dir=out, stop_when_found=False, minimize=False,
                engine=engine)  # type: ignore[arg-type]
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="hypothesis,mixed,atheris",
                    help=f"comma-separated, from {', '.join(ENGINES)} (default hypothesis,mixed,atheris)")
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds per engine (default 600)")
    ap.add_argument("--impl", default="v6.19", help="a clean configuration to search (default v6.19)")
    ap.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args.child, args.impl, args.seconds, args.out)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown engine(s) {', '.join(bad)} (choose from {', '.join(ENGINES)})")
    worst = 0.0
    for engine in engines:
        print(f"{engine}: {args.seconds:.0f} s on {args.impl}", flush=True)
        first, warm, end = measure(engine, args.impl, args.seconds)
        growth = 100.0 * (end - warm) / warm if warm else 0.0
        worst = max(worst, growth)
        print(f"{engine}: RSS start {first:.1f} MB, after {WARMUP:.0f} s {warm:.1f} MB, end {end:.1f} MB; "
              f"growth_after_1min: {growth:+.1f}%", flush=True)
    print(f"worst_growth_after_1min: {worst:+.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
