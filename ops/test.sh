#!/usr/bin/env bash
# Sets up from nothing and runs the whole suite: lint, types, the import layers, then pytest
# (unit and integration, against a real local Kafka, Apicurio, SQLite and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/setup.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy services topics schemas consumers ops
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"; .venv/bin/pytest -q -ra --durations=30 "$@"
