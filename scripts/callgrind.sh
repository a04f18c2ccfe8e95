#!/bin/sh
# callgrind.sh - instructions per request, counted by valgrind's callgrind,
# for bollard (and HAProxy, for comparison) in the main scenarios of issue 6.
#
# Wall-clock numbers on this shared 2-core machine swing by tens of percent;
# instruction counts do not, so they are what backs a claim that one change
# (or one proxy) does less work per request. For each proxy and scenario the
# script runs the proxy under `valgrind --tool=callgrind` twice: once
# serving a handful of requests (the baseline: start-up, configuration,
# shutdown) and once serving N more, then reports
#     (Ir of the long run - Ir of the baseline) / (difference in requests).
# The client is a small Python keep-alive client with a fixed request count
# (wrk can only run for a duration), over C connections; the backends are
# three build/bollard-demo-app, not under valgrind.
#
# Scenarios: keepalive (round robin), cookie (insert-cookie persistence, every
# request carrying the cookie the proxy issued: the hit path), firstvisit
# (insert-cookie persistence, no cookie sent: a cookie sealed per answer),
# h2 (not by default: the cookie hit path over HTTP/2 and TLS 1.3, the
# client `h2load -t1 -c10 -m10` with the cookie, as the bench's h2-cookie
# row; an ECDSA P-256 certificate made for the run).
#
# Usage: scripts/callgrind.sh [-n REQUESTS] [-c CONNECTIONS] [-p bollard,haproxy]
#                             [-s keepalive,cookie,firstvisit,h2] [-t strace] [-k]
#   -k keeps the work directory (callgrind.out.* files for callgrind_annotate).
#   -t strace counts system calls per request instead (`strace -f -c`, the
#      same baseline subtraction): the other half of the cost, in the kernel.
#   -t nstat counts TCP segments per request instead (/proc/net/snmp and
#      netstat, the same subtraction), in a network namespace of the run's
#      own (`unshare -rn`) so that nothing else on the machine adds to them;
#      they count the client's, proxy's and backends' segments together, and
#      the proxy's user and system CPU ticks (load-dependent, shown as a hint).
# Needs valgrind (scripts/install-deps.sh bench) and `make` (build/bollard is
# the release build, -O2 -g). Everything started is stopped by PID.
set -eu

N=20000
C=4
PROXIES=bollard,haproxy
SCENS=keepalive,cookie,firstvisit
KEEP=0
BASE_N=20
TOOL=callgrind
while getopts n:c:p:s:t:k o; do
	case $o in
	n) N=$OPTARG ;;
	c) C=$OPTARG ;;
	p) PROXIES=$OPTARG ;;
	s) SCENS=$OPTARG ;;
	k) KEEP=1 ;;
	t) TOOL=$OPTARG ;;
	*) sed -n '2,29p' "$0"; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
case $TOOL in callgrind | strace | nstat) ;; *) echo "callgrind.sh: -t callgrind|strace|nstat" >&2; exit 2 ;; esac
if [ "$TOOL" = nstat ] && [ -z "${CALLGRIND_NETNS:-}" ]; then
	# a loopback of our own: the counters are per network namespace
	exec env CALLGRIND_NETNS=1 unshare -rn sh -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
command -v valgrind >/dev/null || [ "$TOOL" != callgrind ] || { echo "callgrind.sh: valgrind missing (scripts/install-deps.sh bench)" >&2; exit 2; }
[ -x "$ROOT/build/bollard" ] && [ -x "$ROOT/build/bollard-demo-app" ] || { echo "callgrind.sh: run make first" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bollard-callgrind-XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	if [ "$KEEP" = 1 ]; then echo "callgrind.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The fixed-count client: N GET /whoami over C keep-alive connections in
# turn; with cookie=1 it first takes the proxy's cookie and sends it after.
cat >"$WORK/client.py" <<'EOF'
import re, socket, sys
port, n, c, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def read(s, buf):
	while b"\r\n\r\n" not in buf:
		d = s.recv(65536)
		if not d:
			raise SystemExit("closed")
		buf += d
	head, _, rest = buf.partition(b"\r\n\r\n")
	m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
	want = int(m.group(1)) if m else 0
	while len(rest) < want:
		rest += s.recv(65536)
	return head, rest[want:]
socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(c)]
bufs = [b""] * c
extra = b""
if mode == "cookie":
	socks[0].sendall(b"GET /whoami HTTP/1.1\r\nHost: cg\r\n\r\n")
	head, bufs[0] = read(socks[0], bufs[0])
	m = re.search(rb"(?im)^set-cookie:\s*(BOLLARD=[^;\r\n]*)", head)
	if not m:
		raise SystemExit("no cookie issued")
	extra = b"Cookie: " + m.group(1) + b"\r\n"
	n -= 1
req = b"GET /whoami HTTP/1.1\r\nHost: cg\r\nUser-Agent: callgrind\r\n" + extra + b"\r\n"
for i in range(n):
	k = i % c
	socks[k].sendall(req)
	head, bufs[k] = read(socks[k], bufs[k])
	if not head.startswith(b"HTTP/1.1 200"):
		raise SystemExit("bad answer: %r" % head[:60])
