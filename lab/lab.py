#!/usr/bin/python3
"""The alternatives lab (SPEC 14, `make lab`): stickiness and its
alternatives, measured on this machine with real stores, through bollard.

For each architecture (ARCHS below) the lab starts the demo apps with that
architecture's session store, bollard in front of them, and the same
simulated users: each one a browser with a cookie jar and a keep-alive
connection, visiting pages and adding items to its cart at a fixed pace,
and checking after every answer that the visit count and the cart are the
ones it last wrote. A new session where it had one is a LOST session; an
older count is a STALE one; a higher count than written is a DUPLICATE (a
non-idempotent request retried). Users end their session after a while and
new ones arrive, as on a real site.

The run of one architecture is a sequence of phases of equal length:
  steady      the offered load, nothing happens: req/s, p50/p99, bytes/req
  capacity    the same users without think time: the most req/s (the load
              generator shares the machine: compare rows, not machines)
  kill-app    SIGKILL of app1 at the start of the phase
  kill-store  SIGKILL of the store, restarted after --outage seconds
              (skipped when the architecture has no store)
  add-server  a new app server added with `bollard ctl add server`; the
              load imbalance (max/mean requests per live server) after it
Results: lab/results/latest.md (one table, a row per architecture, then
the phases), latest.json (everything, for tests), latest.svg (gnuplot).

Bounded: the whole run stops at --budget seconds (default 570) with what
it has; every process it started is stopped by PID at the end, on an
error, on Ctrl-C and on SIGTERM. Progress goes to stderr as it runs.
stdlib only; run with /usr/bin/python3.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import stores  # noqa: E402

# name, label, bollard persistence, app store ("memory", "jwt" or a kind of
# lab/stores.py), memory replication to the next app
ARCHS = [
	("sticky-memory", "sticky + in-memory", "cookie", "memory", False),
	("sticky-replica", "sticky + replica", "cookie-replica", "memory", True),
	("stateless-redis", "stateless + Redis", None, "redis", False),
	("stateless-memcached", "stateless + Memcached", None, "memcached", False),
	("stateless-postgresql", "stateless + PostgreSQL", None, "postgresql", False),
	("client-side-jwt", "client-side (JWT)", None, "jwt", False),
	("no-persistence", "no persistence (baseline)", None, "memory", False),
]
PHASES = ["steady", "capacity", "kill-app", "kill-store", "add-server"]
NAPPS = 3
REQ_TIMEOUT = 5.0


def log(msg):
	sys.stderr.write("lab: %s\n" % msg)
	sys.stderr.flush()


class Stop(Exception):
	"""SIGTERM or SIGHUP: stop like Ctrl-C."""


def on_signal(signum, frame):
	raise Stop("signal %d" % signum)


# ---------------------------------------------------------------- processes

class Procs:
	"""Every process the lab started, stopped by PID in reverse order."""

	def __init__(self):
		self.procs = []
		self.servers = []
		self.started = []         # (pid, argv[0]) of every process, for the record

	def start(self, argv, logpath, **kw):
		with open(logpath, "ab") as f:
			p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
					     stdin=subprocess.DEVNULL, **kw)
		self.procs.append(p)
		self.started.append((p.pid, argv[0]))
		return p

	def record_servers(self):
		for s in self.servers:
			for pid in s.pids():
				if (pid, s.name) not in self.started:
					self.started.append((pid, s.name))

	def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
		if p.poll() is not None:
			return
		try:
			os.kill(p.pid, sig)
			p.wait(timeout)
		except ProcessLookupError:
			pass
		except subprocess.TimeoutExpired:
			os.kill(p.pid, signal.SIGKILL)
			p.wait(5)

	def stop_all(self):
		for p in reversed(self.procs):
			self.stop(p)
		self.procs = []
		for s in reversed(self.servers):
			s.close()
		self.servers = []


def tail(path, n=1500):
	try:
		with open(path, "rb") as f:
			return f.read()[-n:].decode(errors="replace")
	except OSError:
		return ""


def wait_port(port, proc, what, logpath, timeout=15.0):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if proc is not None and proc.poll() is not None:
			raise RuntimeError("%s exited with %s: %s" % (what, proc.returncode, tail(logpath)))
		try:
			with socket.create_connection(("127.0.0.1", port), timeout=0.5):
				return
		except OSError:
			time.sleep(0.05)
	raise RuntimeError("%s did not listen on %d within %.0fs: %s"
			   % (what, port, timeout, tail(logpath)))


def cpu_of(pids):
	return sum(stores.cpu_seconds(p) for p in pids)


# ---------------------------------------------------------------- one architecture

class Setup:
	"""The demo apps and bollard of one architecture."""

	def __init__(self, args, procs, workdir, arch, store):
		self.args, self.procs, self.dir = args, procs, workdir
		self.name, self.label, self.persist, self.kind, self.replicate = arch
		self.store = store
		self.apps = {}           # name -> (port, Popen)
		self.ports = {}
		self.bport = stores.free_port()
		# relative to the folder bollard and ctl run in: a socket path is
		# limited to 107 bytes, and temporary folders can be deep
		self.sock = "bollard.sock"
		self.bollard = None

	def store_args(self):
		if self.kind == "memory":
			return ["--store", "memory"]
		if self.kind == "jwt":
			return ["--store", "jwt", "--key-file", os.path.join(self.dir, "jwt.key")]
		return ["--store", self.store.url()]

	def start_app(self, name, replicate_to=None):
		port = self.ports.get(name) or stores.free_port()
		self.ports[name] = port
		argv = [self.args.demo, "--name", name, "--port", str(port), "--threads", "1"]
		argv += self.store_args()
		if replicate_to:
			argv += ["--replicate-to", "127.0.0.1:%d" % self.ports[replicate_to]]
		logpath = os.path.join(self.dir, "%s.log" % name)
		p = self.procs.start(argv, logpath)
		wait_port(port, p, "demo app %s" % name, logpath)
		self.apps[name] = (port, p)
		return port

	def start(self):
		names = ["app%d" % (i + 1) for i in range(NAPPS)]
		for n in names:
			self.ports[n] = stores.free_port()
		for i, n in enumerate(names):
			self.start_app(n, names[(i + 1) % NAPPS] if self.replicate else None)
		lines = ["global", "    threads 1",
			 "    log stdout\n    log-format json" if self.args.access_log else "    log off",
			 "    admin-socket %s" % self.sock,
			 "", "defaults", "    timeout connect 500ms", "    timeout client 30s",
			 "    timeout server 5s", "    timeout http-request 5s",
			 "    timeout http-keep-alive 30s", "    retries 2", "",
			 "frontend fe", "    bind 127.0.0.1:%d" % self.bport, "    default-backend be",
			 "", "backend be", "    balance roundrobin"]
		if self.persist:
			lines.append("    persist cookie BOLLARD insert")
		lines.append("    on-server-down %s" % ("replica" if self.persist == "cookie-replica"
							 else "redispatch"))
		lines.append("    health http GET /healthz expect 200 interval 300ms timeout 200ms "
			     "rise 2 fall 1")
		for i, n in enumerate(names):
			rep = " replica %s" % names[(i + 1) % NAPPS] if self.persist == "cookie-replica" else ""
			lines.append("    server %s 127.0.0.1:%d%s" % (n, self.ports[n], rep))
		conf = os.path.join(self.dir, "bollard.conf")
		with open(conf, "w") as f:
			f.write("\n".join(lines) + "\n")
		logpath = os.path.join(self.dir, "bollard.log")
		self.bollard = self.procs.start([self.args.bollard, "-c", conf], logpath, cwd=self.dir)
		wait_port(self.bport, self.bollard, "bollard", logpath)

	def ctl(self, cmd):
		cp = subprocess.run([self.args.bollard, "ctl", "-s", self.sock] + cmd.split(),
				    capture_output=True, text=True, timeout=15, cwd=self.dir)
		if cp.returncode != 0:
			raise RuntimeError("bollard ctl %s: %s%s" % (cmd, cp.stdout, cp.stderr))
		return cp.stdout

	def kill_app(self, name):
		port, p = self.apps.pop(name)
		p.kill()
		p.wait(5)

	def add_app(self, name):
		rep = "app2" if self.replicate else None
		port = self.start_app(name, rep)
		self.ctl("add server be/%s 127.0.0.1:%d state ready" % (name, port))

	def pids(self):
		out = [p.pid for _, p in self.apps.values() if p.poll() is None]
		if self.bollard and self.bollard.poll() is None:
			out.append(self.bollard.pid)
		return out

	def stop(self):
		if self.bollard:
			self.procs.stop(self.bollard)
		for _, p in self.apps.values():
			self.procs.stop(p)


# ---------------------------------------------------------------- simulated users

class User:
	"""One browser: a cookie jar, the session it last saw, what it wrote."""

	def __init__(self, uid):
		self.uid = uid
		self.jar = {}
		self.sid = None
		self.visits = 0
		self.total = 0
		self.cart = []
		self.pend_visits = 0           # requests whose outcome is unknown
		self.pend_items = []
		self.server = None             # of the last good answer
		self.done = 0

	def cookie_header(self):
		if not self.jar:
			return ""
		return "Cookie: %s\r\n" % "; ".join("%s=%s" % kv for kv in self.jar.items())

	def take_cookies(self, headers):
		for name, value in headers:
			if name != "set-cookie":
				continue
			nv, _, attrs = value.partition(";")
			k, _, v = nv.strip().partition("=")
			if "max-age=0" in attrs.lower().replace(" ", "") or not v:
				self.jar.pop(k, None)
			else:
				self.jar[k] = v

	def check(self, op, item, j):
		"""Compare an answer with what this user wrote; returns None (as
		expected) or "lost", "stale", "dup". Requests that failed (an
		error, no answer) may or may not have been applied: their effect is
		allowed, not required."""
		verdict = None
		if self.sid is not None:
			ev = self.visits + (op == "visit")
			et = self.total + (op == "add")
			if j["new"] or j["session"] != self.sid:
				verdict = "lost"
			elif j["visits"] < ev or j["cart_total"] < et:
				verdict = "stale"
			elif (j["visits"] > ev + self.pend_visits or
			      j["cart_total"] > et + len(self.pend_items)):
				verdict = "dup"
			elif (not self.pend_items and
			      j["cart"] != (self.cart + ([item] if op == "add" else []))[:16]):
				verdict = "stale"          # the right count, the wrong items
		self.sid = j["session"]
		self.visits, self.total = j["visits"], j["cart_total"]
		self.cart = list(j["cart"])
		self.pend_visits, self.pend_items = 0, []
		return verdict

	def unknown(self, op, item):
		if op == "visit":
			self.pend_visits += 1
		else:
			self.pend_items.append(item)


class Load:
	"""The users, driven by asyncio: one coroutine per user slot."""

	def __init__(self, args, port):
		self.args, self.port = args, port
		self.phase = None
		self.interval = args.users / args.rate
		self.epoch = 0                     # bumped when interval changes
		self.stopping = False
		self.next_uid = 0
		self.users = {}                    # slot -> User
		self.stats = {}                    # phase -> Counters
		self.rng = random.Random(14)

	def counters(self, phase=None):
		phase = phase or self.phase
		c = self.stats.get(phase)
		if c is None:
			c = self.stats[phase] = {
				"requests": 0, "ok": 0, "errors": 0, "lost": 0, "stale": 0, "dup": 0,
				"lat": [], "bytes": 0, "servers": {}, "lost_users": {}, "codes": {},
				"answered_users": set()}
		return c

	async def open(self):
		r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port),
					      REQ_TIMEOUT)
		return r, w

	async def exchange(self, conn, u, op, item):
		r, w = conn
		if op == "visit":
			req = ("GET /?format=json HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n"
			       "%s\r\n" % u.cookie_header())
		else:
			body = "item=%s" % item
			req = ("POST /cart/add HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n"
			       "Content-Type: application/x-www-form-urlencoded\r\n"
			       "Content-Length: %d\r\n%s\r\n%s" % (len(body), u.cookie_header(), body))
		data = req.encode()
		w.write(data)
		await w.drain()
		head = await r.readuntil(b"\r\n\r\n")
		lines = head.decode("latin-1").split("\r\n")
		status = int(lines[0].split(" ", 2)[1])
		headers = []
		for ln in lines[1:]:
			if ln:
				k, _, v = ln.partition(":")
				headers.append((k.strip().lower(), v.strip()))
		hd = dict(headers)
		if hd.get("transfer-encoding", "").lower() == "chunked":
			body, wire = b"", 0
			while True:                # RFC 9112 7.1, without trailers
				line = await r.readuntil(b"\r\n")
				size = int(line.split(b";")[0], 16)
				chunk = await r.readexactly(size + 2)
				wire += len(line) + len(chunk)
				if size == 0:
					break
				body += chunk[:-2]
		else:
			n = int(hd.get("content-length", "0"))
			body = await r.readexactly(n) if n else b""
			wire = len(body)
		close = hd.get("connection", "").lower() == "close"
		return status, headers, body, len(data) + len(head) + wire, close

	async def user_slot(self, slot):
		conn = None
		epoch, nxt = -1, 0.0
		while not self.stopping:
			u = User(self.next_uid)
			self.next_uid += 1
			self.users[slot] = u
			if conn:
				conn[1].close()
				conn = None
			for k in range(self.args.lifetime):
				if self.stopping:
					break
				now = time.monotonic()
				if epoch != self.epoch:
					# a new pace: the slots spread over one interval again,
					# without a burst to make up for the old pace
					epoch = self.epoch
					nxt = now + self.interval * slot / self.args.users
				if self.interval > 0:
					if nxt > now:
						await asyncio.sleep(nxt - now)
					# think times vary (uniform, mean = interval), so users
					# reach bollard in a shuffled order, as real ones do
					think = self.interval * self.rng.uniform(0.5, 1.5)
					nxt = max(nxt + think, time.monotonic() - self.interval)
				op = "add" if k % 3 == 2 else "visit"
				item = "u%d-%d" % (u.uid, k)
				sent_in = self.phase
				t0 = time.perf_counter()
				try:
					if conn is None:
						conn = await self.open()
					status, headers, body, nbytes, close = await asyncio.wait_for(
						self.exchange(conn, u, op, item), REQ_TIMEOUT)
				except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
					ValueError, IndexError):
					status, close = None, True
				lat = time.perf_counter() - t0
				# An answer counts in the phase it arrives in: a request in
				# flight when app1 is killed is an effect of the kill.
				c = self.counters()
				c["requests"] += 1
				if close and conn:
					conn[1].close()
					conn = None
				if status != 200:
					code = "conn" if status is None else str(status)
					c["errors"] += 1
					c["codes"][code] = c["codes"].get(code, 0) + 1
					u.unknown(op, item)
					if status is not None:
						u.take_cookies(headers)
					continue
				u.take_cookies(headers)
				j = json.loads(body)
				c["ok"] += 1
				c["lat"].append(lat)
				c["bytes"] += nbytes
				srv = j["server"]
				c["servers"][srv] = c["servers"].get(srv, 0) + 1
				# users answered for a request sent within a phase (tests
				# check that every user of the killed server that came back
				# lost its session exactly once)
				self.counters(sent_in)["answered_users"].add(u.uid)
				v = u.check(op, item, j)
				u.server = srv
				if v:
					c[v] += 1
					if v == "lost":
						key = str(u.uid)
						c["lost_users"][key] = c["lost_users"].get(key, 0) + 1
		if conn:
			conn[1].close()

	def pace(self, interval):
		if interval != self.interval:
			self.interval = interval
			self.epoch += 1

	def start(self):
		return [asyncio.ensure_future(self.user_slot(i)) for i in range(self.args.users)]


def pct(xs, q):
	if not xs:
		return None
	xs = sorted(xs)
	return xs[min(len(xs) - 1, int(q * len(xs)))]


def summarize(c, seconds, cpu, store_cpu, live):
	ok = c["ok"]
	servers = {s: c["servers"].get(s, 0) for s in live}
	mean = sum(servers.values()) / len(servers) if servers else 0
	return {
		"seconds": round(seconds, 2), "requests": c["requests"], "ok": ok,
		"errors": c["errors"], "codes": c["codes"], "lost": c["lost"], "stale": c["stale"],
		"dup": c["dup"],
		"rps": ok / seconds if seconds else 0,
		"p50_ms": pct(c["lat"], 0.50) * 1000 if ok else None,
		"p99_ms": pct(c["lat"], 0.99) * 1000 if ok else None,
		"bytes_per_req": c["bytes"] / ok if ok else None,
		"servers": servers,
		"imbalance": max(servers.values()) / mean if mean else None,
		"cpu_us_per_req": cpu / ok * 1e6 if ok else None,
		"store_cpu_us_per_req": store_cpu / ok * 1e6 if ok and store_cpu is not None else None,
		"store_cpu_pct": store_cpu / seconds * 100 if store_cpu is not None and seconds else None,
	}


async def run_arch(args, procs, arch, store, deadline, index):
	name, label = arch[0], arch[1]
	wd = tempfile.mkdtemp(prefix="lab-%s-" % name, dir=args.tmp)
	setup = Setup(args, procs, wd, arch, store)
	log("[%d/%d] %s: starting %d demo apps (store %s) and bollard"
	    % (index + 1, len(args.archs), label, NAPPS, arch[3]))
	await asyncio.to_thread(setup.start)
	load = Load(args, setup.bport)
	result = {"name": name, "label": label, "store": arch[3], "phases": {},
		  "users_on_killed_app": []}
	live = ["app%d" % (i + 1) for i in range(NAPPS)]
	load.phase = "warmup"
	tasks = load.start()
	try:
		await asyncio.sleep(args.warmup)
		for ph in PHASES:
			if ph == "kill-store" and store is None:
				continue
			if time.monotonic() + args.phase > deadline:
				log("  time budget reached: skipping the rest of %s" % label)
				break
			load.pace(0 if ph == "capacity" else args.users / args.rate)
			scpu0 = store.cpu() if store else None
			# kill-app and add-server start once the change is made (every
			# request of the phase sees it); kill-store includes its outage
			if ph == "kill-app":
				result["users_on_killed_app"] = sorted(
					u.uid for u in load.users.values() if u.server == "app1")
				setup.kill_app("app1")
				live.remove("app1")
			elif ph == "add-server":
				await asyncio.to_thread(setup.add_app, "app4")
				live.append("app4")
			before = time.monotonic()
			load.phase = ph
			if ph == "kill-store":
				store.kill()
				await asyncio.sleep(args.outage)
				await asyncio.to_thread(store.start)
			# measured after the action: a killed process has no CPU to read,
			# an added one had none before
			pids = setup.pids()
			cpu0 = cpu_of(pids)
			await asyncio.sleep(max(0.0, before + args.phase - time.monotonic()))
			seconds = time.monotonic() - before
			cpu = cpu_of(pids) - cpu0
			scpu = (store.cpu() - scpu0) if store else None
			load.phase = "between"
			s = summarize(load.counters(ph), seconds, cpu, scpu, live)
			if ph == "kill-app":
				# who lost a session, and who came back: the kill's
				# victims (tests compare them with users_on_killed_app)
				s["lost_users"] = load.counters(ph)["lost_users"]
				s["answered_users"] = sorted(load.counters(ph)["answered_users"])
			# let the requests of this phase finish outside the next one
			# (the capacity phase leaves one in flight per user)
			load.pace(args.users / args.rate)
			await asyncio.sleep(args.users / args.rate)
			result["phases"][ph] = s
			log("  %-10s %6.0f req/s  p50 %s ms  p99 %s ms  errors %d  lost %d  stale %d  dup %d%s"
			    % (ph, s["rps"], fmt(s["p50_ms"], ".2f"), fmt(s["p99_ms"], ".2f"), s["errors"],
			       s["lost"], s["stale"], s["dup"],
			       "  imbalance %.2f" % s["imbalance"] if ph == "add-server" and s["imbalance"]
			       else ""))
	finally:
		load.stopping = True
		await asyncio.wait(tasks, timeout=REQ_TIMEOUT + 1)
		for t in tasks:
			t.cancel()
		setup.stop()
		if not args.keep:
			shutil.rmtree(wd, ignore_errors=True)
	return result


# ---------------------------------------------------------------- output

def fmt(x, spec):
	return "—" if x is None else format(x, spec)


def table(results):
	out = ["| architecture | req/s | p50 ms | p99 ms | max req/s | lost: steady | lost: kill app "
	       "| lost: kill store | lost: add server | errors: kill app | errors: kill store "
	       "| imbalance after add | bytes/req | CPU µs/req | store CPU µs/req |",
	       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
	for r in results:
		p = r["phases"]

		def g(ph, key, spec="d"):
			return fmt(p[ph][key], spec) if ph in p else ("n/a" if ph == "kill-store" else "—")
		out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
			r["label"], g("steady", "rps", ".0f"), g("steady", "p50_ms", ".2f"),
			g("steady", "p99_ms", ".2f"), g("capacity", "rps", ".0f"), g("steady", "lost"),
			g("kill-app", "lost"), g("kill-store", "lost"), g("add-server", "lost"),
			g("kill-app", "errors"), g("kill-store", "errors"), g("add-server", "imbalance", ".2f"),
			g("steady", "bytes_per_req", ".0f"), g("steady", "cpu_us_per_req", ".0f"),
			g("steady", "store_cpu_us_per_req", ".0f")))
	return "\n".join(out)


def phase_table(results):
	out = ["| architecture | phase | s | requests | ok | errors | lost | stale | dup | req/s "
	       "| p50 ms | p99 ms | bytes/req | requests per server | imbalance |",
	       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
	for r in results:
		for ph, s in r["phases"].items():
			out.append("| %s | %s | %.1f | %d | %d | %d | %d | %d | %d | %.0f | %s | %s | %s | %s | %s |" % (
				r["label"], ph, s["seconds"], s["requests"], s["ok"], s["errors"], s["lost"],
				s["stale"], s["dup"], s["rps"], fmt(s["p50_ms"], ".2f"), fmt(s["p99_ms"], ".2f"),
				fmt(s["bytes_per_req"], ".0f"),
				" ".join("%s=%d" % kv for kv in sorted(s["servers"].items())),
				fmt(s["imbalance"], ".2f")))
	return "\n".join(out)


def chart(results, outdir, title):
	"""latest.svg: sessions lost per phase, p50/p99, bytes per request."""
	if shutil.which("gnuplot") is None:
		log("gnuplot not found (scripts/install-deps.sh lab): no chart")
		return None
	dat = os.path.join(outdir, "latest.dat")
	svg = os.path.join(outdir, "latest.svg")
	with open(dat, "w") as f:
		f.write("# arch lost_steady lost_killapp lost_killstore lost_add p50 p99 bytes "
			"max_rps cpu_us store_cpu_us imbalance\n")
		for r in results:
			p = r["phases"]

			def v(ph, k):
				x = p.get(ph, {}).get(k)
				return "NaN" if x is None else "%.3f" % x
			f.write('"%s" %s %s %s %s %s %s %s %s %s %s %s\n' % (
				r["label"].replace('"', ""), v("steady", "lost"), v("kill-app", "lost"),
				v("kill-store", "lost"), v("add-server", "lost"), v("steady", "p50_ms"),
				v("steady", "p99_ms"), v("steady", "bytes_per_req"), v("capacity", "rps"),
				v("steady", "cpu_us_per_req"),
				v("steady", "store_cpu_us_per_req") if r["store"] in stores.KINDS else "0",
				v("add-server", "imbalance")))
	gp = """set terminal svg size 1200,1100 dynamic font 'sans,11' background '#ffffff'
