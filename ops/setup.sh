#!/usr/bin/env bash
# Installs what Tongcheng needs on a fresh Debian machine: Java 17, Maven, PostgreSQL, Prometheus
# (with promtool), Chromium with a CJK font, and Node.js from Debian's packages when missing, then the
# Python venv in .venv and the AsyncAPI parser (npm, pinned by ops/asyncapi/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)  # the status page's browser test
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)  # Chinese glyphs for the status page
command -v node >/dev/null || need+=(nodejs)  # the AsyncAPI parser's test
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${need[@]}"
  # the prometheus package starts a system service we do not use
  $sudo_cmd systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  $python -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
# the official AsyncAPI parser, for the test that validates `tongcheng docs asyncapi`; exact versions
# from the lock file, no install scripts
if ! (cd ops/asyncapi && npm ls --silent >/dev/null 2>&1); then
  echo "setup: installing the AsyncAPI parser (npm ci in ops/asyncapi)"
  (cd ops/asyncapi && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
echo "setup: done ($(.venv/bin/tongcheng --help >/dev/null && echo 'tongcheng command ready'))"
