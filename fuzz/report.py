"""What a person reads at the end: the final verdict and bug lines, the matrix file.

Every line of a final report fits ``WIDTH`` columns; the wide configuration x invariant matrix
goes to ``matrix.md`` instead. Live progress while a run goes is ``fuzz.progress``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sledfuzz.fuzz.campaign import CellResult, Counts

if TYPE_CHECKING:
    from sledfuzz.fuzz.exhaust import ExhaustResult

WIDTH = 100


def fit(line: str, width: int = WIDTH) -> list[str]:
    """``line`` as lines of at most ``width`` columns (continuations indented)."""
    if len(line) <= width:
        return [line]
    indent = " " * min(len(line) - len(line.lstrip()) + 4, 12)
    return textwrap.wrap(line, width=width, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=True)


def grouped(x: int) -> str:
    return f"{x:,}"


def counts_line(counts: Counts, seconds: float) -> str:
    rate = counts.cases / seconds if seconds > 0 else 0.0
    return (f"{grouped(counts.cases)} cases in {seconds:.1f} s ({grouped(round(rate))}/s): "
            f"{grouped(counts.judged)} judged ({grouped(counts.failed)} failing), {grouped(counts.refused)} refused, "
            f"{grouped(counts.unspecified)} unspecified, {grouped(counts.invalid)} invalid")


# -- the final report of run / matrix ------------------------------------------------------------------


def _rel(path: str, base: str) -> str:
    """``path`` relative to ``base`` when it lies inside it, else as it is."""
    if not path:
        return "(not written)"
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _case_column(path: str, impl: str, out_dir: str) -> str:
    """The case path as short as it can be said: relative to ``OUT/<configuration>/``."""
    from sledfuzz.fuzz.campaign import slug

    return _rel(path, os.path.join(out_dir, slug(impl))) if path else "(not written)"


def _bug_rows(cells: list[CellResult], out_dir: str) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for c in cells:
        for commit, f in c.bugs_found.items():
            if f is not None:
                case = _case_column(f.case_path, c.impl, out_dir)
                if not f.checked:
                    case += " (not minimised)"
                elif f.origin_ok is False:
                    case += f" (ORIGIN-FAILS: {f.origin_status} on {f.origin})"
                rows.append((c.impl, commit[:12], f.invariant, f"{f.seconds:.2f}s", case))
            else:
                invs = c.target_bugs[commit]
                word = "not run" if c.not_run else "stopped" if c.interrupted else "MISSED"
                rows.append((c.impl, commit[:12], invs[0] + (f" +{len(invs) - 1}" if len(invs) > 1 else ""),
                             word, "-"))
    return rows


def _table_lines(rows: Sequence[tuple[str, ...]], head: tuple[str, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    out = []
    for r in [head, *rows]:
        cols = [r[i].ljust(widths[i]) if i < len(widths) else r[i] for i in range(len(r))]
        out.extend(fit("  " + "  ".join(cols).rstrip()))
    return out


def verdict(cells: list[CellResult], interrupted: bool) -> str:
    """The first line of the report: PASS / FAIL / INTERRUPTED and the three numbers that matter."""
    bugs = [(c, f) for c in cells for f in c.bugs_found.values()]
    found = sum(1 for _, f in bugs if f is not None)
    clean = [c for c in cells if c.expect == "pass"]
    clean_ran = [c for c in clean if not c.not_run]
    quiet = sum(1 for c in clean_ran if not c.findings)
    unexpected = sum(len(c.unexpected) for c in cells)
    not_run = sum(1 for c in cells if c.not_run)
    faults = sum(c.harness_faults for c in cells)
    problems = unexpected or any(not c.ok for c in cells if not c.interrupted)
    word = "INTERRUPTED" if interrupted else ("FAIL" if problems or not cells else "PASS")
    parts = [f"{unexpected} unexpected",
             f"{found}/{len(bugs)} declared bugs found",
             f"{quiet}/{len(clean_ran)} clean configurations clean"]
    if not_run:
        parts.append(f"{not_run} not run")
    if faults:
        parts.append(f"{faults} harness faults")
    return f"{word}: " + "; ".join(parts)


def run_report(cells: list[CellResult], elapsed: float, interrupted: bool, out_dir: str,
               signal_name: str | None = None) -> str:
    """The final screen of ``run`` / ``matrix``: verdict, counts, one line per declared bug,
    unexpected findings, what did not run; at most ``WIDTH`` columns a line."""
    total = Counts()
    for c in cells:
        total.merge(c.counts)
    lines = fit(verdict(cells, interrupted)) + fit(counts_line(total, elapsed))
    bug_rows = _bug_rows(cells, out_dir)
    if bug_rows:
        lines += fit(f"Declared bugs (minimal cases in {os.path.join(out_dir, '<configuration>')}/):")
        lines += _table_lines(bug_rows, ("configuration", "commit", "invariant", "after", "minimal case"))
    unexpected = [(c, c.findings[inv]) for c in cells for inv in c.unexpected]
    if unexpected:
        lines.append("Unexpected findings:")
        for c, f in sorted(unexpected, key=lambda cf: cf[1].seconds):
            lines += fit(f"  {c.impl}  {f.invariant}  {f.seconds:.2f}s  {_rel(f.case_path, out_dir)}")
            lines += fit(f"    {f.message}")
    other = [(c, f) for c in cells for f in c.findings.values()
             if f.known and f.invariant not in {i for invs in c.target_bugs.values() for i in invs}]
    origin_fails = [(c, f) for c in cells for f in c.findings.values() if f.origin_ok is False and not f.known]
    for c, f in origin_fails:
        lines += fit(f"ORIGIN-FAILS {c.impl} {f.invariant}: the case does not pass on {f.origin} either "
                     f"({f.origin_status})")
    if other:
        lines += fit("Inherited known bugs also seen: " + ", ".join(f"{c.impl} {f.invariant}" for c, f in other))
    for c in cells:
        if c.error:
            lines += fit(f"ERROR on {c.impl}: {c.error}")
    not_run = [c.impl for c in cells if c.not_run]
    if not_run:
        lines += fit("Not run (interrupted before they started): " + ", ".join(not_run))
    lines += fit(f"Full matrix: {os.path.join(out_dir, 'matrix.md')} (legend inside; also matrix.json)")
    if interrupted:
        lines.append(_interrupted_note(signal_name))
    return "\n".join(lines)


def _interrupted_note(signal_name: str | None) -> str:
    by = f" by {signal_name}" if signal_name else ""
    return f"Interrupted{by}: the report covers the work done until then."


# -- matrix.md --------------------------------------------------------------------------------------------

LEGEND = """\
Legend (docs/cli.md, "Reading the report"):

