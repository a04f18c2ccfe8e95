#!/usr/bin/python3
"""
bench.py - the side-by-side benchmark behind `make bench` (SPEC §9, DESIGN §5b).

The question it answers: on this machine, with the same backends, the same
load generator and one worker thread each, how does bollard compare with the
HAProxy and NGINX from the distribution, in requests per second, latency,
CPU time per request and memory? Numbers from a noisy shared machine are only
worth something when the contenders are measured the same way, close together
in time, so the runner:

  - starts three demo-app backends once and every proxy once, each with its own
    configuration on 127.0.0.1 and free ports (bench/configs/*.in);
  - pins them: the proxy under test on CPU 1, wrk and the backends on CPU 0
    (`taskset`), the same for every proxy, so a proxy never competes with the
    load generator for its core and the proxies are compared core for core;
  - runs rounds; in each round every scenario is run against every proxy, and
    the order of the proxies is rotated from round to round so that slow drift
    of the machine (thermal, neighbours) does not always favour the same one;
  - reports medians over rounds and, per round, the ratios bollard/HAProxy and
    bollard/NGINX, which cancel the drift that both runs of a round share;
  - stops everything it started, by PID, in a `finally` (also on Ctrl-C).

Scenarios (issue 6): keep-alive round robin; keep-alive with insert-cookie
persistence on the hit path (cookie) and on the insert path (firstvisit);
source persistence; learned-cookie persistence with a million live entries;
connection per request; a 10 MiB body streamed each way (upload, download);
keep-alive load next to 1,000 idle client connections (idle1k). Each runs on
a proxy instance configured for it, with one worker thread, then (a subset)
with two. One summary table with the bollard/HAProxy and bollard/NGINX
ratios per scenario, and an SVG chart of them (gnuplot).

Per run it records requests/s, p50 and p99 latency (wrk --latency), errors
(socket errors or non-2xx/3xx answers; a run with errors is flagged), the CPU
time the proxy process(es) used during the run (utime+stime from
/proc/PID/stat, summed over the NGINX master and worker) as microseconds per
request, and the peak RSS (VmHWM; for NGINX the worker). `--idle N` measures
the memory each idle keep-alive client connection costs a proxy. Because the
machine is shared, each run also records how busy both cores were with work
that is not ours (the "noise" columns) and how busy the load core was: it
tells a slow proxy from a disturbed one, or from a saturated load generator.

Python standard library only; run with /usr/bin/python3.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import bench_tls

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFDIR = os.path.join(ROOT, "bench", "configs")
RESULTS = os.path.join(ROOT, "bench", "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")

PROXIES = ("direct", "bollard", "haproxy", "nginx")
BODY = 10 * 1024 * 1024     # the streamed body of the upload/download scenarios


def scen(desc, variant="plain", args=(), conns="connections", path=None, lua=None,
	 cookie=False, idle=0, body=0, direct=None, prefill=False):
	"""One scenario: the wrk run and the proxy configuration (variant) it needs.
	cookie: send the cookie the proxy issued; idle: hold this many idle
	keep-alive connections open during the run; body: bytes carried per
	request (MB/s and CPU per MB are reported); prefill: fill the learned
	table with --learn-entries sessions first."""
	return {"desc": desc, "variant": variant, "args": list(args), "conns": conns,
		"path": path, "lua": lua, "cookie": cookie, "idle": idle, "body": body,
		"direct": variant == "plain" if direct is None else direct, "prefill": prefill}


# wrk scripts (Lua): a 10 MB upload, and a request counter that stops wrk
# after a fixed number of answers (wrk itself can only run for a duration).
LUA_UPLOAD = """wrk.method = "POST"
wrk.body = string.rep("x", %d)
wrk.headers["Content-Type"] = "application/octet-stream"
""" % BODY
# wrk.thread:stop() ends the requests but wrk still waits out -d, so the
# script also leaves a marker file for the runner, which then stops wrk.
LUA_COUNT = """local n = 0
function response(status, headers, body)
	n = n + 1
	if n == %d then
		local f = io.open("%s", "w")
		if f then f:close() end
		wrk.thread:stop()
	end
