#!/bin/bash
# Run every test suite of `make test` and end with one line
# "N passed, N failed" (unit tests + fuzz-corpus replays + integration tests
# + the dashboard's browser test).
# Exit status is non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=build
passed=0
failed=0

echo "== unit tests (ASan/UBSan) =="
for t in "$BUILD"/san/test_*; do
	[ -x "$t" ] || continue
	out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1)
	rc=$?
	echo "$out" | grep -E '^(not ok|# )' || true
	p=$(echo "$out" | grep -cE '^ok ')
	f=$(echo "$out" | grep -cE '^not ok ')
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "$out" | tail -20
		f=1 # crashed (sanitizer report, abort) outside a counted test
	fi
	echo "$(basename "$t"): $p passed, $f failed"
	passed=$((passed + p)); failed=$((failed + f))
done

echo "== fuzz corpus replay (ASan/UBSan) =="
for r in "$BUILD"/san/replay_*; do
	[ -x "$r" ] || continue
	name=${r##*/replay_}
	if "$r" "fuzz/corpus/$name" tests/vectors; then
		passed=$((passed + 1)); echo "replay_$name: ok"
	else
		failed=$((failed + 1)); echo "replay_$name: FAILED"
	fi
done

# "PASSED FAILED" of a pytest junit file (skipped tests count as neither)
junit_counts() {
	"$PYTHON" - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == "testsuite" else list(r)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PY
}

# pytest_suite NAME JUNIT BOLLARD_BIN [PYTEST ARGS...]: run pytest in
# tests/integ against that binary and add its counts; a run that produced no
# junit file, or failed without a counted failure, counts as one failure.
pytest_suite() {
	local name=$1 junit=$2 bin=$3
	shift 3
	rm -f "$junit"
	(cd tests/integ && BOLLARD_BIN="$bin" "$PYTHON" -m pytest -q -p no:cacheprovider \
		--junitxml="$junit" "$@")
	local rc=$?
	if [ -f "$junit" ]; then
		read -r p f < <(junit_counts "$junit")
		passed=$((passed + p)); failed=$((failed + f))
		if [ "$rc" != 0 ] && [ "$f" = 0 ]; then failed=$((failed + 1)); fi
	else
		echo "$name did not run (pytest exit $rc)"
		failed=$((failed + 1))
	fi
}

echo "== integration tests =="
# shellcheck disable=SC2086
pytest_suite "integration tests" "$PWD/$BUILD/integ-junit.xml" "${BOLLARD_BIN:-$PWD/$BUILD/san/bollard}" \
	${PYTEST_ARGS:-}

echo "== ThreadSanitizer: the thread-sharing integration tests =="
# Reload, add/del server, tables, metrics and the state file are where the
# control thread and the workers share memory; `make tsan` runs the rest.
pytest_suite "ThreadSanitizer tests" "$PWD/$BUILD/tsan-junit.xml" "$PWD/$BUILD/tsan/bollard" \
	test_reload.py test_add_del_server.py test_persist_tables.py test_metrics_strict.py \
	test_state_file.py test_lifecycle_api.py test_failover.py test_key_rotation.py

echo "== module layers (make layers) =="
# no module calls one of a higher layer (doc/architecture.md, "Layers")
if "$PYTHON" scripts/layers.py "$BUILD/obj"; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); echo "layers: FAILED"
fi

echo "== browser test (headless Chromium) =="
# one suite, counted as one test; SKIP_BROWSER=1 leaves it out (and says so)
if [ -n "${SKIP_BROWSER:-}" ]; then
	echo "browser test: skipped (SKIP_BROWSER set)"
elif scripts/browser-test.sh; then
	passed=$((passed + 1)); echo "browser test: ok"
else
	failed=$((failed + 1)); echo "browser test: FAILED"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