set output '%(svg)s'
set datafile missing 'NaN'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by 25 right font 'sans,9'
set key top left font 'sans,9'
set multiplot layout 3,2 title "bollard alternatives lab: %(title)s"
set title 'sessions lost per phase (log scale; 0 is not drawn)'
set logscale y
set yrange [0.8:*]
plot '%(dat)s' using 2:xtic(1) title 'steady' lc rgb '#7f7f7f', \\
     '' using 3 title 'kill an app server' lc rgb '#d62728', \\
     '' using 4 title 'kill the store' lc rgb '#ff7f0e', \\
     '' using 5 title 'add an app server' lc rgb '#2ca02c'
set title 'latency at the same offered load (ms, log scale)'
set yrange [0.05:*]
plot '%(dat)s' using 6:xtic(1) title 'p50' lc rgb '#1f77b4', '' using 7 title 'p99' lc rgb '#aec7e8'
unset logscale y
set yrange [0:*]
set title 'most requests per second (capacity phase)'
plot '%(dat)s' using 9:xtic(1) title 'req/s' lc rgb '#17becf'
set title 'CPU per request (microseconds, steady phase)'
set style histogram rowstacked
plot '%(dat)s' using 10:xtic(1) title 'bollard + app servers' lc rgb '#8c564b', \\
     '' using 11 title 'the store' lc rgb '#e377c2'