- result `ok`: every declared bug found, nothing else reported; `MISSED`: a declared bug not found
  in the time given; `UNEXPECTED`: a violation the configuration does not declare; `ORIGIN-FAILS`:
  a minimal case that does not pass on the configuration it derives from either; `ERROR`: the
  search itself failed; `interrupted`: stopped before every declared bug was found; `not run`:
  stopped before the configuration started.
- cell `found 0.42s`: a declared bug's invariant, first violated after 0.42 s; `declared`: an
  invariant of a declared bug found through another of its invariants; `missed`: an invariant of
  a declared bug not found; `known 0.42s`: a known bug inherited from the configuration it derives
  from (not this configuration's target); `NEW 0.42s`: an undeclared violation; `not run`: the
  configuration never ran; empty: nothing declared, nothing found.
"""


def matrix_md(cells: list[CellResult], out_dir: str | None = None) -> str:
    """The configuration x invariant matrix as markdown with its legend, then the case paths."""
    invs: list[str] = sorted({i for c in cells for invs in c.target_bugs.values() for i in invs}
                             | {i for c in cells for i in c.findings})
    head = ["configuration", "expect", "result", *invs]
    lines = ["# sledfuzz matrix", "", LEGEND, "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        declared = {i for invs in c.target_bugs.values() for i in invs}
        row = [f"`{c.impl}`", c.expect, c.status]
        for inv in invs:
            f = c.findings.get(inv)
            if c.not_run:
                row.append("not run" if inv in declared else "")
            elif f is not None:
                mark = ("found" if inv in declared else "known") if f.known else "NEW"
                row.append(f"{mark} {f.seconds:.2f}s")
            elif inv in declared:
                row.append("declared" if _bug_found_via_other(c, inv) else "missed")
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    cases = [(c, f) for c in cells for f in sorted(c.findings.values(), key=lambda f: f.seconds)]
    if cases:
        lines += ["", "Cases:"]
        for c, f in cases:
            if not f.checked:
                origin = " (not minimised; origin check not run)"
            elif f.origin:
                origin = f" (on {f.origin}: {f.origin_status or '?'})"
            else:
                origin = ""
            path = _rel(f.case_path, out_dir) if out_dir else f.case_path or "(not written)"
            lines.append(f"- `{c.impl}` {f.invariant} after {f.seconds:.2f}s: {path}{origin}")
    return "\n".join(lines) + "\n"


def _bug_found_via_other(c: CellResult, inv: str) -> bool:
    """True when the bug declaring ``inv`` was found through another of its invariants."""
    return any(inv in invs and any(i in c.findings for i in invs) for invs in c.target_bugs.values())


# -- fuzz / exhaust ------------------------------------------------------------------------------------------


def fuzz_report(cell: CellResult | None, elapsed: float, interrupted: bool = False,
                signal_name: str | None = None) -> str:
    if cell is None:
        return f"{elapsed:.1f} s: nothing ran" + (" (interrupted)" if interrupted else "")
    lines = fit(f"{cell.impl}: " + counts_line(cell.counts, elapsed))
    if not cell.findings and not cell.error:
        lines.append("no violations found" + (" before the interrupt" if interrupted else ""))
    elif not cell.findings:
        lines.append("no violations found before the error (the search did not finish)")
    for f in sorted(cell.findings.values(), key=lambda f: f.seconds):
        tag = "known bug" if f.known else "NEW"
        lines += fit(f"FOUND {f.invariant} ({tag}) after {f.seconds:.2f}s: {f.message}")
        if f.checked:
            origin = f"; on {f.origin}: {f.origin_status}" if f.origin else ""
            lines += fit(f"      minimal case: {f.case_path}{origin}")
        else:
            lines += fit(f"      raw case: {f.case_path or '(not written)'} (interrupted: minimisation and "
                         "origin check not run)")
    if cell.error:
        lines += fit(f"error: {cell.error}")
    if interrupted:
        lines.append(_interrupted_note(signal_name))
    return "\n".join(lines)


def exhaust_report(res: ExhaustResult, signal_name: str | None = None) -> str:
    done = f"{grouped(res.shapes_done)} of {grouped(res.shapes)} shapes" if res.shapes_done < res.shapes \
        else f"{grouped(res.shapes)} shapes"
    lines = [f"{res.impl}: {done} judged; {len(res.violating)} shapes violate"]
    lines += fit(counts_line(res.counts, res.seconds))
    for shape, invs, path, known in res.violating[:200]:
        lines.append(f"  {'known' if known else 'NEW  '} {','.join(sorted(invs))}: {shape} -> {path}")
    if len(res.violating) > 200:
        lines.append(f"  ... and {len(res.violating) - 200} more (see {res.out_dir})")
    for err in res.errors:
        lines += fit(f"error: {err}")
    if res.interrupted:
        lines.append(_interrupted_note(signal_name) + f" {grouped(res.shapes - res.shapes_done)} shapes not run.")
    return "\n".join(lines)
