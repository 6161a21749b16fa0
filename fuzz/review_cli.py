"""The ``review`` subcommand: parse, prepare the trees, run the review, write and print reports.

Exit codes: 0 no regression, 1 regressions, 2 could not run (bad arguments, a patch that does not
apply), 125 a tree that cannot be built or probed (``git bisect run`` skips it), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_SKIP = 125

__all__ = ["EXIT_SKIP", "TreeUnavailable", "add_parser", "cmd_review"]


class TreeUnavailable(Exception):
    """The tree cannot be built or probed: ``git bisect run`` must skip this commit (exit 125)."""


def add_parser(sub: Any, seconds: Any, seed: Any) -> None:
    p = sub.add_parser(
        "review", help="judge a patch series: the kernel implementation before and after it, on the same cases",
        description="Build the kernel implementation for TREE before and after the patches (mbox or git "
                    "format-patch files, applied in order to a scratch copy of the files sledfuzz reads), judge "
                    "both on the same cases and report what the series breaks, fixes and changes. Exit 0: no "
                    "regression, 1: regressions, 2: could not run, 125: a tree cannot be built (bisect skip).")
    p.add_argument("patches", nargs="*", metavar="PATCH", help="patch files, applied in order (default: none)")
    p.add_argument("--linux-src", required=True, metavar="TREE",
                   help="the tree the series applies to: a directory, a tarball or debian:X.Y")
    p.add_argument("--time", type=seconds, default=120.0, metavar="S",
                   help="search budget, split between the corpus, the shape builder, hypothesis and atheris "
                        "(libFuzzer runs when its share is at least 30 s; default 120 s)")
    p.add_argument("--seed", type=seed, default=0, help="seed of every generated case (default 0)")
    p.add_argument("--format", choices=("text", "json", "md"), default="text",
                   help="report on stdout: text (fits 80 columns, for a mailing-list reply), json or md "
                        "(default text; all three are written to --out)")
    p.add_argument("--out", default="sledfuzz-review", metavar="DIR",
                   help="where minimal cases and the three reports are written (default ./sledfuzz-review)")
    p.add_argument("--case", metavar="FILE", help="judge only this saved case before and after (default: search)")
    p.add_argument("--minimize-time", type=seconds, default=30.0, metavar="S",
                   help="time to minimise all regressions together (default 30 s)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr (default: progress)")


def _trees(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from sledfuzz.emu.impls.registry import ImplementationError
    from sledfuzz.emu.kernel.impl import factory
    from sledfuzz.fuzz.review_tree import ReviewTreeError, prepare

    src = args.linux_src
    if src.startswith("debian:"):
        from sledfuzz.emu.kernel.debian import DebianTreeError, resolve_tree

        try:
            src = str(resolve_tree(src))
        except DebianTreeError as exc:
            raise TreeUnavailable(str(exc)) from None
    try:
        trees = prepare(src, list(args.patches))
    except ReviewTreeError as exc:
        if "does not apply" in str(exc) or "no such patch" in str(exc):
            raise ValueError(str(exc)) from None
        raise TreeUnavailable(str(exc)) from None
    if not args.no_progress:
        print(f"sledfuzz: building the kernel implementation of linux {trees.version} before and after "
              f"the series", file=sys.stderr)
    try:
        before = factory(str(trees.before), name=f"kernel-{trees.version}")
        after = factory(str(trees.after), name=f"kernel-{trees.version}+series")
    except ImplementationError as exc:
        raise TreeUnavailable(str(exc).removeprefix("kernel: ")) from None
    return trees, before, after


def cmd_review(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz.corpus import atomic_write_text
    from sledfuzz.fuzz.review import atheris_cases, corpus_cases, hypothesis_cases, review, shape_cases
    from sledfuzz.fuzz.review_report import render_json, render_md, render_text

    stopped: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        trees, before, after = _trees(args)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sources: list[Any]
        if args.case is not None:
            case = _load_case(args.case)
            sources = [lambda visit: visit(f"case {args.case}", case, force=True)]
        else:
            root = Path(__file__).resolve().parent.parent / "corpus" / "regressions"
            corpus = sorted(root.glob("*.json")) if root.is_dir() else []
            sources = [corpus_cases(corpus), shape_cases(before.caps, args.seed), hypothesis_cases(before.caps, args.seed),
                       atheris_cases(trees.after, args.seed, out / "atheris")]

        def progress(res: Any) -> None:
            if not args.no_progress:
                print(f"sledfuzz review: {res.cases:,} cases, {len(res.regressions)} regression(s), "
                      f"{res.seconds:.0f}/{args.time:.0f} s", file=sys.stderr)

        res = review(before, after, sources, seconds=args.time if args.case is None else 1e9, tree=args.linux_src,
                     version=trees.version, patches=tuple(args.patches), attribute=trees.patches_touching,
                     minimize_seconds=args.minimize_time, on_progress=progress, stop=lambda: bool(stopped))
        reproduce: dict[str, str] = {}
        patches = " ".join(shlex.quote(p) for p in args.patches)
        for reg in res.regressions.values():
            small = reg.minimal or reg.case
            path = out / f"{reg.invariant}.json"
            atomic_write_text(path, small.to_json() + "\n")
            reg.path = str(path)
            reproduce[reg.invariant] = (f"sledfuzz review --linux-src {shlex.quote(args.linux_src)} {patches} "
                                        f"--case {shlex.quote(str(path))}").replace("  ", " ")
            reg.explain = _explain(small, after)
        texts = {"text": render_text(res, reproduce=reproduce), "json": render_json(res, reproduce=reproduce),
                 "md": render_md(res, reproduce=reproduce)}
        for fmt, name in (("text", "review.txt"), ("json", "review.json"), ("md", "review.md")):
            atomic_write_text(out / name, texts[fmt])
        sys.stdout.write(texts[args.format])
        if stopped:
            return 130
        return res.exit_code
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _load_case(path: str) -> Any:
    from sledfuzz.fuzz.corpus import load_entry
    from sledfuzz.model.case import CaseError, load_case

    try:
        return load_case(path)
    except CaseError:
        return load_entry(path).case


def _explain(case: Any, impl: Any) -> str:
    from sledfuzz.fuzz.explain import explain

    try:
        text, _ = explain(case, impl, name=impl.name, max_insns=200)
    except Exception as exc:  # the report must not die for want of an excerpt
        return f"(explain failed: {type(exc).__name__}: {exc})"
    return text