set style histogram clustered gap 1
set title 'bytes per request on the wire (client side)'
plot '%(dat)s' using 8:xtic(1) title 'request + answer' lc rgb '#9467bd'
set title 'load imbalance after adding a server (max/mean)'
set yrange [0:*]
plot '%(dat)s' using 12:xtic(1) title 'requests per live server' lc rgb '#bcbd22', \\
     1 with lines lc rgb 'black' dt 2 title 'even'
unset multiplot
""" % {"svg": svg, "dat": dat, "title": title}
	try:
		cp = subprocess.run(["gnuplot"], input=gp.encode(), stdout=subprocess.PIPE,
				    stderr=subprocess.STDOUT, timeout=30)
	except (OSError, subprocess.SubprocessError) as e:
		log("gnuplot failed: %s" % e)
		return None
	if cp.returncode != 0:
		log("gnuplot failed: %s" % cp.stdout.decode(errors="replace")[-400:])
		return None
	return svg


def machine():
	model = "unknown"
	try:
		with open("/proc/cpuinfo") as f:
			for line in f:
				if line.startswith("model name"):
					model = line.split(":", 1)[1].strip()
					break
	except OSError:
		pass

	def first(argv):
		try:
			cp = subprocess.run(argv, capture_output=True, text=True, timeout=10)
			return (cp.stdout or cp.stderr).strip().splitlines()[0]
		except (OSError, subprocess.SubprocessError, IndexError):
			return "unknown"
	pg = stores.pg_bindir()
	return {"cpu": model, "nproc": os.cpu_count(), "kernel": platform.release(),
		"redis": first(["redis-server", "--version"]),
		"memcached": first(["memcached", "-V"]),
		"postgresql": first([os.path.join(pg, "postgres"), "--version"]) if pg else "absent",
		"python": platform.python_version()}


def loadavg():
	try:
		with open("/proc/loadavg") as f:
			return " ".join(f.read().split()[:3])
	except OSError:
		return "unknown"


LOADAVG = ["unknown"]


def write_results(args, results, started, outdir, procs):
	os.makedirs(outdir, exist_ok=True)
	info = machine()
	cmd = " ".join(["/usr/bin/python3", "lab/lab.py"] + args.argv)
	doc = {"command": cmd, "machine": info, "users": args.users, "rate": args.rate,
	       "phase_seconds": args.phase, "outage_seconds": args.outage,
	       "lifetime": args.lifetime, "elapsed_s": round(time.monotonic() - started, 1),
	       "loadavg_start": LOADAVG[0], "loadavg_end": loadavg(),
	       "architectures": results, "started_pids": procs.started}
	with open(os.path.join(outdir, "latest.json"), "w") as f:
		json.dump(doc, f, indent=1)
	svg = chart(results, outdir, "%d users, %d req/s offered, %g s phases"
		    % (args.users, args.rate, args.phase))
	md = ["# Alternatives lab: latest run", "",
	      "`%s` (%.0f s), on %s (%d CPUs), kernel %s; %s; %s; %s." % (
		      cmd, doc["elapsed_s"], info["cpu"], info["nproc"], info["kernel"], info["redis"],
		      info["memcached"], info["postgresql"]), "",
	      "%d simulated users (cookie jar each, a session of %d requests, then a new user), "
	      "%d req/s offered, %.0f s per phase; store outage %.1f s. Every user checks its "
	      "visit count and cart after every answer: **lost** = a new session where it had one, "
	      "**stale** = older than what it wrote, **dup** = a retried non-idempotent request "
	      "counted twice. req/s, p50, p99, bytes/req and CPU are of the steady phase; max req/s "
	      "is the capacity phase (no think time; the load generator shares the machine). "
	      "CPU µs/req: bollard and the app servers; store CPU µs/req: the store's processes "
	      "(PostgreSQL: with its backends). Load average %s at the start, %s at the end "
	      "(other work on the machine shows in p99 first)." % (
		      args.users, args.lifetime, args.rate, args.phase, args.outage,
		      LOADAVG[0], loadavg()), "",
	      table(results), "", "## Every phase", "", phase_table(results), ""]
	if svg:
		md += ["![chart](latest.svg)", ""]
	with open(os.path.join(outdir, "latest.md"), "w") as f:
		f.write("\n".join(md))
	return os.path.join(outdir, "latest.md")


# ---------------------------------------------------------------- main

def parse_args(argv):
	ap = argparse.ArgumentParser(description="The alternatives lab (SPEC 14): stickiness "
					 "and its alternatives, measured through bollard.")
	ap.add_argument("--archs", default=",".join(a[0] for a in ARCHS),
			help="comma list of: %s" % ",".join(a[0] for a in ARCHS))
	ap.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
	ap.add_argument("--rate", type=float, default=300, help="offered req/s (default 300)")
	ap.add_argument("--phase", type=float, default=8, help="seconds per phase (default 8)")
	ap.add_argument("--outage", type=float, default=1.0, help="seconds the store stays down")
	ap.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds first")
	ap.add_argument("--lifetime", type=int, default=100,
			help="requests per user session (default 100, about 13 s at the default pace)")
	ap.add_argument("--quick", action="store_true",
			help="smoke run: 1.5 s phases, 0.5 s outage, 20-request sessions (a few "
			     "seconds per architecture)")
	ap.add_argument("--budget", type=float, default=570, help="stop after this many seconds")
	ap.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
	ap.add_argument("--bollard", default=os.path.join(ROOT, "build", "bollard"))
	ap.add_argument("--demo", default=os.path.join(ROOT, "build", "bollard-demo-app"))
	ap.add_argument("--tmp", default=None, help="parent of the temporary folder")
	ap.add_argument("--keep", action="store_true",
			help="keep the temporary folder: every process's output (debugging)")
	ap.add_argument("--access-log", action="store_true",
			help="bollard writes its access log (JSON) there (debugging; slower)")
	args = ap.parse_args(argv)
	args.argv = argv
	if args.quick:
		# short sessions too, so that new users reach the added server
		args.phase, args.outage, args.warmup, args.lifetime = 1.5, 0.5, 0.5, 20
	known = {a[0]: a for a in ARCHS}
	args.archs = [a.strip() for a in args.archs.split(",") if a.strip()]
	for a in args.archs:
		if a not in known:
			ap.error("unknown architecture %r" % a)
	args.arch_defs = [known[a] for a in args.archs]
	if args.users < 1 or args.rate <= 0 or args.phase <= 0 or args.lifetime < 3:
		ap.error("--users, --rate, --phase must be positive, --lifetime at least 3")
	return args


async def run_all(args, procs, workdir, started, results):
	need = sorted({a[3] for a in args.arch_defs} & set(stores.KINDS))
	gone = stores.missing()
	for k in need:
		if k in gone:
			raise RuntimeError(gone[k])
	store_objs = {}
	for k in need:
		log("starting %s on loopback" % k)
		s = stores.KINDS[k](workdir)
		procs.servers.append(s)
		await asyncio.to_thread(s.start)
		procs.record_servers()
		store_objs[k] = s
	deadline = started + args.budget
	for i, arch in enumerate(args.arch_defs):
		if time.monotonic() + 3 * args.phase > deadline:
			log("time budget reached: %s not run" % arch[1])
			continue
		results.append(await run_arch(args, procs, arch, store_objs.get(arch[3]), deadline, i))


def main(argv):
	args = parse_args(argv)
	for p, what in ((args.bollard, "bollard"), (args.demo, "bollard-demo-app")):
		if not os.access(p, os.X_OK):
			log("%s not built: %s (run make)" % (what, p))
			return 2
	signal.signal(signal.SIGTERM, on_signal)
	signal.signal(signal.SIGHUP, on_signal)
	started = time.monotonic()
	LOADAVG[0] = loadavg()
	workdir = tempfile.mkdtemp(prefix="bollard-lab-", dir=args.tmp)
	args.tmp = workdir
	procs = Procs()
	results = []
	rc = 0
	try:
		# results of the architectures done survive an interruption
		asyncio.run(run_all(args, procs, workdir, started, results))
	except (KeyboardInterrupt, Stop) as e:
		log("interrupted (%s): stopping everything" % (e or "Ctrl-C"))
		rc = 130
	except RuntimeError as e:
		log("error: %s" % e)
		rc = 1
	finally:
		procs.stop_all()
		if args.keep:
			log("kept %s" % workdir)
		else:
			shutil.rmtree(workdir, ignore_errors=True)
	if results:
		path = write_results(args, results, started, args.out, procs)
		print(table(results))
		log("results: %s (%.0f s)" % (path, time.monotonic() - started))
	return rc


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
