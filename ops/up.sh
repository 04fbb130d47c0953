#!/usr/bin/env bash
# Sets up from nothing and runs `tongcheng up`: broker, registry, topics, schemas, processors, API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/setup.sh
exec .venv/bin/tongcheng up "$@"
