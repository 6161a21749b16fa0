"""The four reports of a nightly run, all rendered from the one summary dictionary.

``summary.json`` is that dictionary; ``summary.md`` is the morning read (new findings first with
an ``explain`` excerpt and the command that reproduces each, then the declared bugs, then what
ran); ``junit.xml`` has one test case per implementation x invariant for CI dashboards;
``progress.png`` plots cases per second and cumulative distinct findings per implementation.
Rendering is pure (dict in, text or PNG out), so a report can be rebuilt from ``summary.json``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

from sledfuzz.fuzz.corpus import atomic_write_text

PLOT_PIXELS = (1200, 800)  # width, height of progress.png
PLOT_DPI = 100
REPORT_FILES = ("summary.json", "summary.md", "junit.xml", "progress.png")
EXPLAIN_LINES = 14
RATE_WINDOW = 5.0  # seconds over which the plotted rate is measured


def write_reports(summary: dict[str, Any], out: Path) -> list[Path]:
    """Write the four reports (each atomically); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in REPORT_FILES]
    atomic_write_text(paths[0], json.dumps(summary, indent=2, sort_keys=False) + "\n")
    atomic_write_text(paths[1], render_markdown(summary))
    atomic_write_text(paths[2], render_junit(summary))
    tmp = out / ".progress.png.tmp"
    render_plot(summary, tmp)
    tmp.replace(paths[3])
    return paths


# -- summary.md ---------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(s: dict[str, Any]) -> str:
    findings = s.get("findings", [])
    new = [f for f in findings if f["status"] == "new"]
    seen = [f for f in findings if f["status"] == "seen"]
    title = f"# sledfuzz nightly, {s.get('started', '')}"
    if s.get("interrupted"):
        title += " (INTERRUPTED: partial results)"
    out = [title, "", f"**{verdict_line(s)}** Exit code {s.get('exit_code')}.", ""]
    if s.get("error"):
        out += [f"**The job could not run:** {s['error']}", ""]
    out += ["## New findings", ""]
    if not new:
        out += ["None.", ""]
    for f in new:
        out += [f"### {f['impl']} · {f['invariant']} · {f['signature']}", "",
                f"{f.get('message', '')}", "",
                f"Found by {f.get('source', '?')} after {f.get('seconds', 0):.1f} s; minimal case `{f.get('case', '')}`.",
                "", "Reproduce:", "", "```sh", f.get("reproduce", ""), "```", ""]
        if f.get("explain"):
            out += ["```", *f["explain"].splitlines()[:EXPLAIN_LINES], "```", ""]
    if seen:
        out += ["## Still reproducing (seen on earlier nights or in the corpus)", "",
                "| implementation | invariant | signature | case |", "|---|---|---|---|"]
        out += [f"| {_cell(f['impl'])} | {f['invariant']} | {f['signature']} | `{_cell(f.get('case', ''))}` |" for f in seen]
        out.append("")
    out += ["## Declared bugs", ""]
    bugs = s.get("declared_bugs", [])
    if bugs:
        out += ["| configuration | commit | invariants | found | after | minimal case |", "|---|---|---|---|---|---|"]
        for b in bugs:
            found = "yes" if b.get("found") else "**NO**"
            after = f"{b['seconds']:.1f} s" if b.get("seconds") is not None else ""
            out.append(f"| {_cell(b['impl'])} | {b['commit']} | {', '.join(b['invariants'])} | {found} | {after} | "
                       f"`{_cell(b.get('case') or '')}` |")
    else:
        out.append("No configuration of this run declares a bug.")
    out += ["", "## What ran", ""]
    out += _what_ran(s)
    return "\n".join(out).rstrip() + "\n"


def verdict_line(s: dict[str, Any]) -> str:
    findings = s.get("findings", [])
    new = sum(1 for f in findings if f["status"] == "new")
    missed = sum(1 for b in s.get("declared_bugs", []) if not b.get("found"))
    parts = [f"{new} new finding{'s' if new != 1 else ''}" if new else "No new finding."]
    if new:
        parts[0] += "."
    if missed:
        parts.append(f"{missed} declared bug{'s' if missed != 1 else ''} not found.")
    changed = len(s.get("phases", {}).get("replay", {}).get("changed", []))
    if changed:
        parts.append(f"{changed} corpus verdict{'s' if changed != 1 else ''} changed.")
    failed = len(s.get("phases", {}).get("properties", {}).get("failed", []))
    if failed:
        parts.append(f"{failed} propert{'ies' if failed != 1 else 'y'} failed.")
    return " ".join(parts)


