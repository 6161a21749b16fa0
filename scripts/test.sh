#!/usr/bin/env bash
# The whole test suite, from a fresh machine: setup, lint, types, tests (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" && .venv/bin/ruff check model emu fuzz sledfuzz tests bench
echo "== mypy --strict" && .venv/bin/mypy --strict sledfuzz
# Architecture gates (config in pyproject.toml): the layers model -> emu -> fuzz, every import
# counted (lazy ones too); no block of logic copied between modules.
echo "== import layers" && .venv/bin/lint-imports
echo "== duplicate code" && .venv/bin/pylint --rcfile=pyproject.toml --disable=all --enable=duplicate-code \
  --score=n model emu fuzz bench
echo "== pytest"
exec .venv/bin/python -m pytest -q -n 2 "$@"
