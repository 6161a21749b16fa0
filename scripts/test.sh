#!/usr/bin/env bash
# The whole test suite, from a fresh machine: setup, lint, types, tests (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" && .venv/bin/ruff check model emu fuzz tests bench
echo "== mypy --strict" && .venv/bin/mypy --strict model emu fuzz
echo "== pytest"
exec .venv/bin/python -m pytest -q -n 2 "$@"