for s in socks:
	s.close()
EOF

# three backends, not under valgrind
SERVERS_B="" SERVERS_H="" SERVERS_HC=""
for i in 1 2 3; do
	p=$(free_port)
	"$ROOT/build/bollard-demo-app" --name app$i --port "$p" --threads 1 >"$WORK/app$i.log" 2>&1 &
	PIDS="$PIDS $!"
	SERVERS_B="$SERVERS_B    server app$i 127.0.0.1:$p
"
	SERVERS_H="$SERVERS_H    server app$i 127.0.0.1:$p
"
	SERVERS_HC="$SERVERS_HC    server app$i 127.0.0.1:$p cookie app$i
"
done

wait_port() { # port pid: until it accepts, or fail
	i=0
	until $PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),timeout=0.5)" 2>/dev/null; do
		i=$((i + 1))
		kill -0 "$2" 2>/dev/null || { echo "callgrind.sh: process $2 exited" >&2; return 1; }
		[ $i -lt 300 ] || { echo "callgrind.sh: port $1 not ready" >&2; return 1; }
		sleep 0.1
	done
}

# the certificate and key of the h2 scenario, made once
h2_pem() {
	[ -f "$WORK/site.pem" ] || {
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" \
			-out "$WORK/crt.pem" -days 30 -subj /CN=localhost \
			-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1
		cat "$WORK/crt.pem" "$WORK/key.pem" >"$WORK/site.pem"
	}
	echo "$WORK/site.pem"
}

# the h2 client: the cookie from a first visit, then the other N - 1
# requests over 10 connections of 10 streams
h2_client() {
	ck=$(curl -sk -D - -o /dev/null "https://127.0.0.1:$1/whoami" |
		sed -n 's/^[Ss]et-[Cc]ookie: *\(BOLLARD=[^;]*\).*/\1/p' | tr -d '\r')
	[ -n "$ck" ] || { echo "callgrind.sh: no cookie over h2" >&2; return 1; }
	h2load -t1 -c10 -m10 -n "$(($2 - 1))" -H "Cookie: $ck" "https://127.0.0.1:$1/whoami" \
		>"$WORK/h2load.out" 2>&1
	grep -q " $(($2 - 1)) succeeded" "$WORK/h2load.out" || { cat "$WORK/h2load.out" >&2; return 1; }
}

# conf proxy scen port -> path of the generated configuration
conf() {
	persist="" servers=$SERVERS_B
	case $2:$3 in
	bollard:cookie|bollard:firstvisit|bollard:h2) persist="    persist cookie BOLLARD insert" ;;
	haproxy:cookie|haproxy:firstvisit|haproxy:h2) persist="    cookie BOLLARD insert indirect nocache" servers=$SERVERS_HC ;;
	haproxy:*) servers=$SERVERS_H ;;
	esac
	case $2 in
	bollard) tpl=bollard.conf.in out="$WORK/$2-$3.conf" ;;
	haproxy) tpl=haproxy.cfg.in out="$WORK/$2-$3.cfg" ;;
	esac
	h2pem=""
	[ "$3" = h2 ] && h2pem=$(h2_pem)
	H2PEM="$h2pem" PERSIST="$persist" SERVERS="$servers" $PY - "$ROOT/bench/configs/$tpl" "$out" "$4" <<'EOF'
import os, sys
t = open(sys.argv[1]).read()
for k, v in {"PORT": sys.argv[3], "MAXCONN": "1000", "THREADS": "1", "REUSE": "always",
	     "PERSIST": os.environ["PERSIST"], "SERVERS": os.environ["SERVERS"].rstrip("\n")}.items():
	t = t.replace("@" + k + "@", v)
if os.environ.get("H2PEM"):
	# the bench's TLS bind (bench/bench_tls.py tls_text), ALPN h2 first
	old = "    bind 127.0.0.1:%s\n" % sys.argv[3]
	tls = {"bollard.conf.in": " tls crt %s alpn h2,http/1.1 min-version 1.3 ciphersuites %s",
	       "haproxy.cfg.in": " ssl crt %s alpn h2,http/1.1 ssl-min-ver TLSv1.3 ciphersuites %s"}
	t = t.replace(old, old[:-1] + tls[os.path.basename(sys.argv[1])]
		      % (os.environ["H2PEM"], "TLS_AES_128_GCM_SHA256") + "\n")
open(sys.argv[2], "w").write(t)
EOF
	echo "$out"
}