end
"""

SCENARIOS = {
	"keepalive": scen("keep-alive round robin, -c{c}"),
	"cookie": scen("keep-alive, -c{c}, insert-cookie persistence, every request carrying the "
		       "cookie the proxy issued (the hit path: open the sealed cookie, route)",
		       "cookie", cookie=True),
	"firstvisit": scen("keep-alive, -c{c}, insert-cookie persistence, no request carries a "
			   "cookie: every answer gets a freshly issued (sealed) cookie (the insert path)",
			   "cookie"),
	"source": scen("keep-alive, -c{c}, client-address persistence (one client address: "
		       "every request is a table hit)", "source"),
	"learn": scen("keep-alive, -c{c}, learned-cookie persistence with {learn} live entries in "
		      "the table (filled first with GET / answered with a new DEMOSESSID each), every "
		      "request carrying one learned session cookie", "learn", cookie=True, prefill=True),
	"close": scen("connection per request (Connection: close), -c{c}",
		      args=["-H", "Connection: close"], conns="close_connections"),
	"upload": scen("10 MiB POST to /echo per request (streamed to the backend, which hashes it), "
		       "keep-alive, -c{c}", conns="body_connections", path="/echo", lua=LUA_UPLOAD, body=BODY),
	"download": scen("10 MiB GET /bytes?n=%d per request (streamed from the backend), "
			 "keep-alive, -c{c}" % BODY, conns="body_connections",
			 path="/bytes?n=%d" % BODY, body=BODY),
	"idle1k": scen("keep-alive, -c{c}, while {idle} other client connections sit idle on the "
		       "proxy (compare with keepalive)", idle=1000, direct=False),
}
DEFAULT_SCENARIOS = "keepalive,cookie,firstvisit,source,learn,close,upload,download,idle1k"
DEFAULT_SCENARIOS_2T = "keepalive,cookie,firstvisit,source,close"
COOKIE = "BOLLARD"
APP_COOKIE = "DEMOSESSID"   # the demo app's session cookie (SPEC §8)
# Backend lines of each configuration variant, per proxy. A proxy without an
# equivalent (NGINX 1.22 has no insert-cookie persistence outside the
# commercial sticky module) is left out of that scenario. "direct" only runs
# the plain variant: with no proxy there is nothing to persist.
VARIANTS = {
	"plain": {"bollard": "", "haproxy": "", "nginx": ""},
	"source": {
		"bollard": "    persist source mask4 32 expire 30m",
		"haproxy": "    stick-table type ip size 1m expire 30m\n    stick on src",
		# nginx keeps no table: ip_hash hashes the address (first three
		# octets) on every request. The closest it has.
		"nginx": "        ip_hash;",
	},
	"cookie": {
		"bollard": "    persist cookie %s insert" % COOKIE,
		# indirect: the cookie is removed from the request toward the server
		# and only set when the server changes, as bollard does; nocache adds
		# Cache-Control: private to responses that set it (SPEC §3.1).
		"haproxy": "    cookie %s insert indirect nocache" % COOKIE,
	},
	"learn": {
		# size 2m: room for the 1M-entry scenario on both proxies
		"bollard": "    persist learn %s expire 30m size 2m" % APP_COOKIE,
		# learn the server's Set-Cookie, route by the request's Cookie
		"haproxy": "    stick-table type string len 64 size 2m expire 30m\n"
			   "    stick on req.cook(%s)\n"
			   "    stick store-response res.cook(%s)" % (APP_COOKIE, APP_COOKIE),
	},
}
# Every proxy gets the same client connection limit (bollard/HAProxy
# maxconn, NGINX worker_connections = twice it, as it counts both sides).
MAXCONN = 8000
TARGET = "/whoami"


def log(msg):
	print(msg, flush=True)


def die(msg):
	print("bench: error: " + msg, file=sys.stderr, flush=True)
	sys.exit(2)


def stop_all(procs, tmp, keep_tmp, what="configurations and logs"):
	"""The end of every part of the bench, interrupted or not: stop what it
	started, newest first, then drop its temporary folder unless asked to
	keep it."""
	for p in reversed(procs):
		p.stop()
	if keep_tmp:
		log("bench: %s kept in %s" % (what, tmp))
	else:
		shutil.rmtree(tmp, ignore_errors=True)


def free_port():
	"""A port free on 127.0.0.1 right now (the kernel's choice)."""
	with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def render(template, out, values):
	"""Fill @NAME@ placeholders of bench/configs/TEMPLATE into OUT."""
	with open(os.path.join(CONFDIR, template)) as f:
		text = f.read()
	for k, v in values.items():
		text = text.replace("@" + k + "@", str(v))
	left = re.findall(r"@[A-Z_]+@", text)
	if left:
		die("%s: unfilled placeholders %s" % (template, sorted(set(left))))
	with open(out, "w") as f:
		f.write(text)
	return out


# ---- /proc readers ---------------------------------------------------------

def proc_stat(pid):
	"""(ppid, utime+stime in clock ticks) of PID, or None when it is gone."""
	try:
		with open("/proc/%d/stat" % pid) as f:
			data = f.read()
	except OSError:
		return None
	# comm (field 2) may hold spaces and parentheses: split after the last ')'.
	rest = data[data.rindex(")") + 2:].split()
	# proc(5): field 4 ppid, 14 utime, 15 stime; rest[0] is field 3.
	return int(rest[1]), int(rest[11]) + int(rest[12])


def proc_status_kb(pid, key):
	"""A 'kB' field (VmHWM, VmRSS) of /proc/PID/status, or None."""
	try:
		with open("/proc/%d/status" % pid) as f:
			for line in f:
				if line.startswith(key + ":"):
					return int(line.split()[1])
	except OSError:
		pass
	return None


def cpu_line(cpu):
	"""(process time + steal, total, non-idle) clock ticks of CPU from
	/proc/stat, or None."""
	if cpu is None:
		return None
	try:
		with open("/proc/stat") as f:
			for line in f:
				if line.startswith("cpu%d " % cpu):
					v = [int(x) for x in line.split()[1:9]]
					# user nice system idle iowait irq softirq steal.
					# irq/softirq are left out of "busy": on loopback most
					# of it is the network work of the proxy's own sends.
					# The third value, all but idle, says whether the
					# core was saturated.
					return v[0] + v[1] + v[2] + v[7], sum(v), sum(v) - v[3] - v[4]
	except OSError:
		pass
	return None


def children_of(pid):
	"""PIDs whose parent is PID (this kernel may lack /proc/.../children)."""
	out = []
	for name in os.listdir("/proc"):
		if name.isdigit():
			st = proc_stat(int(name))
			if st and st[0] == pid:
				out.append(int(name))
	return sorted(out)


# ---- processes we start -----------------------------------------------------

class Proc:
	"""A process we started: its PID, log file, and how to stop it."""

	def __init__(self, name, argv, logdir, cpu=None):
		self.name = name
		self.logpath = os.path.join(logdir, name + ".log")
		self.logf = open(self.logpath, "wb")
		if cpu is not None:
			# taskset execs the program: the PID is the program's own.
			argv = ["taskset", "-c", str(cpu)] + argv
		self.argv = argv
		# A session of its own: Ctrl-C in the terminal reaches only us, and
		# we stop it in order from the finally.
		self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
					  stderr=subprocess.STDOUT, start_new_session=True)
		self.pid = self.p.pid

	def alive(self):
		return self.p.poll() is None

	def log_tail(self, n=15):
		try:
			with open(self.logpath, "rb") as f:
				lines = f.read().decode(errors="replace").splitlines()
			return "\n".join("    " + x for x in lines[-n:])
		except OSError:
			return ""

	def stop(self):
		if self.p.poll() is None:
			try:
				os.kill(self.pid, signal.SIGTERM)
			except ProcessLookupError:
				pass
			try:
				self.p.wait(timeout=5)
			except subprocess.TimeoutExpired:
				try:
					os.kill(self.pid, signal.SIGKILL)
				except ProcessLookupError:
					pass
				self.p.wait(timeout=5)
		self.logf.close()


def http_raw(port, path=TARGET, timeout=1.0, headers=()):
	"""One GET on a new connection: the raw response, or raises OSError."""
	with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
		hdr = "".join(h + "\r\n" for h in headers)
		s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n%s\r\n"
			   % (path, hdr)).encode())
		data = b""
		while True:
			chunk = s.recv(65536)
			if not chunk:
				break
			data += chunk
	return data


def http_get(port, path=TARGET, timeout=1.0, headers=()):
	"""One GET on a new connection: (status, body) or raises OSError."""
	head, _, body = http_raw(port, path, timeout, headers).partition(b"\r\n\r\n")
	status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
	return status, body


def http_head(port, path=TARGET):
	"""The response head of one GET, as text."""
	return http_raw(port, path).partition(b"\r\n\r\n")[0].decode(errors="replace")


def wait_ready(port, procs, what, expect=None, timeout=10.0):
	"""Poll until 127.0.0.1:PORT answers 200 (containing EXPECT) or fail."""
	deadline = time.monotonic() + timeout
	last = "no answer"
	while time.monotonic() < deadline:
		for p in procs:
			if not p.alive():
				die("%s exited (status %s) during start-up; its output:\n%s"
				    % (what, p.p.returncode, p.log_tail()))
		try:
			status, body = http_get(port)
			if status == 200 and (expect is None or expect.encode() in body):
				return
			last = "status %d body %r" % (status, body[:80])
		except (OSError, ValueError, IndexError) as e:
			last = str(e)
		time.sleep(0.1)
	die("%s not ready on 127.0.0.1:%d after %.0fs (%s); its output:\n%s"
	    % (what, port, timeout, last, "\n".join(p.log_tail() for p in procs)))


class Target:
	"""What wrk is pointed at: a proxy (or a backend directly)."""

	def __init__(self, name, port, main=None, headers=(), threads=1):
		self.name = name
		self.threads = threads
		self.port = port
		self.main = main          # Proc; None for direct
		self.headers = list(headers)  # extra wrk -H for every run

	def pids(self):
		"""Processes whose CPU we charge: the proxy and its children."""
		if self.main is None:
			return []
		if self.name == "nginx":
			return [self.main.pid] + children_of(self.main.pid)
		return [self.main.pid]

	def rss_pid(self):
		"""The process whose memory we report: NGINX's worker, else the proxy."""
		if self.main is None:
			return None
		if self.name == "nginx":
			kids = children_of(self.main.pid)
			return kids[0] if kids else self.main.pid
		return self.main.pid

	def cpu_ticks(self):
		total = 0
		for pid in self.pids():
			st = proc_stat(pid)
			if st:
				total += st[1]
		return total


# ---- starting backends and proxies -------------------------------------------