def _what_ran(s: dict[str, Any]) -> list[str]:
    v = s.get("versions", {})
    out = [f"- time: {s.get('elapsed_seconds', 0):.0f} s of {s.get('time_budget_seconds', 0):.0f} s; jobs "
           f"{s.get('jobs')}; shard {s.get('shard')}; seed {s.get('seed')}; database {s.get('database')}",
           f"- versions: sledfuzz {v.get('sledfuzz')}, unicorn {v.get('unicorn')}, hypothesis {v.get('hypothesis')}"
           + "".join(f"; {k}: {t}" for k, t in v.get("kernel_trees", {}).items())]
    ph = s.get("phases", {})
    for name in ("replay", "shared_db", "properties", "search", "atheris"):
        if name in ph:
            out.append(f"- {name}: {ph[name].get('line', '')}")
    out += ["", "| implementation | engine | cases | cases/s | judged | failing | refused | invalid |",
            "|---|---|---|---|---|---|---|---|"]
    for impl, engines in s.get("cases", {}).items():
        for engine, c in engines.items():
            out.append(f"| {_cell(impl)} | {engine} | {c['cases']} | {c['rate']:.0f} | {c['judged']} | {c['failed']} | "
                       f"{c['refused']} | {c['invalid']} |")
    deaths = s.get("deaths", [])
    if deaths:
        out += ["", "Workers that died (restarted when time was left):", ""]
        out += [f"- {d['impl']} ({d['engine']}), attempt {d['attempt']}: exit code {d['exitcode']}; last case "
                f"`{d.get('last_case') or 'not recorded'}`{'; restarted' if d.get('restarted') else ''}" for d in deaths]
    if s.get("not_run"):
        out += ["", f"Not run (no time left): {', '.join(s['not_run'])}"]
    return out


# -- junit.xml ----------------------------------------------------------------------------------


def render_junit(s: dict[str, Any]) -> str:
    """One testcase per configuration x invariant: failed for an undeclared finding or a missed bug."""
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in s.get("findings", []):
        if f["status"] in ("new", "seen"):
            failures[(f["impl"], f["invariant"])].append(
                f"{f['status']} finding {f['signature']}: {f.get('message', '')} (case {f.get('case', '')})")
    for b in s.get("declared_bugs", []):
        if not b.get("found"):
            for inv in b["invariants"]:
                failures[(b["impl"], inv)].append(f"declared bug {b['commit']} not found")
    ran = {impl: sum(c["cases"] for c in engines.values()) for impl, engines in s.get("cases", {}).items()}
    suites = ET.Element("testsuites", name="sledfuzz nightly")
    suite = ET.SubElement(suites, "testsuite", name="sledfuzz nightly", timestamp=str(s.get("started", "")),
                          time=f"{s.get('elapsed_seconds', 0):.1f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="interrupted", value=str(bool(s.get("interrupted"))).lower())
    ET.SubElement(props, "property", name="exit_code", value=str(s.get("exit_code")))
    tests = fails = skipped = 0
    for cfg in s.get("configurations", []):
        impl = cfg["name"]
        for inv in s.get("invariants", []):
            tests += 1
            tc = ET.SubElement(suite, "testcase", classname=impl, name=inv, time="0")
            if (impl, inv) in failures:
                fails += 1
                msgs = failures[(impl, inv)]
                fe = ET.SubElement(tc, "failure", message=msgs[0][:500], type="finding")
                fe.text = "\n".join(msgs)
            elif not ran.get(impl):
                skipped += 1
                ET.SubElement(tc, "skipped", message="no case ran on this configuration")
    suite.set("tests", str(tests))
    suite.set("failures", str(fails))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# -- progress.png -------------------------------------------------------------------------------


def series(s: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per implementation: sample times, cases per second over the last RATE_WINDOW seconds, and
    cumulative distinct findings."""
    samples: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for p in sorted(s.get("timeline", []), key=lambda p: p["t"]):
        samples[p["impl"]].append((float(p["t"]), int(p["cases"]), int(p["findings"])))
    out: dict[str, dict[str, list[float]]] = {}
    for impl, pts in samples.items():
        d: dict[str, list[float]] = {"t": [], "rate": [], "findings": []}
        j = 0
        for t, cases, found in pts:
            while j + 1 < len(pts) and pts[j + 1][0] <= t - RATE_WINDOW:
                j += 1
            t0, c0, _ = pts[j]
            d["t"].append(t)
            d["rate"].append(max(0.0, (cases - c0) / (t - t0)) if t > t0 else 0.0)
            d["findings"].append(found)
        out[impl] = d
    return out


def render_plot(s: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = PLOT_PIXELS
    fig, (ax_rate, ax_found) = plt.subplots(2, 1, figsize=(w / PLOT_DPI, h / PLOT_DPI), dpi=PLOT_DPI, sharex=True)
    data = series(s)
    last = max([float(s.get("elapsed_seconds", 0.0))] + [t for d in data.values() for t in d["t"]])
    for impl, d in sorted(data.items()):
        ax_rate.plot(d["t"], d["rate"], label=impl, linewidth=1.2)
        # a count stays what it was once its configuration stops searching: drawn to the end of the run
        ax_found.step([*d["t"], last], [*d["findings"], d["findings"][-1]], where="post", label=impl, linewidth=1.2)
    title = f"sledfuzz nightly {s.get('started', '')}" + (" (interrupted)" if s.get("interrupted") else "")
    ax_rate.set_title(title)
    ax_rate.set_ylabel("cases per second")
    ax_found.set_ylabel("distinct findings (cumulative)")
    ax_found.set_xlabel("seconds since start")
    from matplotlib.ticker import MaxNLocator

    ax_found.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_rate, ax_found):
        ax.grid(True, alpha=0.3)
    if data:
        fig.legend(*ax_rate.get_legend_handles_labels(), loc="lower center", fontsize="small", ncol=4, frameon=False)
        fig.subplots_adjust(bottom=0.16)
    else:
        ax_rate.text(0.5, 0.5, "no search ran", ha="center", va="center", transform=ax_rate.transAxes)
    fig.savefig(path, format="png", dpi=PLOT_DPI)
    plt.close(fig)
