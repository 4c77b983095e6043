#!/usr/bin/env bash
# Browser tests of the dashboards: builds the server, installs playwright-core
# from the lock file (never a browser: Debian's /usr/bin/chromium is used) and
# runs the node tests one file at a time. Each test starts its own server.
#   e2e/run.sh                 all tests
#   e2e/run.sh tests/tabs.test.js
# Under CI=true a missing chromium or nginx fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ "${CI:-}" = "true" ]; then
  for tool in /usr/bin/chromium /usr/sbin/nginx; do
    [ -x "$tool" ] || { echo "e2e: $tool is missing (apt-get install -y chromium nginx-light)" >&2; exit 1; }
  done
fi
bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
(cd .. && go build -o "$bin_dir/clinicpulse" ./cmd/clinicpulse)
export CLINICPULSE_BIN="$bin_dir/clinicpulse"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p artifacts
if [ $# -eq 0 ]; then set -- tests/; fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