def start_backends(args, tmp, procs):
	ports = [free_port() for _ in range(3)]
	names = ["app%d" % (i + 1) for i in range(3)]
	if args.backend == "demo":
		exe = os.path.join(ROOT, "build", "bollard-demo-app")
		if not os.access(exe, os.X_OK):
			die("%s not found: build it (`make build/bollard-demo-app`), or use "
			    "the stand-in backends with --backend nginx" % exe)
		for name, port in zip(names, ports):
			procs.append(Proc(name, [exe, "--name", name, "--port", str(port),
						 "--threads", "1"], tmp, args.cpu_load))
		for name, port, p in zip(names, ports, procs[-3:]):
			wait_ready(port, [p], "backend " + name, expect=name)
	else:
		prefix = os.path.join(tmp, "backends")
		os.makedirs(prefix)
		blocks = "\n".join(
			"    server {\n        listen 127.0.0.1:%d;\n"
			"        location / { return 200 \"%s\\n\"; }\n    }" % (port, name)
			for name, port in zip(names, ports))
		conf = render("backend-nginx.conf.in", os.path.join(prefix, "nginx.conf"),
			      {"PREFIX": prefix, "NOFILE": args.nofile,
			       "WORKER_CONNS": MAXCONN * 2, "SERVERS": blocks})
		p = Proc("backends", ["nginx", "-c", conf, "-p", prefix, "-e",
				      os.path.join(prefix, "error.log"), "-g", "daemon off;"],
			 tmp, args.cpu_load)
		procs.append(p)
		for name, port in zip(names, ports):
			wait_ready(port, [p], "stand-in backend " + name, expect=name)
	return list(zip(names, ports))


def start_proxy(name, variant, threads, args, tmp, backends, procs):
	port = free_port()
	label = (name if variant == "plain" else name + "-" + variant) + \
		("" if threads == 1 else "-%dt" % threads)
	prefix = os.path.join(tmp, label)
	os.makedirs(prefix)
	persist = VARIANTS[variant][name]
	if name == "bollard":
		exe = args.bollard
		if not os.access(exe, os.X_OK):
			die("%s not found: build it (`make build/bollard`), or leave it out "
			    "with --proxies direct,haproxy,nginx" % exe)
		servers = "\n".join("    server %s 127.0.0.1:%d" % b for b in backends)
		conf = render("bollard.conf.in", os.path.join(prefix, "bollard.conf"),
			      {"PORT": port, "MAXCONN": MAXCONN, "SERVERS": servers, "PERSIST": persist,
			       "THREADS": threads})
		argv = [exe, "-c", conf]
	elif name == "haproxy":
		servers = "\n".join("    server %s 127.0.0.1:%d%s" % (b[0], b[1], " cookie " + b[0]
								if variant == "cookie" else "") for b in backends)
		conf = render("haproxy.cfg.in", os.path.join(prefix, "haproxy.cfg"),
			      {"PORT": port, "MAXCONN": MAXCONN, "REUSE": args.haproxy_reuse,
			       "SERVERS": servers, "PERSIST": persist, "THREADS": threads})
		argv = ["haproxy", "-f", conf, "-db"]
	elif name == "nginx":
		# Workers drop to an unprivileged user when we are root: let it in.
		os.chmod(tmp, 0o755)
		os.chmod(prefix, 0o755)
		servers = "\n".join("        server 127.0.0.1:%d;" % b[1] for b in backends)
		conf = render("nginx.conf.in", os.path.join(prefix, "nginx.conf"),
			      {"PORT": port, "PREFIX": prefix, "NOFILE": args.nofile,
			       "WORKER_CONNS": MAXCONN * 2, "SERVERS": servers, "PERSIST": persist,
			       "THREADS": threads})
		argv = ["nginx", "-c", conf, "-p", prefix, "-e",
			os.path.join(prefix, "error.log"), "-g", "daemon off;"]
	else:
		raise ValueError(name)
	p = Proc(label, argv, tmp, args.cpu_proxy if threads == 1 else args.cpu_proxy_2t)
	procs.append(p)
	wait_ready(port, [p], label)
	headers = []
	seen = set()
	if variant == "plain":
		# Every backend must answer through the proxy before we measure it.
		for _ in range(12):
			seen.add(http_get(port)[1].strip().decode(errors="replace"))
		missing = [b[0] for b in backends if b[0] not in seen]
		if missing:
			die("%s does not reach backend(s) %s (answers seen: %s)"
			    % (label, ", ".join(missing), sorted(seen)))
	elif variant in ("cookie", "learn"):
		# Take the cookie the proxy issues (or the application's session
		# cookie, which the proxy learns on the way out of GET /) and send
		# it on every request, then check that it keeps us on one server.
		cname, path = (COOKIE, TARGET) if variant == "cookie" else (APP_COOKIE, "/")
		head = http_head(port, path)
		m = re.search(r"(?im)^set-cookie:\s*(%s=[^;\r\n]*)" % cname, head)
		if not m:
			die("%s: no %s cookie in the answer to GET %s%s; response head:\n%s"
			    % (label, cname, path, " (learn needs --backend demo)"
			       if variant == "learn" else "", head))
		headers = ["Cookie: " + m.group(1)]
	if variant != "plain":
		for _ in range(6):
			seen.add(http_get(port, headers=headers)[1].strip().decode(errors="replace"))
		if len(seen) != 1:
			die("%s does not persist: answers from %s" % (label, sorted(seen)))
	return Target(name, port, p, headers, threads)


# ---- wrk ------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
	m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
	if not m:
		raise ValueError("latency %r" % text)
	return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out):
	"""The numbers we keep from wrk --latency output."""
	r = {}
	m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
	r["rps"] = float(m.group(1)) if m else None
	m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", out, re.M)
	r["requests"] = int(m.group(1)) if m else None
	for pct in ("50", "99"):
		m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
		r["p" + pct + "_ms"] = round(to_ms(m.group(1)), 4) if m else None
	# "Latency  avg  stdev  max  +/- stdev": the slowest request, to tell
	# one stall from a shifted tail
	m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", out, re.M)
	r["max_ms"] = round(to_ms(m.group(1)), 3) if m else None
	m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
	r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
				      map(int, m.groups()))) if m else {}
	m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
	r["non_2xx"] = int(m.group(1)) if m else 0
	r["errors"] = r["non_2xx"] + sum(r["socket_errors"].values())
	return r


def backend_ticks(args):
	"""CPU clock ticks used so far by the backends we started."""
	total = 0
	for p in args.backend_procs:
		# Only the stand-in NGINX has children (its worker).
		for pid in [p.pid] + (children_of(p.pid) if args.backend == "nginx" else []):
			st = proc_stat(pid)
			if st:
				total += st[1]
	return total


def wait_quiet(args):
	"""Between runs nothing of ours is busy, so whatever the two cores do is
	someone else's: wait (at most --wait-quiet seconds) until both are below
	10%. Returns the seconds waited."""
	if not args.wait_quiet or args.cpu_proxy is None:
		return 0.0
	t0 = time.monotonic()
	while True:
		a = [cpu_line(args.cpu_proxy), cpu_line(args.cpu_load)]
		time.sleep(0.5)
		b = [cpu_line(args.cpu_proxy), cpu_line(args.cpu_load)]
		busy = [100.0 * (y[0] - x[0]) / max(1, y[1] - x[1]) for x, y in zip(a, b)]
		waited = time.monotonic() - t0
		if max(busy) < 10 or waited >= args.wait_quiet:
			return round(waited, 1)


def wrk_script(args, name, text):
	"""Write a wrk Lua script into the run's temporary directory."""
	path = os.path.join(args.tmp, name + ".lua")
	with open(path, "w") as f:
		f.write(text)
	return path


