"""Architecture gates that pytest checks (the import layers and duplicate code run in scripts/test.sh).

- Module size: no module of the package over 500 lines; one over 400 says why in its docstring,
  in a sentence with the words "over 400 lines" (e.g. "Over 400 lines because the table of the 40
  base instructions reads best in one place."). Until the splits of issue 10 are merged, this
  fails on main for the modules still too long; the message names each one.
- Packaging: the runtime dependencies of pyproject.toml are exactly the third-party packages the
  package's own modules import; everything else the modules import comes from an extra.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The folders of the import package (after the rename to ``sledfuzz`` the folders stay).
PACKAGE_DIRS = ("model", "emu", "fuzz")
FIRST_PARTY = frozenset(PACKAGE_DIRS) | {"sledfuzz", "__future__"}
MAX_LINES = 500
EXPLAIN_OVER = 400
WHY = re.compile(r"over 400 lines", re.IGNORECASE)


def _modules() -> Iterator[Path]:
    for folder in PACKAGE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def size_problems(paths: list[Path]) -> list[str]:
    """What is wrong with the sizes of ``paths`` (empty when nothing is)."""
    problems = []
    for path in paths:
        lines = _line_count(path)
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if lines > MAX_LINES:
            problems.append(f"{name}: {lines} lines > {MAX_LINES}: split it by responsibility")
        elif lines > EXPLAIN_OVER and not WHY.search(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""):
            problems.append(f"{name}: {lines} lines > {EXPLAIN_OVER} and its docstring has no sentence "
                            f"saying why it is over 400 lines")
    return problems


def test_no_module_over_500_lines_and_those_over_400_say_why() -> None:
    problems = size_problems(list(_modules()))
    assert not problems, "\n".join(problems)


def test_the_size_check_sees_long_modules(tmp_path: Path) -> None:
    long_silent = tmp_path / "long_silent.py"
    long_silent.write_text('"""A module."""\n' + "x = 1\n" * 450)
    long_why = tmp_path / "long_why.py"
    long_why.write_text('"""A module. Over 400 lines because its table reads best whole."""\n' + "x = 1\n" * 450)
    too_long = tmp_path / "too_long.py"
    too_long.write_text('"""Over 400 lines, but no reason makes 501 fine."""\n' + "x = 1\n" * 500)
    problems = size_problems([long_silent, long_why, too_long])
    assert [p.split(":")[0] for p in problems] == [str(long_silent), str(too_long)]


def third_party_imports() -> dict[str, set[str]]:
    """Top-level name of every third-party module the package imports -> the modules importing it
    (imports inside functions included: an optional extra is imported lazily)."""
    found: dict[str, set[str]] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in FIRST_PARTY and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_runtime_dependencies_are_what_the_package_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {_requirement_name(r) for r in project["dependencies"]}
    extras = {_requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    providers = importlib.metadata.packages_distributions()
    imported: dict[str, set[str]] = {}
    for module, where in third_party_imports().items():
        dists = providers.get(module)
        assert dists, f"{module} (imported by {sorted(where)}) is not installed: which distribution provides it?"
        for dist in dists:
            imported.setdefault(dist.lower().replace("_", "-"), set()).update(where)
    unused = runtime - set(imported)
    assert not unused, f"runtime dependencies no package module imports (move them to an extra): {sorted(unused)}"
    undeclared = {d: sorted(w) for d, w in imported.items() if d not in runtime | extras}
    assert not undeclared, f"imported but neither a dependency nor in an extra: {undeclared}"
