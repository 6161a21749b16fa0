"""The subcommands on saved cases: ``replay`` (re-judge corpus files), ``explain`` (a case's
violation and its annotated execution) and ``minimize`` (a smaller case, same violation).

``minimize`` takes the same path from a failing case to a minimal one as the searches do
(``fuzz.minimal_case``): the origin is demanded only when the original passes there, and what is
written is what a fresh engine says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sledfuzz.fuzz import cli_options as opt
from sledfuzz.fuzz import interrupt
from sledfuzz.fuzz.cli_common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    UsageError,
    check_output_file,
    default_impl,
    load_case_file,
    object_unchanged,
    read_input,
    resolve_impl,
)

if TYPE_CHECKING:
    from sledfuzz.emu.impls.api import Implementation
    from sledfuzz.fuzz.corpus import Entry, ExpectedVerdict, VerdictFn
    from sledfuzz.model.case import Case


def add_parsers(sub: opt.Subparsers) -> None:
    p = sub.add_parser("replay", help="re-judge corpus files; exit 1 if any verdict changed")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="corpus entries (*.json) or directories searched recursively for them")

    p = sub.add_parser("explain", help="show a case's violation and its annotated execution")
    p.add_argument("case", metavar="CASE.json", help="a case file or a corpus entry")
    p.add_argument("--impl", metavar="NAME",
                   help=f"{opt.IMPL_HELP} (default: the first one a corpus entry expects to fail)")
    opt.strict_flags(p)
    p.add_argument("--max-insns", type=opt.int_range(1, 10**7, "a number of instructions"), default=2000,
                   metavar="N", help="show at most this many instructions, the first ones and the last ones "
                                     "(default: %(default)s)")

    p = sub.add_parser("minimize", help="shrink a case while it keeps the same violation")
    p.add_argument("case", metavar="CASE.json", help="a case file or a corpus entry (e.g. a finding's .raw.json)")
    p.add_argument("--impl", metavar="NAME",
                   help=f"{opt.IMPL_HELP} (default: the first one a corpus entry expects to fail)")
    p.add_argument("--invariant", metavar="I-NAME",
                   help="the violation to keep (default: the invariant the file records, else the first one "
                        "the case violates)")
    p.add_argument("--origin", metavar="NAME",
                   help="also keep passing on this implementation (default: the one --impl derives from)")
    p.add_argument("-o", "--output", metavar="PATH", help="write the minimal entry to this file (default: stdout)")
    opt.strict_flags(p)
    p.add_argument("--time", type=opt.seconds, default=60.0, metavar="S", help="time budget (default: %(default)g s)")


# -- replay ---------------------------------------------------------------------------------------------


def _verdicts_for(path: str, impls: dict[str, Implementation]) -> VerdictFn:
    """How ``path``'s entry is re-judged: each implementation it names resolved once for the whole
    replay; an unknown one is a one-line error naming the file."""
    from sledfuzz.fuzz.campaign import judge_case

    def verdict_of(case: Case, name: str) -> tuple[ExpectedVerdict, str]:
        if name not in impls:
            try:
                impls[name] = resolve_impl(name)
            except UsageError as exc:
                raise UsageError(f"{path}: expect: {exc}") from None
        j = judge_case(case, impls[name])
        return j.verdict, "; ".join(j.messages[:2])

    return verdict_of


def _entries(paths: list[str]) -> tuple[list[tuple[str, Entry]], list[str]]:
    """The corpus entries under ``paths``, and the names of other JSON files found in directories."""
    from sledfuzz.fuzz.corpus import entry_files, entry_from_dict, is_entry
    from sledfuzz.model.case import CaseError

    for p in paths:
        if not Path(p).exists():
            raise UsageError(f"{p}: no such file or directory")
    given = {str(Path(p)) for p in paths}
    entries: list[tuple[str, Entry]] = []
    skipped: list[str] = []
    for f in entry_files(paths):
        data = read_input(str(f))
        if not is_entry(data) and str(f) not in given:
            skipped.append(f.name)  # a summary in an output directory (matrix.json, exhaust-*.json)
            continue
        try:
            entries.append((str(f), entry_from_dict(data)))
            object_unchanged(entries[-1][1].case, str(f))
        except CaseError as exc:
            raise UsageError(f"{f}: {exc}") from None
    return entries, skipped


def cmd_replay(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz.corpus import replay_entry

    entries, skipped = _entries(args.paths)
    if not entries:
        raise UsageError(f"no corpus files (*.json) under {' '.join(args.paths)}")
    impls: dict[str, Implementation] = {}
    changed = 0
    total = 0
    done = 0
    for path, entry in entries:
        # a signal ends the replay between files (or inside one: that file does not count), with
        # the summary so far
        if interrupt.requested():
            break
        try:
            results = list(replay_entry(path, entry, _verdicts_for(path, impls)))
        except interrupt.Interrupted:
            break
        done += 1
        for r in results:
            total += 1
            if r.changed:
                changed += 1
                print(f"CHANGED {path} [{r.impl}]: expected {r.expected.render()}, got {r.got.render()}"
                      + (f" ({r.detail})" if r.detail else ""))
            else:
                print(f"ok      {path} [{r.impl}]: {r.got.render()}")
    more = f", {len(skipped)} other JSON files skipped ({', '.join(sorted(set(skipped))[:3])})" if skipped else ""
    stopped = f" (interrupted: {len(entries) - done} of {len(entries)} files not replayed)" if done < len(entries) else ""
    print(f"{done} files, {total} verdicts, {changed} changed{more}{stopped}")
    return EXIT_FINDINGS if changed else EXIT_CLEAN


# -- explain / minimize ----------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    case, entry = load_case_file(args.case)
    name = default_impl(entry, args.impl, args.case)
    impl = resolve_impl(name)
    from sledfuzz.fuzz.explain import explain

    text, failed = explain(case, impl, name=name, strict_flags=args.strict_flags, max_insns=args.max_insns)
    print(text)
    return EXIT_FINDINGS if failed else EXIT_CLEAN


def _recorded_invariants(entry: Entry | None, name: str) -> list[str]:
    """The invariants a finding file says its case violates on ``name``: its provenance's own
    (``I-X``, or ``I-X,I-Y`` from atheris), else the ones its expected verdict lists."""
    if entry is None:
        return []
    own = [i.strip() for i in str(entry.provenance.get("invariant", "")).split(",") if i.strip()]
    if own:
        return own
    verdict = entry.expect.get(name)
    return sorted(verdict.invariants) if verdict is not None and verdict.status == "fail" else []


def _invariant_to_keep(args: argparse.Namespace, entry: Entry | None, name: str, violated: frozenset[str]) -> str:
    """``--invariant``, else the one the file records, else the first the case violates."""
    listed = ", ".join(sorted(violated))
    if args.invariant:
        if args.invariant not in violated:
            raise UsageError(f"--invariant {args.invariant}: the case violates {listed} on {name}, not {args.invariant}")
        return str(args.invariant)
    recorded = _recorded_invariants(entry, name)
    kept = [i for i in recorded if i in violated]
    if recorded and not kept:
        raise UsageError(f"{args.case}: records {', '.join(recorded)} but the case now violates {listed} on "
                         f"{name}; pass --invariant to choose one")
    return kept[0] if kept else sorted(violated)[0]


def cmd_minimize(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz.campaign import derives_from, judge_case, minimal_case
    from sledfuzz.fuzz.corpus import Entry, atomic_write_text, with_tool_version
    from sledfuzz.fuzz.minimize import size, size_change

    if args.output:
        check_output_file(args.output)
    case, entry = load_case_file(args.case)
    name = default_impl(entry, args.impl, args.case)
    impl = resolve_impl(name)
    judged = judge_case(case, impl, args.strict_flags)
    if judged.status != "fail":
        raise UsageError(f"{args.case}: the case does not fail on {name} (verdict: {judged.status}); nothing to minimize")
    inv = _invariant_to_keep(args, entry, name, judged.invariants)
    origin_name = args.origin or derives_from(name)
    origin = resolve_impl(origin_name) if origin_name else None
    small = minimal_case(case, impl, inv, origin=origin, strict_flags=args.strict_flags, seconds=args.time)
    expect = {name: small.judged.verdict}
    if origin_name and small.origin_demanded and small.origin_judged is not None:
        expect[origin_name] = small.origin_judged.verdict  # (not when the original fails there too)
    prov = dict(entry.provenance) if entry is not None else {}
    prov.update({"invariant": inv, "minimized_from": str(args.case)})
    out = Entry(small.case, expect, with_tool_version(prov)).to_json()
    if args.output:
        try:
            atomic_write_text(args.output, out)
        except OSError as exc:
            raise UsageError(f"-o {args.output}: cannot write: {exc.strerror or exc}") from None
        print(f"minimized {args.case} -> {args.output} ({inv} on {name}; {size_change(size(case), size(small.case))})",
              file=sys.stderr)
    else:
        print(out, end="")
    return EXIT_CLEAN