def prefill_learn(args, target, n):
	"""Make the proxy learn N distinct sessions: GET / without a cookie, so
	the demo app answers each with a new DEMOSESSID, which the proxy learns
	(the demo app itself keeps only its newest 100,000). wrk stops after N
	answers (Lua counter). Returns (answers, seconds)."""
	marker = os.path.join(args.tmp, "prefill-%s-done" % target.name)
	lua = wrk_script(args, "count-" + target.name, LUA_COUNT % (n, marker))
	limit = 600
	argv = ["wrk", "-t1", "-c50", "-d%ds" % limit, "-s", lua, "http://127.0.0.1:%d/" % target.port]
	if args.cpu_load is not None:
		argv = ["taskset", "-c", str(args.cpu_load)] + argv
	t0 = time.monotonic()
	p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
	try:
		while p.poll() is None and not os.path.exists(marker) and time.monotonic() - t0 < limit:
			time.sleep(0.1)
		dt = time.monotonic() - t0
		if p.poll() is None:
			p.send_signal(signal.SIGINT)  # wrk prints its summary and exits
		out = p.communicate(timeout=10)[0]
	except BaseException:
		p.kill()
		p.wait()
		raise
	r = parse_wrk(out.decode(errors="replace"))
	return r["requests"] or 0, dt


def open_idle(target, n):
	"""N keep-alive connections to the proxy, one request each, left open."""
	socks = []
	for _ in range(n):
		s = socket.create_connection(("127.0.0.1", target.port), timeout=5)
		socks.append(s)
		s.sendall(b"GET " + TARGET.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
		read_response(s)
	return socks


def run_wrk(args, target, scen, duration):
	sc = SCENARIOS[scen]
	extra, conns = list(sc["args"]), getattr(args, sc["conns"])
	if sc["cookie"]:
		for h in target.headers:
			extra = extra + ["-H", h]
	if sc["lua"]:
		extra = extra + ["-s", wrk_script(args, scen, sc["lua"])]
	argv = ["wrk", "-t1", "-c%d" % conns, "-d%gs" % duration, "--latency"] + extra + \
	       ["%s://127.0.0.1:%d%s" % (getattr(target, "scheme", "http"), target.port,
				  sc["path"] or TARGET)]
	idle = []
	if sc["idle"] and target.main is not None:
		try:
			idle = open_idle(target, min(sc["idle"], args.idle_cap))
		except OSError as e:
			for s in idle:
				s.close()
			die("%s: could not open %d idle connections: %s" % (target.name, sc["idle"], e))
	if args.cpu_load is not None:
		argv = ["taskset", "-c", str(args.cpu_load)] + argv
	if target.main is not None and not target.main.alive():
		die("%s died (status %s); its output:\n%s"
		    % (target.name, target.main.p.returncode, target.main.log_tail()))
	cpu0 = target.cpu_ticks()
	core0 = cpu_line(args.cpu_proxy)
	load0 = cpu_line(args.cpu_load)
	back0 = backend_ticks(args)
	wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
	t0 = time.monotonic()
	# subprocess.run kills wrk if we are interrupted while it runs.
	try:
		cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
				    timeout=duration + 60)
	finally:
		for s in idle:
			s.close()
	wall = time.monotonic() - t0
	cpu1 = target.cpu_ticks()
	core1 = cpu_line(args.cpu_proxy)
	load1 = cpu_line(args.cpu_load)
	back1 = backend_ticks(args)
	# wrk is the only child reaped during the run: its CPU time is the delta.
	wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
	wrk_ticks = ((wrk1.ru_utime + wrk1.ru_stime) - (wrk0.ru_utime + wrk0.ru_stime)) * CLK_TCK
	out = cp.stdout.decode(errors="replace")
	r = parse_wrk(out)
	r.update({"proxy": target.name, "scenario": scen if target.threads == 1 else
		  "%s@%dt" % (scen, target.threads), "threads": target.threads, "connections": conns,
		  "wall_s": round(wall, 3), "wrk_status": cp.returncode, "idle_conns": len(idle)})
	if sc["body"] and r["rps"]:
		r["mb_s"] = round(r["rps"] * sc["body"] / 1e6, 1)
	if cp.returncode != 0 or r["rps"] is None or not r["requests"]:
		r["errors"] = max(r.get("errors", 0), 1)
		r["wrk_output"] = out
	# The same for the load core: what wrk and the backends did not use.
	if load0 and load1 and load1[1] > load0[1]:
		other = (load1[0] - load0[0]) - wrk_ticks - (back1 - back0)
		r["other_on_load_core_pct"] = round(max(0.0, 100.0 * other / (load1[1] - load0[1])), 1)
		# Near 100%, wrk and the backends (not the proxy) set the pace.
		r["load_core_busy_pct"] = round(100.0 * (load1[2] - load0[2]) / (load1[1] - load0[1]), 1)
	if target.main is not None:
		cpu_s = (cpu1 - cpu0) / CLK_TCK
		r["cpu_s"] = round(cpu_s, 3)
		r["cpu_us_per_req"] = round(cpu_s * 1e6 / r["requests"], 3) if r["requests"] else None
		if sc["body"] and r["requests"]:
			# CPU per MB moved: the figure to compare for bodies
			r["cpu_us_per_mb"] = round(cpu_s * 1e6 / (r["requests"] * sc["body"] / 1e6), 1)
		# How much of its core the proxy used, and how much of that core
		# went to anything else (other processes, steal): a proxy below
		# ~90% with others above a few % was disturbed, not slow.
		r["proxy_core_pct"] = round(100.0 * cpu_s / wall, 1) if wall > 0 else None
		if core0 and core1 and core1[1] > core0[1]:
			other = (core1[0] - core0[0]) - (cpu1 - cpu0)
			r["other_on_core_pct"] = round(max(0.0, 100.0 * other / (core1[1] - core0[1])), 1)
		rp = target.rss_pid()
		r["peak_rss_kb"] = proc_status_kb(rp, "VmHWM") if rp else None
	else:
		r["cpu_s"] = r["cpu_us_per_req"] = r["peak_rss_kb"] = r["proxy_core_pct"] = None
	if target.main is not None and not target.main.alive():
		r["errors"] = max(r["errors"], 1)
		r["died"] = True
	return r


# ---- idle connections ------------------------------------------------------

def read_response(s):
	"""Read one Content-Length-framed response (the demo app's and NGINX's)."""
	data = b""
	while b"\r\n\r\n" not in data:
		chunk = s.recv(4096)
		if not chunk:
			raise OSError("closed before the response head")
		data += chunk
	head, _, body = data.partition(b"\r\n\r\n")
	m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
	want = int(m.group(1)) if m else 0
	while len(body) < want:
		chunk = s.recv(4096)
		if not chunk:
			raise OSError("closed in the body")
		body += chunk
	return head


