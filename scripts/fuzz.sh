#!/bin/bash
# Short libFuzzer runs of every fuzz/fuzz_<name>.c target.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60, per target)
#
# Each target is built with clang -fsanitize=fuzzer,address,undefined from
# fuzz/fuzz_<name>.c and src/<name>.c (plus the modules listed in
# FUZZ_DEPS_<name> below). Seeds: the committed fuzz/corpus/<name>/ and
# tests/vectors/ (read only); new inputs go to build/fuzz/corpus-<name>/,
# crashes to build/fuzz/crashes-<name>/. Exits 1 when any run found a
# crash (each is listed: turn it into a vector under tests/vectors/ and a
# seed under fuzz/corpus/<name>/ once fixed), 2 when a target fails to build.
set -u
cd "$(dirname "$0")/.."
SECS=${1:-60}
case "$SECS" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;; esac
CLANG=${CLANG:-clang}
OUT=build/fuzz
FLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# extra src modules per target (default: the module of the target's name)
FUZZ_DEPS_h1="h1"
FUZZ_DEPS_h2head="h2_head h1"
FUZZ_DEPS_smuggle="h1 http cookie route lb_hash"
FUZZ_DEPS_admin="global admin admin_sessions admin_server admin_pool server srvstate lb_hash lb lb_rr lb_leastconn json stats dashboard persist stick cookie seal log h1 h2_head ev cfg cfg_kw cidr cfg_hint cfg_read hll"
FUZZ_DEPS_state="state persist srvstate server lb_hash stick cookie seal log h1 cfg cfg_kw cidr cfg_hint cfg_read hll"

mkdir -p "$OUT"
status=0
for src in fuzz/fuzz_*.c; do
	[ -e "$src" ] || continue
	name=${src#fuzz/fuzz_}
	name=${name%.c}
	depsvar="FUZZ_DEPS_$name"
	deps=${!depsvar:-$name}
	objs=""
	for d in $deps; do
		[ -f "src/$d.c" ] && objs="$objs src/$d.c"
	done
	bin="$OUT/fuzz_$name"
	echo "== fuzz_$name: build"
	# shellcheck disable=SC2086
	if ! $CLANG $FLAGS -o "$bin" "$src" $objs -lsodium -lxxhash -pthread; then
		echo "fuzz_$name: BUILD FAILED"
		status=2
		continue
	fi
	work="$OUT/corpus-$name"
	crashes="$OUT/crashes-$name"
	mkdir -p "$work" "$crashes" "fuzz/corpus/$name"
	before=$(find "$crashes" -type f | wc -l)
	echo "== fuzz_$name: ${SECS}s"
	# timeout(1) bounds the run even if libFuzzer hangs in a slow input.
	timeout --kill-after=10 $((SECS + 60)) "$bin" \
		-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$crashes/" \
		"$work" "fuzz/corpus/$name" tests/vectors \
		>"$OUT/fuzz_$name.log" 2>&1
	rc=$?
	grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)' \
		"$OUT/fuzz_$name.log" || tail -5 "$OUT/fuzz_$name.log"
	after=$(find "$crashes" -type f | wc -l)
	if [ "$rc" != 0 ] || [ "$after" -gt "$before" ]; then
		echo "fuzz_$name: FAILED (exit $rc), new artifacts:"
		find "$crashes" -type f -newer "$OUT/fuzz_$name" -print
		grep -m1 -A15 -E 'ERROR: |BUG at|runtime error' "$OUT/fuzz_$name.log"
		[ "$status" = 0 ] && status=1
	else
		echo "fuzz_$name: ok"
	fi
done
exit $status
