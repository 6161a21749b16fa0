#!/usr/bin/env bash
# The main job on its embedded defaults: setup, then a time-boxed campaign over every shipped
# era and bug configuration (findings land in ./sledfuzz-out/ as they are found).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sledfuzz run "$@"
