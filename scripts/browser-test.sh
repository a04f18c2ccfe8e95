#!/bin/bash
# The dashboard's browser test (tests/browser/dashboard.test.mjs): installs
# Debian's chromium (and node/npm if there is no node at all), installs
# playwright-core from the lock file (it never downloads a browser: the test
# launches /usr/bin/chromium), and runs the test with node's test runner.
# Needs build/bollard and build/bollard-demo-app (make all). Exit status is
# the test's. Screenshots: build/dashboard.png, build/dashboard-phone.png.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh browser
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --prefix tests/browser --no-audit --no-fund --prefer-offline --loglevel=error
exec node --test tests/browser/dashboard.test.mjs
