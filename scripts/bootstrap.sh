#!/usr/bin/env bash
# Install what Pathwatch needs into .venv; with --test, also what the test suite needs:
# the test extras, Debian's chromium (for Playwright) and the Node OpenTelemetry SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-test}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras}"
  touch "$stamp"
fi

[ "$want_test" = 1 ] || exit 0

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: the browser tests need Debian's chromium; run: sudo apt-get install chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ -f tests/e2e/node/package.json ]; then
  if [ ! -d tests/e2e/node/node_modules ] || [ tests/e2e/node/package.json -nt tests/e2e/node/node_modules ]; then
    (cd tests/e2e/node && npm install --no-audit --no-fund --loglevel=error)
    touch tests/e2e/node/node_modules
  fi
fi
