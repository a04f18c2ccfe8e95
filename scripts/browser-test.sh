#!/bin/bash
# The browser tests (tests/browser/dashboard.test.mjs, the dashboard;
# tests/browser/https.test.mjs, the demo over HTTPS): installs Debian's
# chromium (and node/npm if there is no node at all) and certutil, installs
# playwright-core from the lock file (it never downloads a browser: the tests
# launch /usr/bin/chromium), and runs the tests with node's test runner.
# Needs build/bollard and build/bollard-demo-app (make all). Exit status is
# the tests'. Screenshots: build/dashboard.png, build/dashboard-phone.png.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh browser
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --prefix tests/browser --no-audit --no-fund --prefer-offline --loglevel=error
exec node --test tests/browser/dashboard.test.mjs tests/browser/https.test.mjs