def measure_idle(target, n):
	"""Open N keep-alive connections (one request each), hold them idle and
	report the proxy's RSS growth per connection."""
	pid = target.rss_pid()
	time.sleep(0.3)
	before = proc_status_kb(pid, "VmRSS")
	socks = []
	failed = 0
	try:
		for _ in range(n):
			s = socket.create_connection(("127.0.0.1", target.port), timeout=5)
			socks.append(s)
			try:
				s.sendall(b"GET " + TARGET.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
				read_response(s)
			except OSError:
				failed += 1
		time.sleep(1.0)
		after = proc_status_kb(pid, "VmRSS")
		# Still open? A non-blocking peek says EAGAIN on a live idle socket.
		open_n = 0
		for s in socks:
			s.setblocking(False)
			try:
				if s.recv(1, socket.MSG_PEEK):
					open_n += 1  # unexpected bytes, but open
			except BlockingIOError:
				open_n += 1
			except OSError:
				pass
	finally:
		for s in socks:
			s.close()
	return {"proxy": target.name, "connections": n, "failed": failed,
		"still_open": open_n, "rss_before_kb": before, "rss_after_kb": after,
		"bytes_per_conn": round((after - before) * 1024 / n) if before and after else None}


# ---- report ----------------------------------------------------------------

def is_noisy(r):
	"""More than 10% of either core went to someone else during the run."""
	return max(r.get("other_on_core_pct") or 0, r.get("other_on_load_core_pct") or 0) > 10


def median(xs):
	xs = [x for x in xs if x is not None]
	return statistics.median(xs) if xs else None


def fmt(x, spec):
	return "-" if x is None else format(x, spec)


def summarize(runs, scenarios, proxies, rounds):
	"""Rows of the medians table and of the ratios table."""
	rows = []
	for scen in scenarios:
		for px in proxies:
			rs = [r for r in runs if r["scenario"] == scen and r["proxy"] == px]
			if not rs:
				continue
			rows.append({
				"scenario": scen, "proxy": px, "runs": len(rs),
				"rps": median(r["rps"] for r in rs),
				"p50_ms": median(r["p50_ms"] for r in rs),
				"p99_ms": median(r["p99_ms"] for r in rs),
				"cpu_us_per_req": median(r["cpu_us_per_req"] for r in rs),
				"mb_s": median(r.get("mb_s") for r in rs),
				"cpu_us_per_mb": median(r.get("cpu_us_per_mb") for r in rs),
				"proxy_core_pct": median(r["proxy_core_pct"] for r in rs),
				"other_on_core_pct": median(r.get("other_on_core_pct") for r in rs),
				"other_on_load_core_pct": median(r.get("other_on_load_core_pct") for r in rs),
				"load_core_busy_pct": median(r.get("load_core_busy_pct") for r in rs),
				"peak_rss_kb": max((r["peak_rss_kb"] for r in rs if r["peak_rss_kb"]), default=None),
				"flagged": sum(1 for r in rs if r["errors"]),
				"noisy": sum(1 for r in rs if is_noisy(r)),
				"errors": sum(r["errors"] for r in rs),
			})
	ratios = []
	if "bollard" in proxies:
		for scen in scenarios:
			for other in ("haproxy", "nginx"):
				if other not in proxies:
					continue
				for metric in ("rps", "cpu_us_per_req", "p99_ms"):
					per = []
					for rnd in range(rounds):
						a = [r for r in runs if r["round"] == rnd and r["scenario"] == scen and r["proxy"] == "bollard"]
						b = [r for r in runs if r["round"] == rnd and r["scenario"] == scen and r["proxy"] == other]
						if a and b and a[0][metric] and b[0][metric]:
							per.append(a[0][metric] / b[0][metric])
						else:
							per.append(None)
					if any(x is not None for x in per):
						ratios.append({"scenario": scen, "vs": other, "metric": metric,
							       "per_round": per, "median": median(per)})
	return rows, ratios


def ratio_of(ratios, scen, other, metric):
	for q in ratios:
		if q["scenario"] == scen and q["vs"] == other and q["metric"] == metric:
			return q["median"]
	return None


def render_summary(rows, ratios, scenarios):
	"""The one table: per scenario, each proxy's median req/s, p99 and CPU
	per request, and the bollard/HAProxy and bollard/NGINX ratios (medians of
	per-round ratios). Body scenarios show MB/s and CPU per MB instead."""
	by = {(r["scenario"], r["proxy"]): r for r in rows}
	out = ["| scenario | req/s bollard | HAProxy | NGINX | direct | p99 ms b / H / N "
	       "| CPU µs/req b / H / N | peak RSS MiB b / H / N "
	       "| b/H req/s | b/N req/s | b/H CPU | b/N CPU | b/H p99 | b/N p99 |",
	       "|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
	for sc in scenarios:
		rs = {px: by.get((sc, px)) for px in PROXIES}
		if not any(rs.values()):
			continue
		body = any(r and r.get("mb_s") for r in rs.values())

		def v(px, key, spec):
			r = rs.get(px)
			return fmt(r.get(key) if r else None, spec)
		key, spec, cpukey = ("mb_s", ".0f", "cpu_us_per_mb") if body else ("rps", ".0f", "cpu_us_per_req")
		unit = " MB/s" if body else ""
		out.append("| %s%s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s%s | %s / %s / %s "
			   "| %s | %s | %s | %s | %s | %s |" % (
			sc, " (MB/s; CPU µs per MB)" if body else "",
			v("bollard", key, spec) + unit if rs.get("bollard") else "-",
			v("haproxy", key, spec), v("nginx", key, spec), v("direct", key, spec),
			v("bollard", "p99_ms", ".2f"), v("haproxy", "p99_ms", ".2f"), v("nginx", "p99_ms", ".2f"),
			v("bollard", cpukey, ".1f"), v("haproxy", cpukey, ".1f"), v("nginx", cpukey, ".1f"),
			"" if not body else " (per MB)",
			fmt((rs["bollard"] or {}).get("peak_rss_kb", 0) / 1024 if rs.get("bollard") and rs["bollard"].get("peak_rss_kb") else None, ".1f"),
			fmt(rs["haproxy"]["peak_rss_kb"] / 1024 if rs.get("haproxy") and rs["haproxy"].get("peak_rss_kb") else None, ".1f"),
			fmt(rs["nginx"]["peak_rss_kb"] / 1024 if rs.get("nginx") and rs["nginx"].get("peak_rss_kb") else None, ".1f"),
			fmt(ratio_of(ratios, sc, "haproxy", "rps"), ".2f"),
			fmt(ratio_of(ratios, sc, "nginx", "rps"), ".2f"),
			fmt(ratio_of(ratios, sc, "haproxy", "cpu_us_per_req"), ".2f"),
			fmt(ratio_of(ratios, sc, "nginx", "cpu_us_per_req"), ".2f"),
			fmt(ratio_of(ratios, sc, "haproxy", "p99_ms"), ".2f"),
			fmt(ratio_of(ratios, sc, "nginx", "p99_ms"), ".2f")))
	return "\n".join(out)


def draw_chart(ratios, scenarios, outdir, title):
	"""bench/results/latest.svg with gnuplot (Debian gnuplot-nox): per
	scenario, bars of the median bollard/HAProxy and bollard/NGINX ratios of
	req/s and of CPU per request, with lines at 1.0 and at the 1.2 target.
	Returns the path, or None when gnuplot is missing or fails."""
	if shutil.which("gnuplot") is None:
		log("bench: gnuplot not found (scripts/install-deps.sh bench): no chart")
		return None
	dat = os.path.join(outdir, "latest.dat")
	svg = os.path.join(outdir, "latest.svg")
	with open(dat, "w") as f:
		f.write("# scenario rps_vs_haproxy rps_vs_nginx cpu_vs_haproxy cpu_vs_nginx\n")
		for sc in scenarios:
			vals = [ratio_of(ratios, sc, o, m) for m in ("rps", "cpu_us_per_req") for o in ("haproxy", "nginx")]
			if all(x is None for x in vals):
				continue
			f.write("%s %s\n" % (sc.replace("@", "-"), " ".join("NaN" if x is None else "%.4f" % x for x in vals)))
	gp = """set terminal svg size 1100,600 dynamic font 'sans,11' background '#ffffff'
set output '%s'
set title "%s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key below horizontal
set ylabel 'bollard / other (median of per-round ratios)'
set yrange [0:*]
set grid ytics
set xtics rotate by -30
set datafile missing 'NaN'
plot '%s' using 2:xtic(1) title 'req/s vs HAProxy (higher is better)' lc rgb '#1f77b4', \
     '' using 3 title 'req/s vs NGINX' lc rgb '#aec7e8', \
     '' using 4 title 'CPU/req vs HAProxy (lower is better)' lc rgb '#d62728', \
     '' using 5 title 'CPU/req vs NGINX' lc rgb '#ff9896', \
     1.0 with lines lc rgb 'black' dt 2 title 'parity', \
     1.2 with lines lc rgb '#2ca02c' dt 3 title 'req/s target 1.2 vs HAProxy'
""" % (svg, title.replace('"', "'"), dat)
	try:
		cp = subprocess.run(["gnuplot"], input=gp.encode(), stdout=subprocess.PIPE,
				    stderr=subprocess.STDOUT, timeout=30)
	except (OSError, subprocess.SubprocessError) as e:
		log("bench: gnuplot failed: %s" % e)
		return None
	if cp.returncode != 0:
		log("bench: gnuplot failed: %s" % cp.stdout.decode(errors="replace")[-400:])
		return None
	return svg


def render_tables(rows, ratios, idle):
	out = []
	out.append("| scenario | proxy | req/s | p50 ms | p99 ms | CPU µs/req | proxy core % "
		   "| load core busy % | noise proxy core % | noise load core % | noisy runs "
		   "| peak RSS MiB | runs with errors |")
	out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for r in rows:
		out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
			r["scenario"], r["proxy"], fmt(r["rps"], ".0f"), fmt(r["p50_ms"], ".3f"),
			fmt(r["p99_ms"], ".3f"), fmt(r["cpu_us_per_req"], ".2f"),
			fmt(r["proxy_core_pct"], ".0f"), fmt(r["load_core_busy_pct"], ".0f"),
			fmt(r["other_on_core_pct"], ".0f"), fmt(r["other_on_load_core_pct"], ".0f"),
			"%d/%d" % (r["noisy"], r["runs"]),
			fmt(r["peak_rss_kb"] / 1024 if r["peak_rss_kb"] else None, ".1f"),
			"%d/%d%s" % (r["flagged"], r["runs"], " FLAGGED" if r["flagged"] else "")))
	if ratios:
		out.append("")
		out.append("| scenario | ratio | metric | per round | median |")
		out.append("|---|---|---|---|---:|")
		for q in ratios:
			out.append("| %s | bollard/%s | %s | %s | %s |" % (
				q["scenario"], q["vs"],
				{"rps": "req/s (higher is better)", "cpu_us_per_req": "CPU/req (lower is better)",
				 "p99_ms": "p99 (lower is better)"}[q["metric"]],
				" ".join(fmt(x, ".3f") for x in q["per_round"]), fmt(q["median"], ".3f")))
	if idle:
		out.append("")
		out.append("| idle keep-alive connections | proxy | RSS before MiB | RSS after MiB | bytes/connection | still open |")
		out.append("|---|---|---:|---:|---:|---:|")
		for i in idle:
			out.append("| %d | %s | %s | %s | %s | %d |" % (
				i["connections"], i["proxy"],
				fmt(i["rss_before_kb"] / 1024 if i["rss_before_kb"] else None, ".1f"),
				fmt(i["rss_after_kb"] / 1024 if i["rss_after_kb"] else None, ".1f"),
				fmt(i["bytes_per_conn"], "d"), i["still_open"]))
	return "\n".join(out)


