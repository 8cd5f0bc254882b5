#!/usr/bin/env bash
# Every check CI runs: lint, format, types, then the test suite on both database and
# queue backends. Extra arguments go to pytest (e.g. ./dev test -k textback).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RINGBACK_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff" && ruff check src tests bench && ruff format --check src tests bench
echo "== mypy" && mypy
echo "== import contracts" && lint-imports --no-cache
bash scripts/services.sh
# The browser tests drive Debian's Chromium (Playwright's own downloads are not used).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium for the browser tests (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The deployment tests (tests/deploy) run deploy/Caddyfile under Debian's caddy.
if ! command -v caddy >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing caddy for the deployment tests (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends caddy; } >/dev/null 2>&1 ||
    echo "   caddy could not be installed: tests/deploy/test_caddy.py will fail"
fi

status=0
echo "== tests: SQLite database, embedded SQLite queue"
RINGBACK_TEST_DATABASE=sqlite RINGBACK_TEST_QUEUE=sqlite pytest -q "$@" || status=1
echo "== tests: PostgreSQL database, Redis queue"
RINGBACK_TEST_DATABASE=postgres RINGBACK_TEST_QUEUE=redis pytest -q "$@" || status=1
exit $status
