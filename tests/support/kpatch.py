"""Patches against a kernel tree, written the way a developer writes them: an edit to the tree's
own file, turned into a ``git format-patch``-style file at test time (no kernel source is kept in
this repository: the context lines come from the tree read at run time)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from sledfuzz.fuzz.review_tree import prepare

DEBIAN_612 = "/usr/src/linux-source-6.12.tar.xz"


def tree_file(rel: str, tree: str = DEBIAN_612) -> str:
    return (prepare(tree, []).before / rel).read_text()


def make_patch(out: Path, rel: str, edits: list[tuple[str, str]], subject: str, *, base: str | None = None,
               tree: str = DEBIAN_612) -> Path:
    """A patch of ``rel`` applying ``edits`` (each old text must occur exactly once) to ``base``
    (default: the tree's file)."""
    src = base if base is not None else tree_file(rel, tree)
    new = src
    for old, repl in edits:
        assert new.count(old) == 1, f"{rel}: {old!r} occurs {new.count(old)} times"
        new = new.replace(old, repl)
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d, "a", rel), Path(d, "b", rel)
        a.parent.mkdir(parents=True)
        b.parent.mkdir(parents=True)
        a.write_text(src)
        b.write_text(new)
        diff = subprocess.run(["git", "diff", "--no-index", "--no-prefix", f"a/{rel}", f"b/{rel}"], cwd=d,
                              capture_output=True, text=True, check=False).stdout
    assert diff, "the edit changed nothing"
    out.write_text(f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                   f"From: A Developer <dev@example.org>\nSubject: [PATCH] {subject}\n\n---\n{diff}-- \n2.39.5\n")
    return out


def reverse_patch(out: Path, patch: Path) -> Path:
    """The reverse of ``patch`` (what ``git revert`` of that commit would send)."""
    lines = []
    for line in patch.read_text().splitlines():
        hunk = re.match(r"^@@ -(\S+) \+(\S+) @@(.*)$", line)
        if hunk:
            lines.append(f"@@ -{hunk.group(2)} +{hunk.group(1)} @@{hunk.group(3)}")
        elif line.startswith("index "):
            old, new = line.split()[1].split("..")
            lines.append(f"index {new}..{old}" + "".join(" " + x for x in line.split()[2:]))
        elif line.startswith(("--- a/", "+++ b/")):
            lines.append(line)
        elif line.startswith("-") and line != "-- ":
            lines.append("+" + line[1:])
        elif line.startswith("+"):
            lines.append("-" + line[1:])
        elif line.startswith("Subject: [PATCH] "):
            lines.append('Subject: [PATCH] Revert "' + line.removeprefix("Subject: [PATCH] ") + '"')
        else:
            lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out