def first_line(argv):
	try:
		cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=5)
		return cp.stdout.decode(errors="replace").strip().splitlines()[0]
	except (OSError, subprocess.SubprocessError, IndexError):
		return "unknown"


def machine_info(args, proxies):
	model = "unknown"
	try:
		with open("/proc/cpuinfo") as f:
			for line in f:
				if line.startswith("model name"):
					model = line.split(":", 1)[1].strip()
					break
	except OSError:
		pass
	info = {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
		"wrk": first_line(["wrk", "-v"]), "haproxy": first_line(["haproxy", "-v"]),
		"nginx": first_line(["nginx", "-v"])}
	if "bollard" in proxies:
		info["bollard"] = first_line([args.bollard, "--version"])
		# Read-only: which commit the working tree is on (it may hold more).
		info["git_head"] = first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
	return info


# ---- main ------------------------------------------------------------------

def parse_args(argv):
	ap = argparse.ArgumentParser(
		description="Side-by-side benchmark: bollard vs HAProxy vs NGINX (and the "
			    "backends directly), one worker thread each.")
	ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
	ap.add_argument("--duration", type=float, default=3, help="seconds per run (default 3)")
	ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS,
			help="comma list of: %s (default %s)" % (",".join(SCENARIOS), DEFAULT_SCENARIOS))
	ap.add_argument("--threads", default="1,2",
			help="worker threads per proxy: 1, 2 or 1,2 (default 1,2: every scenario "
			     "with one thread, then --scenarios-2t with two)")
	ap.add_argument("--scenarios-2t", default=DEFAULT_SCENARIOS_2T,
			help="scenarios of the two-thread pass (default %s)" % DEFAULT_SCENARIOS_2T)
	ap.add_argument("--learn-entries", type=int, default=1000000,
			help="sessions the proxy learns before the learn scenario (default 1000000)")
	ap.add_argument("--body-connections", type=int, default=2,
			help="wrk -c for the 10 MiB upload/download scenarios (default 2)")
	ap.add_argument("--full", action="store_true",
			help="5 rounds of 10 s: longer and steadier (about 40 minutes)")
	ap.add_argument("--proxies", default=",".join(PROXIES),
			help="comma list of: %s (default all)" % ",".join(PROXIES))
	ap.add_argument("--quick", action="store_true",
			help="1 round of 2 s, short warm-up: a smoke test, not a measurement")
	ap.add_argument("--connections", type=int, default=50, help="wrk -c for keepalive (default 50)")
	ap.add_argument("--close-connections", type=int, default=10,
			help="wrk -c for the connection-per-request scenario (default 10)")
	ap.add_argument("--idle", type=int, default=0, metavar="N",
			help="also measure RSS growth per idle keep-alive connection with N "
			     "connections per proxy (e.g. 2000; default off)")
	ap.add_argument("--warmup", type=float, default=1.0, help="seconds of unrecorded warm-up per proxy")
	ap.add_argument("--backend", choices=("demo", "nginx"), default="demo",
			help="backends: build/bollard-demo-app (default) or a stand-in NGINX")
	ap.add_argument("--bollard", default=os.path.join(ROOT, "build", "bollard"), help="bollard binary")
	ap.add_argument("--haproxy-reuse", default="always", choices=("safe", "aggressive", "always"),
			help="HAProxy http-reuse mode (default always, what bollard's and NGINX's "
			     "server connection pools do; see bench/README.md)")
	ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
			help="before each run, wait up to S seconds for both cores to be "
			     "less than 10%% busy with other processes (default 0: do not wait)")
	ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
	ap.add_argument("--out", default=RESULTS, help="results directory (default bench/results)")
	ap.add_argument("--keep-tmp", action="store_true", help="keep configurations and logs")
	bench_tls.add_args(ap)
	args = ap.parse_args(argv)
	args.argv = list(argv)
	bench_tls.check_args(ap, args)
	# BENCH_ONLY=plain or BENCH_ONLY=tls (make bench BENCH_ONLY=tls): one part only
	# (BENCH_ONLY=shared never gets here: see the end of the file)
	args.only = os.environ.get("BENCH_ONLY", "")
	if args.only not in ("", "plain", "tls"):
		ap.error("BENCH_ONLY=%s: plain, tls or shared" % args.only)
	if args.quick:
		args.rounds, args.duration, args.warmup = 1, 2, 0.5
		args.learn_entries = min(args.learn_entries, 20000)
	if args.full:
		args.rounds, args.duration = 5, 10
	args.scenarios = [s for s in args.scenarios.split(",") if s]
	args.scenarios_2t = [s for s in args.scenarios_2t.split(",") if s]
	try:
		args.threads = sorted({int(x) for x in args.threads.split(",") if x})
	except ValueError:
		ap.error("--threads: 1, 2 or 1,2")
	if not args.threads or any(t not in (1, 2) for t in args.threads):
		ap.error("--threads: 1, 2 or 1,2")
	if args.threads == [2]:
		args.scenarios_2t = args.scenarios
	args.proxies = [p for p in args.proxies.split(",") if p]
	for s in args.scenarios + args.scenarios_2t:
		if s not in SCENARIOS:
			ap.error("unknown scenario %r (known: %s)" % (s, ", ".join(SCENARIOS)))
	for p in args.proxies:
		if p not in PROXIES:
			ap.error("unknown proxy %r (known: %s)" % (p, ", ".join(PROXIES)))
	if args.rounds < 1 or args.duration <= 0 or args.idle < 0:
		ap.error("--rounds >= 1, --duration > 0, --idle >= 0")
	if args.no_pin or (os.cpu_count() or 1) < 2:
		if not args.no_pin:
			log("bench: fewer than 2 CPUs: not pinning")
		args.cpu_load = args.cpu_proxy = args.cpu_proxy_2t = None
	else:
		# Two threads on two cores: the proxy may use both, and shares CPU 0
		# with wrk and the backends (which stay on CPU 0); see bench/README.md.
		args.cpu_load, args.cpu_proxy, args.cpu_proxy_2t = 0, 1, "0,1"
	return args


