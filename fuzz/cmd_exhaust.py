"""``sledfuzz exhaust``: every configuration shape up to small bounds, values drawn per shape."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sledfuzz.fuzz import cli_options as opt
from sledfuzz.fuzz.cli_common import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, check_out_dir, end_code, resolve_impl

if TYPE_CHECKING:
    from sledfuzz.fuzz.exhaust import ExhaustResult


def add_parser(sub: opt.Subparsers) -> None:
    p = sub.add_parser("exhaust", help="every configuration shape up to small bounds, values drawn per shape")
    p.add_argument("--impl", required=True, metavar="NAME", help=f"{opt.IMPL_HELP}; required")
    p.add_argument("--max-links", type=opt.int_range(0, 6, "a number of links"), default=3, metavar="K",
                   help="longest link sequence enumerated, 0..6 (default: %(default)s)")
    p.add_argument("--max-args", type=opt.int_range(0, 12, "a number of arguments"), default=12, metavar="N",
                   help="most function arguments enumerated, 0..12 (default: %(default)s)")
    p.add_argument("--count-only", action="store_true",
                   help="print the number of shapes and exit (default: off, run them)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr (default: shown)")
    opt.common_search(p)


def cmd_exhaust(args: argparse.Namespace) -> int:
    from sledfuzz.fuzz import interrupt, progress, report
    from sledfuzz.fuzz.campaign import default_jobs
    from sledfuzz.fuzz.exhaust import enumerate_shapes, run_exhaust

    impl = resolve_impl(args.impl)
    shapes = enumerate_shapes(impl.caps, max_links=args.max_links, max_args=args.max_args,
                              strict_flags=args.strict_flags)
    print(f"{len(shapes)} shapes for {args.impl} (max links {args.max_links}, max args {args.max_args})",
          flush=True)
    if args.count_only:
        return EXIT_CLEAN
    check_out_dir(args.out)
    status = progress.StatusLine(not args.no_progress)

    def show(res: ExhaustResult) -> None:
        status.update(lambda: f"exhaust: {res.shapes_done:,}/{res.shapes:,} shapes in {res.seconds:.0f} s, "
                              f"{len(res.violating)} violate")

    with status:
        res = run_exhaust(args.impl, shapes, jobs=args.jobs or default_jobs(), seed=args.seed,
                          strict_flags=args.strict_flags, out_dir=args.out, on_progress=show)
    print(report.exhaust_report(res, interrupt.signal_name()))
    code = EXIT_FINDINGS if res.violating else EXIT_USAGE if res.errors else EXIT_CLEAN
    return end_code(res.interrupted or interrupt.requested(), code, [res])
