"""The review's reports: plain text to paste into a mailing-list reply (under 80 columns), JSON
for tools, markdown for a web review. Pure functions of a ``ReviewResult``."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from sledfuzz.fuzz.review import Regression, ReviewResult
from sledfuzz.model.case import Case

WIDTH = 79
DETAILED = 3  # regressions shown in full in the text report; the rest one line each


def ordered(res: ReviewResult) -> list[Regression]:
    """Regressions, the smallest minimal case first (the clearest witness leads the reply)."""
    from sledfuzz.fuzz.minimize import size

    return sorted(res.regressions.values(), key=lambda r: (size(r.minimal or r.case), r.invariant))


def _clip(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."

__all__ = ["describe_case", "render_json", "render_md", "render_text"]


def describe_case(case: Case) -> str:
    fn = case.function
    links = ", ".join(f"{lk.kind}(r0={lk.r0:#x})" if lk.kind == "fmod_ret" else lk.kind for lk in case.links) or "none"
    flags = "derived" if case.flags is None else f"raw {case.flags:#x}"
    return (f"{case.target}, sled {case.sled}, {len(fn.args)} args ({fn.nr_slots} slots), links {links}, "
            f"flags {flags}{', teardown' if case.teardown else ''}; func {case.layout.func:#x}, "
            f"image {case.layout.image:#x}")


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first if first is not None else indent,
                         subsequent_indent=indent, break_on_hyphens=False, break_long_words=True) or [first or indent]


def _verdict(res: ReviewResult) -> str:
    n = len(res.regressions)
    if res.interrupted:
        head = "INTERRUPTED: the review did not finish; what ran is below."
    elif n:
        head = f"REGRESSION: {n} invariant{'s' if n != 1 else ''} violated only after the series."
    else:
        head = "No regression: no invariant is violated after the series that held before."
    return head




def render_text(res: ReviewResult, *, reproduce: dict[str, str]) -> str:
    """The reply-ready report. ``reproduce`` maps invariant -> the exact command that shows it."""
    out: list[str] = []
    plural = "es" if len(res.patches) != 1 else ""
    out += _wrap(_verdict(res))
    out += _wrap(f"sledfuzz review of {len(res.patches)} patch{plural} on linux {res.version} ({res.tree})")
    out += _wrap(f"{res.cases:,} cases judged on both trees in {res.seconds:.1f} s; "
                 f"{len(res.fixes)} fixed; behaviour changed without a violation in "
                 f"{sum(res.changed.values()):,} case(s).")
    regs = ordered(res)
    for i, reg in enumerate(regs[:DETAILED], 1):
        out.append("")
        out += _wrap(reg.message, "   ", f"{i}. ")
        small = reg.minimal or reg.case
        out += _wrap(describe_case(small), "   ", "   case: ")
        if reg.kinds:
            out += _wrap(", ".join(reg.kinds), "   ", "   differs in: ")
        if reg.patches:
            out += _wrap(", ".join(p.rsplit("/", 1)[-1] for p in reg.patches), "   ", "   touched by: ")
        cmd = reproduce.get(reg.invariant)
        if cmd:
            out += _wrap(cmd, "     ", "   reproduce: ")
    if len(regs) > DETAILED:
        out.append("")
        out += _wrap(f"Also violated only after the series ({len(regs) - DETAILED} more; each minimal case is "
                     f"in review.md and its directory):")
        for reg in regs[DETAILED:]:
            out.append(_clip(f"  - {reg.message}"))
    if res.fixes:
        out.append("")
        out += _wrap("Fixed by the series (violated before, not after): " + ", ".join(res.fixes))
    if res.changed:
        out.append("")
        out.append("Behaviour that changed without a violation:")
        for kind, n in sorted(res.changed.items(), key=lambda kv: -kv[1]):
            out += _wrap(f"{kind}: {n} case(s), e.g. {res.examples.get(kind, '')}", "    ", "  - ")
    if res.notes:
        out.append("")
        for line in res.notes:
            out += _wrap(line, "    ", "  - ")
    out.append("")
    out += _wrap("Reports: review.txt, review.md (with explain excerpts), review.json.")
    return "\n".join(out) + "\n"


def _reg_json(reg: Regression, reproduce: str | None) -> dict[str, Any]:
    small = reg.minimal or reg.case
    return {
        "invariant": reg.invariant,
        "message": reg.message,
        "case": small.to_dict(),
        "differs_in": list(reg.kinds),
        "patches": list(reg.patches),
        "saved": reg.path,
        "reproduce": reproduce,
        "explain": reg.explain,
    }


def render_json(res: ReviewResult, *, reproduce: dict[str, str]) -> str:
    data = {
        "schema": 1,
        "tree": res.tree,
        "version": res.version,
        "patches": list(res.patches),
        "cases": res.cases,
        "seconds": round(res.seconds, 3),
        "interrupted": res.interrupted,
        "notes": list(res.notes),
        "regressions": [_reg_json(r, reproduce.get(r.invariant)) for r in ordered(res)],
        "fixes": [_reg_json(r, None) for r in res.fixes.values()],
        "behaviour_changes": [{"kind": k, "cases": n, "example": res.examples.get(k, "")}
                              for k, n in sorted(res.changed.items())],
        "exit": res.exit_code,
    }
    return json.dumps(data, indent=2) + "\n"


def render_md(res: ReviewResult, *, reproduce: dict[str, str]) -> str:
    out = [f"# sledfuzz review: linux {res.version} + {len(res.patches)} patch(es)", "", f"**{_verdict(res)}**", "",
           f"{res.cases:,} cases judged on both trees in {res.seconds:.1f} s.", ""]
    if res.regressions:
        out += ["## Regressions", ""]
        for reg in ordered(res):
            small = reg.minimal or reg.case
            out += [f"### {reg.invariant}", "", f"`{reg.message}`", "", f"- case: {describe_case(small)}",
                    f"- differs in: {', '.join(reg.kinds) or '-'}",
                    f"- touched by: {', '.join(reg.patches) or '-'}", f"- saved: `{reg.path}`"]
            if reproduce.get(reg.invariant):
                out.append(f"- reproduce: `{reproduce[reg.invariant]}`")
            if reg.explain:
                out += ["", "```", reg.explain.rstrip(), "```"]
            out.append("")
    out += ["## Fixed by the series", ""]
    out += [f"- {r.invariant}: `{r.message}`" for r in res.fixes.values()] or ["none"]
    out += ["", "## Behaviour changes without a violation", ""]
    if res.changed:
        out += ["| kind | cases | example |", "|---|---|---|"]
        out += [f"| {k} | {n} | {res.examples.get(k, '')} |" for k, n in sorted(res.changed.items())]
    else:
        out.append("none")
    return "\n".join(out) + "\n"