def raise_nofile(args):
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
	if soft < want:
		resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
	args.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
	# The idle clients are ours, and the proxy holds one descriptor each (plus
	# the pool toward the backends); keep a margin for everything else.
	limit = min(args.nofile, MAXCONN) - 200
	args.idle_cap = max(limit, 1)
	if args.idle > limit:
		log("bench: --idle %d exceeds what the descriptor limit (%d) and maxconn (%d) "
		    "allow; using %d" % (args.idle, args.nofile, MAXCONN, limit))
		args.idle = max(limit, 1)


def on_sigterm(signum, frame):
	# SIGTERM (timeout(1), a CI runner) stops the run like Ctrl-C does, so
	# the finally below stops every process we started.
	raise KeyboardInterrupt


def main(argv):
	signal.signal(signal.SIGTERM, on_sigterm)
	args = parse_args(argv)
	for tool in ("wrk", "taskset", "haproxy", "nginx"):
		if shutil.which(tool) is None and (tool not in ("haproxy", "nginx") or tool in args.proxies):
			die("%s not found (scripts/install-deps.sh bench installs it)" % tool)
	if "bollard" in args.proxies and not os.access(args.bollard, os.X_OK):
		die("%s not found: build it (`make build/bollard`), or leave it out "
		    "with --proxies direct,haproxy,nginx" % args.bollard)
	raise_nofile(args)
	# Versions now, not at the end: the binaries may be rebuilt meanwhile
	# (the processes we run keep the files they started from).
	info = machine_info(args, args.proxies)
	rc = 0 if args.only == "tls" else run_plain(args, argv, info)
	if args.only != "plain" and rc in (0, 1):
		rc = max(rc, bench_tls.main(args, info))
	return rc


