"""What a person sees while a run goes: live progress on stderr.

The display is driven only by campaign events, so what it shows after an interrupt
(``partial``) is exactly what the workers reported before they stopped. Progress goes to
stderr: a live table when stderr is a terminal, a plain line every few seconds when it is not
(a log file, CI), nothing with ``--no-progress``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from sledfuzz.fuzz.campaign import CellResult, Counts, Event, Expect, Finding
from sledfuzz.fuzz.report import grouped

PROGRESS_EVERY = 5.0  # seconds between plain progress lines


class Ticker:
    """Plain progress lines on a stream, at most one per ``every`` seconds (the first at once)."""

    def __init__(self, enabled: bool, every: float = PROGRESS_EVERY, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.every = every
        self.stream = stream
        self.last: float | None = None

    def due(self) -> bool:
        return self.enabled and (self.last is None or time.monotonic() - self.last >= self.every)

    def emit(self, text: str) -> None:
        self.last = time.monotonic()
        print(f"sledfuzz: {text}", file=self.stream or sys.stderr, flush=True)

    def maybe(self, text: Callable[[], str]) -> None:
        if self.due():
            self.emit(text())


def progress_mode(enabled: bool) -> str:
    """"live" (rich, stderr is a terminal), "lines" (plain lines), or "off"."""
    if not enabled:
        return "off"
    return "live" if sys.stderr.isatty() else "lines"


class Display:
    """Progress on stderr fed by campaign events (see the module docstring); keeps partial results."""

    def __init__(self, configs: list[str], expects: dict[str, Expect], *, enabled: bool = True,
                 total_seconds: float | None = None, label: str = "run") -> None:
        self.configs = configs
        self.expects = expects
        self.mode = progress_mode(enabled)
        self.enabled = self.mode == "live"
        self.total = total_seconds
        self.label = label
        self.start = time.monotonic()
        self.counts: dict[str, dict[str, int]] = {}  # per configuration, summed over its cells
        self._cells: dict[tuple[str, int], dict[str, int]] = {}  # (configuration, seed) -> counts
        self.found: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in configs}
        self._live: Any = None
        self._ticker = Ticker(self.mode == "lines")

    def __enter__(self) -> Display:
        if self.mode == "live":
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
            self._cells[(impl, int(data.get("seed", 0)))] = {k: v for k, v in data.items() if k != "seed"}
            total: dict[str, int] = {}
            for (name, _), counts in self._cells.items():
                if name == impl:
                    for k, v in counts.items():
                        total[k] = total.get(k, 0) + v
            self.counts[impl] = total
        elif kind == "found":
            self.found.setdefault(impl, {})[data["invariant"]] = dict(data)
        elif kind == "minimized":
            self.found.setdefault(impl, {}).setdefault(data["invariant"], {}).update(
                {"min_path": data["path"], "origin_status": data.get("origin_status"), "checked": True})
        if self._live is not None:
            if kind != "tick":
                self._live.update(self._table())
        elif self.counts:
            self._ticker.maybe(self.line)

    def line(self) -> str:
        """One plain progress line: time, cases and rate, findings so far."""
        elapsed = time.monotonic() - self.start
        cases = sum(c.get("cases", 0) for c in self.counts.values())
        rate = cases / elapsed if elapsed > 0 else 0.0
        total = f" of {self.total:.0f} s" if self.total else ""
        findings = sum(len(f) for f in self.found.values())
        known_bad = [inv for n, fs in self.found.items() for inv, d in fs.items() if not d.get("known", True)]
        started = sum(1 for n in self.configs if n in self.counts)
        configs = f", {started}/{len(self.configs)} started" if len(self.configs) > 1 else ""
        return (f"{self.label}: {elapsed:.0f} s{total}, {grouped(cases)} cases ({grouped(round(rate))} cases/s), "
                f"{findings} findings ({len(known_bad)} unexpected){configs}")

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

    def partial(self, impl: str) -> CellResult:
        """What the events said about ``impl``: for cells that never returned (interrupted, or
        never started: then it says "not run")."""
        from sledfuzz.fuzz.campaign import cell_context

        ctx = cell_context(impl)
        res = ctx.new_result()
        res.interrupted = True
        if impl not in self.counts and not self.found.get(impl):
            return res
        res.seconds = time.monotonic() - self.start
        res.counts = Counts(**self.counts.get(impl, {}))
        known = ctx.impl.caps.known_invariants
        for inv, d in self.found.get(impl, {}).items():
            res.findings[inv] = Finding(impl, inv, str(d.get("message", inv)), float(d.get("seconds", 0.0)),
                                        str(d.get("path", "")), str(d.get("min_path") or d.get("path", "")),
                                        inv in known, res.origin, d.get("origin_status"),
                                        origin_required=inv not in ctx.origin_invariants,
                                        checked=bool(d.get("checked")))
        res.counts.failed = max(res.counts.failed, len(res.findings))
        return res


class StatusLine:
    """One status line refreshed in place (rich) on a terminal, plain lines otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.mode = progress_mode(enabled)
        self._ticker = Ticker(self.mode == "lines")
        self._live: Any = None
        self._text = ""

    def __enter__(self) -> StatusLine:
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)
            self._live = None

    def update(self, text: Callable[[], str]) -> None:
        if self._live is not None:
            self._live.update(f"sledfuzz: {text()}")
        else:
            self._ticker.maybe(text)
