#!/bin/bash
# scripts/demo.sh - what `make demo` runs (the build is done by make first).
#
# Starts three demo apps (app1 app2 app3 on 127.0.0.1:9001-9003) and
# `build/bollard -c examples/demo.conf` (frontend 127.0.0.1:8080, stats
# 127.0.0.1:8404), prints where to look, and runs until Ctrl-C/TERM. On any
# exit it stops exactly the processes it started, by PID, with one SIGTERM
# each: they run in sessions of their own (setsid), so the terminal's
# Ctrl-C reaches this script alone and not bollard too, for which a second
# signal would mean "close every connection now" instead of a graceful stop.
# If bollard is not built (or examples/demo.conf is missing) the apps run
# alone.
#
# HTTPS: scripts/demo-tls.sh makes (once) a local test CA and a
# certificate for localhost signed by it in DEMO_TLS_DIR; bollard gets the
# certificate as BOLLARD_TLS_CRT (examples/demo.conf's TLS bind, port 8443),
# and the script prints how to make curl or a browser trust the CA.
#
# Environment (for testing the script): BUILD (default build),
# DEMO_PORTS (default "9001 9002 9003"), DEMO_CONF (default
# examples/demo.conf), DEMO_FRONT (the frontend port DEMO_CONF binds,
# default 8080), DEMO_TLS_FRONT (its TLS port, default 8443; empty: none),
# DEMO_TLS_DIR (default demo-tls), DEMO_FOREGROUND=0 to start, print and
# exit (stopping everything) at once.
set -u
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DEMO_PORTS=${DEMO_PORTS:-"9001 9002 9003"}
DEMO_CONF=${DEMO_CONF:-examples/demo.conf}
DEMO_FRONT=${DEMO_FRONT:-8080}
DEMO_TLS_FRONT=${DEMO_TLS_FRONT-8443}
DEMO_TLS_DIR=${DEMO_TLS_DIR:-demo-tls}
APP="$BUILD/bollard-demo-app"
LB="$BUILD/bollard"
pids=()

cleanup() {
	trap - EXIT INT TERM
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	# Bounded wait, then make sure.
	for _ in $(seq 50); do
		local alive=0
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'echo; echo "bollard demo: stopping"; exit 0' INT TERM

wait_port() {  # port pid: wait (bounded) until 127.0.0.1:port accepts
	for _ in $(seq 100); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

if [ ! -x "$APP" ]; then
	echo "bollard demo: $APP is not built (run make)" >&2
	exit 1
fi

i=0
for port in $DEMO_PORTS; do
	i=$((i + 1))
	setsid "$APP" --name "app$i" --port "$port" &
	pid=$!
	pids+=("$pid")
	if ! wait_port "$port" "$pid"; then
		echo "bollard demo: app$i did not start on 127.0.0.1:$port (port in use?)" >&2
		exit 1
	fi
done

if [ -x "$LB" ] && [ -f "$DEMO_CONF" ] && [ -n "$DEMO_TLS_FRONT" ]; then
	if ! scripts/demo-tls.sh "$DEMO_TLS_DIR"; then
		echo "bollard demo: could not make the TLS certificate in $DEMO_TLS_DIR (openssl)" >&2
		exit 1
	fi
	BOLLARD_TLS_CRT=$(cd "$DEMO_TLS_DIR" && pwd)/localhost.pem
	export BOLLARD_TLS_CRT
fi

if [ -x "$LB" ] && [ -f "$DEMO_CONF" ]; then
	setsid "$LB" -c "$DEMO_CONF" &
	pid=$!
	pids+=("$pid")
	if ! wait_port "$DEMO_FRONT" "$pid"; then
		echo "bollard demo: bollard did not start with $DEMO_CONF" >&2
		exit 1
	fi
	if [ -n "$DEMO_TLS_FRONT" ] && ! wait_port "$DEMO_TLS_FRONT" "$pid"; then
		echo "bollard demo: bollard does not listen on its TLS port $DEMO_TLS_FRONT" >&2
		exit 1
	fi
	if [ -n "$DEMO_TLS_FRONT" ]; then
		ca=$(cd "$DEMO_TLS_DIR" && pwd)/ca.pem
		cat <<-EOT
		bollard demo: HTTPS on https://localhost:$DEMO_TLS_FRONT/ with a certificate signed by a local
		  test CA ($ca), which may sign for localhost and 127.0.0.1 only.
		  A browser warns until it trusts that CA (or accept the warning: it is a demo). To trust it:
		    curl --cacert $ca https://localhost:$DEMO_TLS_FRONT/
		    Firefox, Chromium: Settings > Privacy and security > Certificates > Authorities > Import: $ca
		    Chromium's store on Linux (libnss3-tools; remove with -D -n bollard-demo):
		      certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n bollard-demo -i $ca
		EOT
	fi
	echo "bollard demo: open http://127.0.0.1:$DEMO_FRONT/ (dashboard: http://127.0.0.1:8404/, metrics: http://127.0.0.1:8404/metrics); Ctrl-C stops everything"
else
	echo "bollard demo: $LB or $DEMO_CONF missing; running the apps alone:"
	for port in $DEMO_PORTS; do
		echo "  http://127.0.0.1:$port/"
	done
	echo "bollard demo: Ctrl-C stops everything"
fi

[ "${DEMO_FOREGROUND:-1}" = 0 ] && exit 0
# Until a signal, or until any process we started exits (then stop all).
wait -n
echo "bollard demo: a process exited; stopping everything" >&2
exit 1
