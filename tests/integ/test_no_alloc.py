"""No heap allocation per request (issue 6 item 3, DESIGN §3): the release
binary runs under an LD_PRELOAD shim that counts every malloc, calloc and
realloc (tests/alloc/alloccount.c, build/alloccount.so). After a warm-up,
10,000 keep-alive requests with persistence on (an insert cookie, a source
table and a learned cookie) must not grow the count with the requests."""

import os
import signal
import time
from pathlib import Path

import pytest

import util

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "build" / "alloccount.so"
RELEASE = ROOT / "build" / "bollard"


def counts(path, pid):
	if path.exists():
		path.unlink()
	os.kill(pid, signal.SIGUSR2)
	util.wait_until(lambda: path.exists() and path.read_text().endswith("\n"), what="the counts")
	f = path.read_text().split()
	return int(f[1]), int(f[3])


def start_counted(tmp_path, conf_text, port):
	"""The release binary under the shim with conf_text; returns the
	process and a function giving (allocs, frees, OpenSSL's, nghttp2's)."""
	if not SHIM.exists() or not RELEASE.exists():
		pytest.fail("build/alloccount.so and build/bollard are built by `make test`")
	conf = tmp_path / "b.conf"
	conf.write_text(conf_text)
	counts_file = tmp_path / "allocs"
	env = dict(os.environ, LD_PRELOAD=str(SHIM), ALLOC_COUNT_FILE=str(counts_file))
	proc = util.start_process([str(RELEASE), "-c", str(conf)], tmp_path / "out", tmp_path / "err",
				  env=env)
	util.wait_port(port, proc=proc, what="bollard")

	def all_counts():
		counts(counts_file, proc.pid)
		f = counts_file.read_text().split()
		return int(f[1]), int(f[3]), int(f[5]), int(f[7])
	return proc, all_counts


def run_requests(port, cookie, n, conns=4):
	per = n // conns
	done = 0
	for _ in range(conns):
		with util.Conn.connect(port) as c:
			for _ in range(per):
				c.send(util.build_request("GET", "/?format=json", headers=[("Cookie", cookie)]))
				r = util.read_response(c)
				assert r.status == 200, r
				done += 1
	return done


def test_keepalive_requests_do_not_allocate(demo_apps, tmp_path):
	if not SHIM.exists() or not RELEASE.exists():
		pytest.fail("build/alloccount.so and build/bollard are built by `make test`")
	apps = demo_apps(2)
	port = util.free_port()
	conf = tmp_path / "b.conf"
	conf.write_text(
		"global\n    threads 2\n    log file %s/access.log\n    secret-file %s/key\n"
		"frontend fe\n    bind 127.0.0.1:%d\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert max-idle 30m\n"
		"    persist learn DEMOSESSID\n    persist source\n"
		"    server app1 127.0.0.1:%d\n    server app2 127.0.0.1:%d\n"
		% (tmp_path, tmp_path, port, apps[0].port, apps[1].port))
	counts_file = tmp_path / "allocs"
	env = dict(os.environ, LD_PRELOAD=str(SHIM), ALLOC_COUNT_FILE=str(counts_file))
	proc = util.start_process([str(RELEASE), "-c", str(conf)], tmp_path / "out", tmp_path / "err",
				  env=env)
	try:
		util.wait_port(port, proc=proc, what="bollard")
		# a session: our cookie and the application's
		r = util.request(port, "GET", "/?format=json")
		cookies = [h.split(";")[0] for h in r.headers.get_all("Set-Cookie")]
		assert len(cookies) == 2, cookies  # BOLLARD and DEMOSESSID
		cookie = "; ".join(cookies)
		run_requests(port, cookie, 2000)  # warm-up: pools, buffers, tables
		time.sleep(0.3)
		a0, f0 = counts(counts_file, proc.pid)
		n = run_requests(port, cookie, 10000)
		time.sleep(0.3)
		a1, f1 = counts(counts_file, proc.pid)
	finally:
		util.stop_process(proc)
	print("allocations before/after 10000 requests:", a0, a1, "frees:", f0, f1)
	assert n == 10000
	# a handful of background allocations (state, timers) may happen, but
	# nothing proportional to the requests: 10,000 requests, < 50 allocations
	assert a1 - a0 < 50, (a0, a1, f0, f1)
	assert a0 > 0  # the shim did count (the test can fail)
