#!/bin/sh
# Install the Debian packages a bollard task needs, only when some are
# missing. Usage: scripts/install-deps.sh build|demo|stores|test|bench|lab|fuzz|browser ...
# Runs apt-get update first (a fresh machine has no package lists).
set -e

pkgs=""
for profile in "$@"; do
	case "$profile" in
	# libhiredis-dev: the shared tables' Redis link (src/shared_link.c)
	# libnghttp2-dev: the HTTP/2 frontend (src/h2.c)
	build) pkgs="$pkgs gcc make pkg-config libsodium-dev libxxhash-dev libssl-dev libhiredis-dev libnghttp2-dev" ;;
	# systemd: systemd-analyze verify and systemd-sysusers for the unit's tests;
	# groff-base: the man-page rendering tests; redis-server: the shared tables'
	# tests; nghttp2-client: nghttp and h2load for the HTTP/2 tests
	test)  pkgs="$pkgs gcc make pkg-config libsodium-dev libxxhash-dev libssl-dev libhiredis-dev libnghttp2-dev libcmocka-dev python3 python3-pytest systemd groff-base redis-server nghttp2-client" ;;
	# the demo app's session stores (SPEC 14): the client libraries it
	# links, and the servers its tests and the lab start on loopback
	demo)  pkgs="$pkgs libsodium-dev libhiredis-dev libmemcached-dev libpq-dev" ;;
	# redis-sentinel: the shared tables' Sentinel failover tests (src/shared_sentinel.c)
	stores) pkgs="$pkgs redis-server redis-sentinel memcached postgresql" ;;
	lab)   pkgs="$pkgs gnuplot-nox procps" ;;
	fuzz)  pkgs="$pkgs clang libclang-rt-14-dev" ;;
	# nghttp2-client: h2load, the TLS handshake and HTTP/2 rows (bench/bench_tls.py);
	# redis-server: the shared-tables rows (bench/bench_shared.py)
	bench) pkgs="$pkgs wrk haproxy nginx-light util-linux procps gnuplot-nox valgrind nghttp2-client redis-server" ;;
	# the browser tests: Debian's chromium (driven by
	# playwright-core, which never downloads a browser) and a font for
	# readable screenshots; node and npm only when no node is there at
	# all (a NodeSource nodejs already bundles npm and conflicts with
	# Debian's npm package); libnss3-tools: certutil, which puts the
	# HTTPS test's CA into a browser's NSS store as the demo tells users to
	browser)
		pkgs="$pkgs chromium fonts-dejavu-core libnss3-tools"
		command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
		command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
		;;
	*) echo "install-deps: unknown profile '$profile'" >&2; exit 2 ;;
	esac
done

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "install-deps: missing packages:$missing (run as root or install them)" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
# Packages with services (haproxy, nginx) must not start system instances:
# the benchmark runs its own on loopback. policy-rc.d 101 forbids starting.
if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$SUDO" ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends $missing >&2