def run_plain(args, argv, info):
	"""The cleartext scenarios; returns the exit status."""
	# The plan: (scenario, threads, proxy) triples run in every round.
	plan = []
	for threads, scens in ((1, args.scenarios), (2, args.scenarios_2t if 2 in args.threads else [])):
		if threads not in args.threads:
			continue
		for sc in scens:
			for px in args.proxies:
				v = SCENARIOS[sc]["variant"]
				if px == "direct" and (not SCENARIOS[sc]["direct"] or threads != 1):
					continue
				if px != "direct" and px not in VARIANTS[v]:
					continue
				plan.append((sc, threads, px))
	nrun = args.rounds * len(plan)
	ntargets = len({(px, SCENARIOS[sc]["variant"], t) for sc, t, px in plan})
	est = sum(args.duration + 0.5 + (2 if SCENARIOS[sc]["idle"] else 0) for sc, t, px in plan) * args.rounds
	est += ntargets * (args.warmup + 0.5) + 3
	if "learn" in args.scenarios and 1 in args.threads:
		# filling the table: ~25-40k sessions/s through a proxy on this machine
		est += sum(1 for px in args.proxies if px in VARIANTS["learn"]) * args.learn_entries / 30000.0
	if args.idle:
		est += len([p for p in args.proxies if p != "direct"]) * (3 + args.idle / 2000.0)
	log("bench: %d runs (%d rounds x %d scenario/thread/proxy combinations) of %gs: about %.0fs in total%s"
	    % (nrun, args.rounds, len(plan), args.duration, est,
	       " (+ up to %.0fs waiting for quiet cores)" % (nrun * args.wait_quiet)
	       if args.wait_quiet else ""))
	if args.cpu_proxy is not None:
		log("bench: one-thread runs: proxy on CPU %d; wrk and backends on CPU %d; two-thread runs: "
		    "proxy on CPUs %s (sharing CPU %d with wrk and the backends)"
		    % (args.cpu_proxy, args.cpu_load, args.cpu_proxy_2t, args.cpu_load))

	tmp = tempfile.mkdtemp(prefix="bollard-bench-")
	args.tmp = tmp
	prefilled = {}
	procs = []
	runs, idle = [], []
	started = datetime.datetime.now(datetime.timezone.utc)
	try:
		backends = start_backends(args, tmp, procs)
		args.backend_procs = list(procs)
		log("bench: backends %s" % ", ".join("%s=:%d" % b for b in backends))
		targets = {}
		for sc, threads, px in plan:
			variant = SCENARIOS[sc]["variant"]
			if (px, variant, threads) in targets:
				continue
			if px == "direct":
				# The physical limit: wrk straight to one backend.
				targets[px, variant, threads] = Target("direct", backends[0][1])
				continue
			t = start_proxy(px, variant, threads, args, tmp, backends, procs)
			targets[px, variant, threads] = t
			log("bench: %s%s%s on 127.0.0.1:%d (pid %d)" % (
				px, "" if variant == "plain" else " (" + variant + ")",
				"" if threads == 1 else " %d threads" % threads, t.port, t.main.pid))
			if variant == "learn" and "learn" in args.scenarios and threads == 1:
				n, dt = prefill_learn(args, t, args.learn_entries)
				log("bench: %s (learn): %d sessions learned in %.1fs (%.0f/s)"
				    % (px, n, dt, n / dt if dt else 0))
				prefilled[px] = {"answers": n, "seconds": round(dt, 1),
						 "rss_kb": proc_status_kb(t.rss_pid(), "VmRSS")}
		for px in args.proxies:
			if px != "direct" and not any(p == px for _, _, p in plan):
				log("bench: %s has no equivalent configuration in the chosen scenarios" % px)
		if args.warmup > 0:
			for t in targets.values():
				run_wrk(args, t, "keepalive", args.warmup)

		# Before the rounds: idle1k leaves 1000 connections' worth of freed
		# memory resident in the plain instances, which would hide the cost.
		if args.idle:
			for px in args.proxies:
				if px != "direct" and (px, "plain", 1) in targets:
					i = measure_idle(targets[px, "plain", 1], args.idle)
					idle.append(i)
					log("  idle %-8s %d connections: %s bytes/connection (%d still open)"
					    % (px, i["connections"], fmt(i["bytes_per_conn"], "d"), i["still_open"]))
		for rnd in range(args.rounds):
			order = args.proxies[rnd % len(args.proxies):] + args.proxies[:rnd % len(args.proxies)]
			for sc, threads in dict.fromkeys((sc, t) for sc, t, _ in plan):
				for px in order:
					if (sc, threads, px) not in plan:
						continue
					t = targets[px, SCENARIOS[sc]["variant"], threads]
					waited = wait_quiet(args)
					r = run_wrk(args, t, sc, args.duration)
					r["round"] = rnd
					r["waited_quiet_s"] = waited
					runs.append(r)
					log("  round %d %-13s %-8s %9.0f req/s  p50 %7.3f ms  p99 %8.3f ms  cpu %s us/req"
					    "  core %s%% (others %s%%; load core busy %s%%, others %s%%)%s%s"
					    % (rnd + 1, r["scenario"], px, r["rps"] or 0, r["p50_ms"] or 0, r["p99_ms"] or 0,
					       fmt(r["cpu_us_per_req"], ".2f"), fmt(r["proxy_core_pct"], ".0f"),
					       fmt(r.get("other_on_core_pct"), ".0f"),
					       fmt(r.get("load_core_busy_pct"), ".0f"),
					       fmt(r.get("other_on_load_core_pct"), ".0f"),
					       "  %.0f MB/s, %s us CPU/MB" % (r["mb_s"], fmt(r.get("cpu_us_per_mb"), ".0f"))
					       if r.get("mb_s") else "",
					       "  ERRORS %d" % r["errors"] if r["errors"] else ""))
					if r.get("died"):
						die("%s died during the run; its output:\n%s" % (px, t.main.log_tail()))

	except KeyboardInterrupt:
		log("bench: interrupted; stopping what was started")
		return 130
	finally:
		stop_all(procs, tmp, args.keep_tmp)

	scen_names = list(dict.fromkeys(r["scenario"] for r in runs))
	rows, ratios = summarize(runs, scen_names, args.proxies, args.rounds)
	summary = render_summary(rows, ratios, scen_names)
	table = summary + "\n\nDetails (medians over rounds; ratios per round):\n\n" + \
		render_tables(rows, ratios, idle)
	if prefilled:
		table += "\n\n| learn: table filled with | proxy | answers | seconds | VmRSS after MiB |\n|---|---|---:|---:|---:|\n" + \
			"\n".join("| %d sessions | %s | %d | %.1f | %s |" % (
				args.learn_entries, px, v["answers"], v["seconds"],
				fmt(v["rss_kb"] / 1024 if v["rss_kb"] else None, ".1f"))
				for px, v in prefilled.items())
	notes = []
	noisy = [r for r in runs if is_noisy(r)]
	if noisy:
		notes.append("Warning: in %d of %d runs other processes (or the hypervisor) took more "
			     "than 10%% of the proxy's core or of the load core (the \"noise\" columns): "
			     "req/s and latency are unreliable; CPU/request and per-round ratios less so."
			     % (len(noisy), len(runs)))
	flagged = [r for r in runs if r["errors"]]
	if flagged:
		notes.append("%d run(s) had errors (socket errors or non-2xx/3xx answers), flagged "
			     "in the table; see latest.json." % len(flagged))
	cmd = "bench/bench.py " + " ".join(argv)
	md = ["# bollard benchmark results", "",
	      "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
	      "- command: `%s`" % cmd.strip(),
	      "- machine: %s CPUs, %s, Linux %s" % (info["nproc"], info["cpu"], info["kernel"]),
	      "- versions: %s; %s; %s%s" % (info["haproxy"], info["nginx"], info["wrk"],
					   "; %s (working tree at %s)" % (info["bollard"], info["git_head"])
					   if "bollard" in info else ""),
	      "- %d round(s) of %gs per run, backends: %s, target %s, HAProxy http-reuse %s, pinning: %s"
	      % (args.rounds, args.duration, args.backend, TARGET, args.haproxy_reuse,
		 "proxy CPU %d, wrk+backends CPU %d" % (args.cpu_proxy, args.cpu_load)
		 if args.cpu_proxy is not None else "none"),
	      "- waiting for quiet cores before each run: %s" % (
		      "up to %gs (waited %.0fs in total)" % (args.wait_quiet, sum(r.get("waited_quiet_s", 0) for r in runs))
		      if args.wait_quiet else "no"),
	      "- scenarios: " + "; ".join(
		      "%s = %s" % (sc, SCENARIOS[sc]["desc"].format(
			      c=getattr(args, SCENARIOS[sc]["conns"]), learn=args.learn_entries,
			      idle=SCENARIOS[sc]["idle"]))
		      for sc in args.scenarios) +
	      ("; NAME@2t = the same with two worker threads per proxy (bollard `threads 2`, "
	       "HAProxy `nbthread 2`, NGINX `worker_processes 2`), the proxy allowed on both CPUs"
	       if 2 in args.threads else ""),
	      "", "Medians over rounds; peak RSS is the largest VmHWM seen (NGINX: the worker). "
	      "Ratios are computed per round (same round, same scenario).", "", table, ""] + \
	     [n + "\n" for n in notes]
	os.makedirs(args.out, exist_ok=True)
	svg = draw_chart(ratios, scen_names, args.out, "bollard vs HAProxy 2.6 and NGINX 1.22, %s (make bench)"
			 % started.strftime("%Y-%m-%d %H:%M UTC"))
	if svg:
		md += ["Chart: `latest.svg` (ratios of req/s and CPU per request).", ""]
	with open(os.path.join(args.out, "latest.md"), "w") as f:
		f.write("\n".join(md))
	with open(os.path.join(args.out, "latest.json"), "w") as f:
		json.dump({"date": started.isoformat(), "command": cmd.strip(), "machine": info,
			   "args": {k: v for k, v in vars(args).items() if k != "backend_procs"},
			   "runs": runs, "medians": rows, "ratios": ratios, "idle": idle,
			   "learn_prefill": prefilled}, f, indent=1)
	log("")
	log(table)
	log("")
	for n in notes:
		log("bench: " + n)
	log("bench: wrote %s and latest.json" % os.path.join(args.out, "latest.md"))
	return 1 if flagged else 0


if __name__ == "__main__":
	# BENCH_ONLY=shared: only the shared-tables rows (bench/bench_shared.py),
	# which otherwise follow the rest
	only = os.environ.get("BENCH_ONLY", "")
	rc = 0 if only == "shared" else main(sys.argv[1:])
	if only in ("", "shared") and rc in (0, 1):
		import bench_shared
		rc = max(rc, bench_shared.main(sys.argv[1:]))
	sys.exit(rc)