# run proxy scen requests -> prints the Ir total of that run
run_one() {
	port=$(free_port)
	cfg=$(conf x "$1" "$2" "$port")
	out="$WORK/callgrind.out.$1.$2.$3"
	case $1 in
	bollard) set -- "$1" "$2" "$3" "$ROOT/build/bollard" -c "$cfg" ;;
	haproxy) set -- "$1" "$2" "$3" haproxy -f "$cfg" -db ;;
	esac
	name=$1 scen=$2 n=$3
	shift 3
	if [ "$TOOL" = strace ]; then
		strace -f -c -o "$out" "$@" >"$WORK/$name-$scen-$n.log" 2>&1 &
	elif [ "$TOOL" = nstat ]; then
		$PY "$WORK/snmp.py" >"$out.before"
		"$@" >"$WORK/$name-$scen-$n.log" 2>&1 &
	else
		valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/$name-$scen-$n.log" 2>&1 &
	fi
	vp=$!
	PIDS="$PIDS $vp"
	wait_port "$port" "$vp"
	mode=plain
	[ "$scen" = cookie ] && mode=cookie
	if [ "$scen" = h2 ]; then
		h2_client "$port" "$n"
	else
		$PY "$WORK/client.py" "$port" "$n" "$C" "$mode"
	fi
	if [ "$TOOL" = strace ]; then
		# strace would detach on SIGTERM and leave the proxy running:
		# stop the proxy (its child), and strace exits with it
		for k in $(pgrep -P "$vp"); do kill -TERM "$k"; done
	else
		[ "$TOOL" = nstat ] && $PY "$WORK/snmp.py" "$vp" "$out.before" >"$out"
		kill -TERM "$vp"
	fi
	wait "$vp" 2>/dev/null || true
	if [ "$TOOL" = strace ]; then
		awk '$NF == "total" { print $4 }' "$out"
	elif [ "$TOOL" = nstat ]; then
		echo "$out"
	else
		sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$out" | tail -1
	fi
}

# nstat: the counters (and, given a PID, its CPU ticks) as NAME VALUE lines;
# given a file of earlier ones too, the difference
cat >"$WORK/snmp.py" <<'EOF'
import os, sys
v = {}
for f in ("/proc/net/snmp", "/proc/net/netstat"):
	lines = open(f).read().split("\n")
	for a, b in zip(lines[0::2], lines[1::2]):
		for k, x in zip(a.split()[1:], b.split()[1:]):
			v[a.split()[0].rstrip(":") + "." + k] = int(x)
if len(sys.argv) > 1:
	st = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
	# in microseconds, from clock ticks
	us = 1000000 // os.sysconf("SC_CLK_TCK")
	v["cpu.utime_us"], v["cpu.stime_us"] = int(st[11]) * us, int(st[12]) * us
	old = dict((k, int(x)) for k, x in (l.split() for l in open(sys.argv[2])))
	v = dict((k, x - old.get(k, 0)) for k, x in v.items())
for k, x in v.items():
	print(k, x)
EOF
NSTAT_KEYS="Tcp.OutSegs Tcp.RetransSegs TcpExt.DelayedACKs TcpExt.TCPPureAcks TcpExt.TCPHPAcks TcpExt.TCPHPHits TcpExt.TCPAutoCorking TcpExt.TCPOrigDataSent TcpExt.TCPBacklogCoalesce cpu.utime_us cpu.stime_us"

if [ "$TOOL" = nstat ]; then
	printf '| proxy | scenario | requests |'
	for k in $NSTAT_KEYS; do printf ' %s |' "${k#*.}"; done
	printf '\n|---|---|---:|'
	for k in $NSTAT_KEYS; do printf -- '---:|'; done
	printf '\n'
elif [ "$TOOL" = strace ]; then
	printf '| proxy | scenario | requests | syscalls baseline (%d req) | syscalls run | system calls per request |\n' "$BASE_N"
	printf '|---|---|---:|---:|---:|---:|\n'
else
	printf '| proxy | scenario | requests | Ir baseline (%d req) | Ir run | instructions per request |\n' "$BASE_N"
	printf '|---|---|---:|---:|---:|---:|\n'
fi
for px in $(echo "$PROXIES" | tr , ' '); do
	command -v "$px" >/dev/null || [ "$px" = bollard ] || { echo "| $px | (not installed) |"; continue; }
	[ "$TOOL" = strace ] && PREC=2
	for sc in $(echo "$SCENS" | tr , ' '); do
		base=$(run_one "$px" "$sc" "$BASE_N")
		full=$(run_one "$px" "$sc" "$N")
		if [ "$TOOL" = nstat ]; then
			# per request: (long run - baseline) / difference in requests
			row=$($PY - "$base" "$full" "$((N - BASE_N))" $NSTAT_KEYS <<'EOF'
import sys
rd = lambda f: dict((k, int(x)) for k, x in (l.split() for l in open(f)))
b, f, n = rd(sys.argv[1]), rd(sys.argv[2]), int(sys.argv[3])
print(" | ".join("%.3f" % ((f.get(k, 0) - b.get(k, 0)) / n) for k in sys.argv[4:]))
EOF
)
			printf '| %s | %s | %d | %s |\n' "$px" "$sc" "$N" "$row"
			continue
		fi
		per=$($PY -c "print('%.${PREC:-0}f' % (($full - $base) / ($N - $BASE_N)))")
		printf '| %s | %s | %d | %s | %s | **%s** |\n' "$px" "$sc" "$N" "$base" "$full" "$per"
	done
done
