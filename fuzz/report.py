"""What a person sees: the live progress display, the matrix, the one-paragraph summaries.

The display is driven only by campaign events, so what it shows after Ctrl-C (``partial``) is
exactly what the workers reported before they were stopped.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from fuzz.campaign import CellResult, Counts, Event, Expect, Finding


class Display:
    """Live table on stderr (rich), fed by campaign events; also keeps the partial results."""

    def __init__(self, configs: list[str], expects: dict[str, Expect], *, enabled: bool = True,
                 total_seconds: float | None = None) -> None:
        self.configs = configs
        self.expects = expects
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total_seconds
        self.start = time.monotonic()
        self.counts: dict[str, dict[str, int]] = {}
        self.found: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in configs}
        self._live: Any = None

    def __enter__(self) -> Display:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(et, ev, tb)
            self._live = None

    def on_event(self, event: Event) -> None:
        kind, impl, data = event
        if kind == "progress":
            self.counts[impl] = data
        elif kind == "found":
            self.found.setdefault(impl, {})[data["invariant"]] = dict(data)
        elif kind == "minimized":
            self.found.setdefault(impl, {}).setdefault(data["invariant"], {}).update(
                {"min_path": data["path"], "origin_status": data.get("origin_status")})
        if self._live is not None:
            self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.start
        title = f"sledfuzz: {elapsed:5.1f} s" + (f" of {self.total:.0f} s" if self.total else "")
        t = Table(title=title, expand=False)
        for col in ("configuration", "expect", "cases", "judged", "refused", "unspec.", "found"):
            t.add_column(col)
        for n in self.configs:
            c = self.counts.get(n, {})
            found = ", ".join(f"{inv} {d.get('seconds', 0):.1f}s" for inv, d in self.found.get(n, {}).items())
            t.add_row(n, self.expects.get(n, "?"), str(c.get("cases", 0)), str(c.get("judged", 0)),
                      str(c.get("refused", 0)), str(c.get("unspecified", 0)), found or "-")
        return t

    def partial(self, impl: str) -> CellResult | None:
        """What the events said about ``impl`` (for cells that never returned: interrupted)."""
        if impl not in self.counts and not self.found.get(impl):
            return None
        from fuzz.campaign import cell_context

        ctx = cell_context(impl)
        res = ctx.new_result()
        res.seconds = time.monotonic() - self.start
        res.counts = Counts(**self.counts.get(impl, {}))
        res.interrupted = True
        known = ctx.impl.caps.known_invariants
        for inv, d in self.found.get(impl, {}).items():
            res.findings[inv] = Finding(impl, inv, inv, float(d.get("seconds", 0.0)), str(d.get("path", "")),
                                        str(d.get("min_path") or d.get("path", "")), inv in known, res.origin,
                                        d.get("origin_status"), origin_required=inv not in ctx.origin_invariants)
        return res


def matrix_md(cells: list[CellResult]) -> str:
    """The configuration x invariant matrix as a markdown table, then the minimal case paths."""
    invs: list[str] = sorted({i for c in cells for invs in c.target_bugs.values() for i in invs}
                             | {i for c in cells for i in c.findings})
    head = ["configuration", "expect", "result", *invs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        declared = {i for invs in c.target_bugs.values() for i in invs}
        row = [f"`{c.impl}`", c.expect, _result(c)]
        for inv in invs:
            f = c.findings.get(inv)
            if f is not None:
                mark = ("found" if inv in declared else "known") if f.known else "NEW"
                row.append(f"{mark} {f.seconds:.2f}s")
            elif inv in declared:
                row.append("declared" if _bug_found_via_other(c, inv) else "missed")
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Minimal cases:")
    any_case = False
    for c in cells:
        for f in sorted(c.findings.values(), key=lambda f: f.seconds):
            any_case = True
            origin = ""
            if f.origin:
                origin = f" (on {f.origin}: {f.origin_status or '?'})"
            lines.append(f"- `{c.impl}` {f.invariant} after {f.seconds:.2f}s: {f.case_path or '(not written)'}{origin}")
    if not any_case:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def _bug_found_via_other(c: CellResult, inv: str) -> bool:
    """True when the bug declaring ``inv`` was found through another of its invariants."""
    return any(inv in invs and any(i in c.findings for i in invs) for invs in c.target_bugs.values())


def _result(c: CellResult) -> str:
    if c.error:
        return "ERROR"
    if c.unexpected:
        return "UNEXPECTED"
    if any(f.origin_ok is False for f in c.findings.values()):
        return "ORIGIN-FAILS"
    missed = [b for b, f in c.bugs_found.items() if f is None]
    if missed:
        return "MISSED " + ",".join(b[:12] for b in missed)
    return "ok" + (" (interrupted)" if c.interrupted else "")


def summary(cells: list[CellResult], elapsed: float, interrupted: bool) -> str:
    total = Counts()
    for c in cells:
        total.merge(c.counts)
    bugs = [c for c in cells if c.expect == "fail"]
    clean = [c for c in cells if c.expect == "pass"]
    found = [c for c in bugs if all(f is not None for f in c.bugs_found.values())]
    noisy = [c for c in clean if c.findings]
    lines = [
        f"{elapsed:.1f} s, {total.cases} cases: {total.judged} judged ({total.failed} failing), {total.refused} refused, "
        f"{total.unspecified} unspecified, {total.invalid} invalid",
        f"configurations with known bugs: {len(found)}/{len(bugs)} found all their bugs; "
        f"clean configurations: {len(clean) - len(noisy)}/{len(clean)} reported nothing",
    ]
    for c in cells:
        if c.error:
            lines.append(f"error on {c.impl}: {c.error}")
        for inv in c.unexpected:
            lines.append(f"NEW on {c.impl}: {c.findings[inv].message} -> {c.findings[inv].case_path}")
        for f in c.findings.values():
            if f.origin_ok is False:
                lines.append(f"counterexample on {c.impl} does not pass on {f.origin} ({f.origin_status}): {f.case_path}")
    if interrupted:
        lines.append("interrupted: results cover the work done so far")
    return "\n".join(lines)


def fuzz_report(cell: Any, elapsed: float) -> str:
    if cell is None:
        return f"{elapsed:.1f} s: nothing ran"
    lines = [f"{cell.impl}: {elapsed:.1f} s, {cell.counts.cases} cases: {cell.counts.judged} judged "
             f"({cell.counts.failed} failing), {cell.counts.refused} refused, {cell.counts.unspecified} unspecified, "
             f"{cell.counts.invalid} invalid"]
    if not cell.findings:
        lines.append("no violations found")
    for f in sorted(cell.findings.values(), key=lambda f: f.seconds):
        tag = "known bug" if f.known else "NEW"
        origin = f"; on {f.origin}: {f.origin_status}" if f.origin else ""
        lines.append(f"FOUND {f.invariant} ({tag}) after {f.seconds:.2f}s: {f.message}")
        lines.append(f"      minimal case: {f.case_path}{origin}")
    if getattr(cell, "error", ""):
        lines.append(f"error: {cell.error}")
    return "\n".join(lines)


def exhaust_report(res: Any) -> str:
    c = res.counts
    lines = [f"{res.impl}: {res.shapes} shapes, {c.cases} cases in {res.seconds:.1f} s: {c.judged} judged, "
             f"{c.refused} refused, {c.unspecified} unspecified, {c.invalid} invalid; "
             f"{len(res.violating)} shapes violate"]
    for shape, invs, path, known in res.violating[:200]:
        lines.append(f"  {'known' if known else 'NEW  '} {','.join(sorted(invs))}: {shape} -> {path}")
    if len(res.violating) > 200:
        lines.append(f"  ... and {len(res.violating) - 200} more (see {res.out_dir})")
    return "\n".join(lines)
