"""
bench_shared.py - the shared-tables rows of `make bench` (issue 13's
targets, doc/scale-out.md): what sharing the persistence tables on Redis
costs bollard, side by side with the same bollard without it, in one run.

Three bollard instances, one worker thread each, the same backends, the
same configuration but for one line of `global`:
  off   - no shared-tables (the tables are the instance's own);
  on    - shared-tables on a redis-server started here (Debian's);
  down  - shared-tables on a port where nothing listens (Redis unreachable).
Two workloads, each run against the three instances in every round, the
order of the instances rotated from round to round (as bench.py does):
  local - learned-cookie persistence, every request carrying one of 1,000
          sessions the instance learned before the rounds (every lookup is a
          local hit; with `on`, refreshes are written behind, rate-limited);
          wrk -c50: throughput and CPU per request.
  miss  - every request carries a session unknown to the instance whose
          binding is in Redis (seeded before each round, a fresh set each
          time; `off` and `down` get the same kind of unknown sessions and
          balance them): the local miss answered from Redis. wrk -c4, so
          that the proxy is not saturated and p99 is a latency, not a queue.
Redis operations per request: INFO commandstats before and after each `on`
run. Pinning as bench.py: bollard on CPU 1; wrk, the backends and Redis on
CPU 0.

Alone: BENCH_ONLY=shared make bench (or bench/bench.py with that variable);
writes bench/results/shared-latest.md and shared-latest.json. Python
standard library only.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import tempfile
import time

import bench as B

VARIANTS = ("off", "on", "down")
PREFIX = "bench:"
TABLE = "app/learn/" + B.APP_COOKIE   # bollard's table of `persist learn` in backend app
SEED_SERVER = "app3"                   # every seeded binding: the check that they are followed

LUA_LOCAL = """local cookies = {%s}
local n = #cookies
local i = 0
request = function()
	i = i + 1
	return wrk.format("GET", "/whoami", {["Cookie"] = "%s=" .. cookies[i %% n + 1]})
end
"""
LUA_MISS = """local i = 0
request = function()
	i = i + 1
	return wrk.format("GET", "/whoami", {["Cookie"] = "%s=%s" .. i})
end
"""


def parse_args(argv):
	ap = argparse.ArgumentParser(description="bollard shared-tables benchmark rows")
	ap.add_argument("--rounds", type=int, default=3)
	ap.add_argument("--duration", type=float, default=3)
	ap.add_argument("--quick", action="store_true")
	ap.add_argument("--full", action="store_true")
	ap.add_argument("--bollard", default=os.path.join(B.ROOT, "build", "bollard"))
	ap.add_argument("--no-pin", action="store_true")
	ap.add_argument("--out", default=B.RESULTS)
	ap.add_argument("--keep-tmp", action="store_true")
	ap.add_argument("--shared-sessions", type=int, default=1000,
			help="learned sessions of the local workload (default 1000)")
	ap.add_argument("--shared-seed", type=int, default=60000,
			help="bindings seeded in Redis per round for the miss workload (default 60000)")
	# the other options of bench.py are its own
	args, _ = ap.parse_known_args(argv)
	if args.quick:
		args.rounds, args.duration = 1, 2
	if args.full:
		args.rounds, args.duration = 5, 10
	pin = not args.no_pin and (os.cpu_count() or 1) >= 2
	args.cpu_load, args.cpu_proxy = (0, 1) if pin else (None, None)
	args.backend = "demo"
	args.connections, args.miss_connections = 50, 4
	return args


# ---- Redis over a raw socket ------------------------------------------------

class Resp:
	def __init__(self, port):
		self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
		self.buf = b""

	def _line(self):
		while b"\r\n" not in self.buf:
			d = self.s.recv(1 << 20)
			if not d:
				raise OSError("redis closed the connection")
			self.buf += d
		line, _, self.buf = self.buf.partition(b"\r\n")
		return line

	def reply(self):
		line = self._line()
		if line[:1] == b"$":
			n = int(line[1:])
			if n < 0:
				return None
			while len(self.buf) < n + 2:
				self.buf += self.s.recv(1 << 20)
			v, self.buf = self.buf[:n], self.buf[n + 2:]
			return v
		if line[:1] == b"-":
			raise OSError(line.decode())
		return line[1:]

	@staticmethod
	def encode(*args):
		out = [b"*%d\r\n" % len(args)]
		for a in args:
			a = a if isinstance(a, bytes) else str(a).encode()
			out.append(b"$%d\r\n%s\r\n" % (len(a), a))
		return b"".join(out)

	def cmd(self, *args):
		self.s.sendall(self.encode(*args))
		return self.reply()

	def pipeline(self, cmds):
		"""Many commands, one write, every reply read (errors raise)."""
		self.s.sendall(b"".join(self.encode(*c) for c in cmds))
		for _ in cmds:
			self.reply()

	def calls(self):
		"""Commands Redis executed so far (INFO commandstats), INFO left out;
		those a script ran count too (a keep write: EVALSHA, GET, SET)."""
		text = self.cmd("INFO", "commandstats").decode()
		total = 0
		for m in re.finditer(r"^cmdstat_([a-z|_]+):calls=(\d+)", text, re.M):
			if m.group(1) != "info":
				total += int(m.group(2))
		return total


def wait_redis(port, proc):
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		if not proc.alive():
			B.die("redis-server exited at start:\n" + proc.log_tail())
		try:
			if Resp(port).cmd("PING") == b"PONG":
				return
		except OSError:
			time.sleep(0.05)
	B.die("redis-server not answering on %d" % port)


# ---- the instances ------------------------------------------------------------

def start_bollard(args, variant, tmp, backends, procs, redis_port, nowhere):
	port, stats = B.free_port(), B.free_port()
	prefix = os.path.join(tmp, "bollard-" + variant)
	os.makedirs(prefix)
	servers = "\n".join("    server %s 127.0.0.1:%d" % b for b in backends)
	conf = B.render("bollard.conf.in", os.path.join(prefix, "bollard.conf"),
			{"PORT": port, "MAXCONN": B.MAXCONN, "SERVERS": servers, "THREADS": 1,
			 "PERSIST": "    persist learn %s expire 30m size 2m" % B.APP_COOKIE})
	extra = "    stats-listen 127.0.0.1:%d\n" % stats
	if variant != "off":
		extra += "    shared-tables redis://127.0.0.1:%d/0 prefix %s\n" % (
			redis_port if variant == "on" else nowhere, PREFIX)
	with open(conf) as f:
		text = f.read().replace("    log off\n", "    log off\n" + extra, 1)
	with open(conf, "w") as f:
		f.write(text)
	p = B.Proc("bollard-" + variant, [args.bollard, "-c", conf], tmp, args.cpu_proxy)
	procs.append(p)
	B.wait_ready(port, [p], "bollard (" + variant + ")")
	t = B.Target("bollard-" + variant, port, p)
	t.stats = stats
	if variant == "on":
		deadline = time.monotonic() + 10
		while metric(t, "bollard_shared_tables_up") != 1:
			if time.monotonic() > deadline:
				B.die("bollard (on): the Redis link is not up:\n" + p.log_tail())
			time.sleep(0.05)
	return t


def metric(t, name, labels=""):
	try:
		data = B.http_raw(t.stats, "/metrics", timeout=2)
	except OSError:
		return None
	m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)),
		      data.decode(errors="replace"), re.M)
	return float(m.group(1)) if m else 0.0


def learn_sessions(t, n):
	"""n sessions the instance learns (GET / answered with a new session
	cookie each); their cookie values."""
	out = []
	for _ in range(n):
		head = B.http_head(t.port, "/")
		m = re.search(r"(?im)^set-cookie:\s*%s=([^;\r\n]*)" % B.APP_COOKIE, head)
		if not m:
			B.die("%s: no %s cookie from GET /:\n%s" % (t.name, B.APP_COOKIE, head))
		out.append(m.group(1))
	return out


def seed(redis, base, n):
	"""n bindings in Redis that no instance holds: base0 .. base(n-1)."""
	for lo in range(0, n, 5000):
		redis.pipeline([("SET", "%s%s:%s%d" % (PREFIX, TABLE, base, i), SEED_SERVER, "PX", 1800000)
				for i in range(lo, min(n, lo + 5000))])


# the results of operations that reached Redis (the others were limited,
# dropped, or found the link down)
SENT = ("hit", "miss", "won", "lost", "ok", "error", "timeout")


def sent_ops(t):
	"""Operations bollard sent to Redis so far, by its own counters."""
	return sum(metric(t, "bollard_shared_tables_ops_total",
			  '{op="%s",result="%s"}' % (op, res)) or 0
		   for op in ("get", "setnx", "cas", "set", "del") for res in SENT)


def run(args, t, workload, lua, conns, redis):
	sc = B.SCENARIOS.setdefault("shared-" + workload, B.scen("", direct=False))
	sc.update({"lua": lua, "path": "/whoami", "conns": workload + "_connections"})
	setattr(args, workload + "_connections", conns)
	calls0, ops0 = redis.calls(), sent_ops(t)
	hit0 = metric(t, "bollard_shared_tables_ops_total", '{op="get",result="hit"}') or 0
	r = B.run_wrk(args, t, "shared-" + workload, args.duration)
	r["redis_calls"] = redis.calls() - calls0
	r["redis_ops"] = int(sent_ops(t) - ops0)
	n = r["requests"]
	r["redis_ops_per_req"] = round(r["redis_ops"] / n, 4) if n else None
	r["redis_calls_per_req"] = round(r["redis_calls"] / n, 4) if n else None
	hits = (metric(t, "bollard_shared_tables_ops_total", '{op="get",result="hit"}') or 0) - hit0
	r["redis_get_hits"] = int(hits)
	r["workload"], r["variant"] = workload, t.name.split("-", 1)[1]
	return r


# ---- report -------------------------------------------------------------------

def med(runs, workload, variant, key):
	xs = [r[key] for r in runs if r["workload"] == workload and r["variant"] == variant
	      and r.get(key) is not None]
	return statistics.median(xs) if xs else None


def ratio(runs, workload, variant, key):
	"""Median over rounds of variant/off, each ratio within one round."""
	xs = []
	for rnd in {r["round"] for r in runs}:
		a = [r[key] for r in runs if r["round"] == rnd and r["workload"] == workload
		     and r["variant"] == variant and r.get(key)]
		b = [r[key] for r in runs if r["round"] == rnd and r["workload"] == workload
		     and r["variant"] == "off" and r.get(key)]
		if a and b:
			xs.append(a[0] / b[0])
	return statistics.median(xs) if xs else None


def diff(runs, workload, variant, key):
	xs = []
	for rnd in {r["round"] for r in runs}:
		a = [r[key] for r in runs if r["round"] == rnd and r["workload"] == workload
		     and r["variant"] == variant and r.get(key) is not None]
		b = [r[key] for r in runs if r["round"] == rnd and r["workload"] == workload
		     and r["variant"] == "off" and r.get(key) is not None]
		if a and b:
			xs.append(a[0] - b[0])
	return statistics.median(xs) if xs else None


def report(args, runs, info, started, argv):
	f = B.fmt
	rows = ["| workload | shared tables | req/s | p50 ms | p99 ms | CPU µs/req | errors | "
		"Redis ops/req | Redis commands/req | gets answered by Redis |",
		"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
	for w in ("local", "miss"):
		for v in VARIANTS:
			errs = sum(r["errors"] for r in runs if r["workload"] == w and r["variant"] == v)
			rows.append("| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s |" % (
				w, v, f(med(runs, w, v, "rps"), ".0f"), f(med(runs, w, v, "p50_ms"), ".3f"),
				f(med(runs, w, v, "p99_ms"), ".3f"), f(med(runs, w, v, "cpu_us_per_req"), ".2f"),
				errs, f(med(runs, w, v, "redis_ops_per_req"), ".4f") if v == "on" else "-",
				f(med(runs, w, v, "redis_calls_per_req"), ".4f") if v == "on" else "-",
				f(med(runs, w, v, "redis_get_hits"), ".0f") if v == "on" else "-"))

	def pct(x):
		return "-" if x is None else "%+.1f%%" % (100 * (x - 1))
	cpu_on = ratio(runs, "local", "on", "cpu_us_per_req")
	rps_down = ratio(runs, "local", "down", "rps")
	cpu_down = ratio(runs, "local", "down", "cpu_us_per_req")
	p99_add = diff(runs, "miss", "on", "p99_ms")
	down_errs = sum(r["errors"] for r in runs if r["variant"] == "down")
	ops = med(runs, "local", "on", "redis_ops_per_req")

	def verdict(ok):
		return "met" if ok else "**missed**"
	p50_add = diff(runs, "miss", "on", "p50_ms")
	targets = [
		"| target | measured (median of per-round values) | |", "|---|---|---|",
		"| local hits, shared tables on: CPU/req within 5%% of off | %s | %s |" % (
			pct(cpu_on), verdict(cpu_on is not None and cpu_on <= 1.05)),
		"| local miss answered from Redis: added p99 <= 1 ms | %s ms (p99 on - p99 off, -c%d) | %s |" % (
			f(p99_add, "+.3f"), args.miss_connections, verdict(p99_add is not None and p99_add <= 1.0)),
		"| (local miss answered from Redis: added p50, the round trip itself) | %s ms | |" % (
			f(p50_add, "+.3f")),
		"| Redis down: throughput within 5%% of off | %s | %s |" % (
			pct(rps_down), verdict(rps_down is not None and rps_down >= 0.95)),
		"| Redis down: CPU/req within 5%% of off | %s | %s |" % (
			pct(cpu_down), verdict(cpu_down is not None and cpu_down <= 1.05)),
		"| Redis down: zero errors | %d | %s |" % (down_errs, verdict(down_errs == 0)),
		"| Redis operations per request, steady local load (goal << 1) | %s | %s |" % (
			f(ops, ".4f"), verdict(ops is not None and ops < 0.1)),
	]
	md = ["# bollard shared-tables benchmark", "",
	      "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
	      "- command: `BENCH_ONLY=shared bench/bench.py %s`" % " ".join(argv),
	      "- machine: %s CPUs, %s, Linux %s" % (info["nproc"], info["cpu"], info["kernel"]),
	      "- versions: %s; %s; %s" % (info.get("bollard"), info.get("redis"), info.get("wrk")),
	      "- %d round(s) of %gs per run; bollard 1 thread%s; %d learned sessions (local), "
	      "%d bindings seeded per round (miss)" % (
		      args.rounds, args.duration, ", CPU 1; wrk, backends and Redis on CPU 0"
		      if args.cpu_proxy is not None else ", not pinned", args.shared_sessions, args.shared_seed),
	      "", "\n".join(targets), "", "\n".join(rows), "",
	      "Redis ops: operations bollard sent (its ops_total counters: a keep write, "
	      "a lookup); Redis commands: INFO commandstats, which also counts the GET and "
	      "SET a keep write's script runs.", ""]
	os.makedirs(args.out, exist_ok=True)
	with open(os.path.join(args.out, "shared-latest.md"), "w") as fo:
		fo.write("\n".join(md))
	with open(os.path.join(args.out, "shared-latest.json"), "w") as fo:
		json.dump({"date": started.isoformat(), "machine": info, "runs": runs}, fo, indent=1)
	B.log("\n".join(md))
	B.log("bench: wrote %s" % os.path.join(args.out, "shared-latest.md"))
	return 1 if any(r["errors"] for r in runs) else 0


# ---- main ------------------------------------------------------------------------

def main(argv):
	args = parse_args(argv)
	for tool in ("wrk", "taskset", "redis-server"):
		if shutil.which(tool) is None:
			B.die("%s not found (scripts/install-deps.sh bench stores installs it)" % tool)
	if not os.access(args.bollard, os.X_OK):
		B.die("%s not found: build it (`make build/bollard`)" % args.bollard)
	info = B.machine_info(args, ["bollard"])
	info["redis"] = B.first_line(["redis-server", "--version"])
	started = datetime.datetime.now(datetime.timezone.utc)
	tmp = tempfile.mkdtemp(prefix="bollard-bench-shared-")
	args.tmp = tmp
	procs, runs = [], []
	B.log("bench: shared tables: %d rounds x 2 workloads x 3 instances of %gs"
	      % (args.rounds, args.duration))
	try:
		backends = B.start_backends(args, tmp, procs)
		args.backend_procs = list(procs)
		rport = B.free_port()
		rp = B.Proc("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
				      "--dir", tmp, "--save", "", "--appendonly", "no"], tmp, args.cpu_load)
		procs.append(rp)
		wait_redis(rport, rp)
		redis = Resp(rport)
		nowhere = B.free_port()
		ts = {v: start_bollard(args, v, tmp, backends, procs, rport, nowhere) for v in VARIANTS}
		cookies = {v: learn_sessions(ts[v], args.shared_sessions) for v in VARIANTS}
		lua_local = {v: LUA_LOCAL % (",".join('"%s"' % c for c in cookies[v]), B.APP_COOKIE)
			     for v in VARIANTS}
		# the check that a seeded binding is what `on` follows
		seed(redis, "check", 1)
		st, body = B.http_get(ts["on"].port, headers=["Cookie: %s=check0" % B.APP_COOKIE])
		if body.strip().decode(errors="replace") != SEED_SERVER:
			B.die("bollard (on) did not follow the binding seeded in Redis (%r)" % body)
		for t in ts.values():
			B.run_wrk(args, t, "keepalive", 1.0)  # warm-up
		for rnd in range(args.rounds):
			order = VARIANTS[rnd % 3:] + VARIANTS[:rnd % 3]
			bases = {v: "r%d%s-" % (rnd, v) for v in VARIANTS}
			seed(redis, bases["on"], args.shared_seed)
			for workload in ("local", "miss"):
				for v in order:
					if workload == "local":
						lua, conns = lua_local[v], args.connections
					else:
						lua, conns = LUA_MISS % (B.APP_COOKIE, bases[v]), args.miss_connections
					r = run(args, ts[v], workload, lua, conns, redis)
					r["round"] = rnd
					runs.append(r)
					B.log("  round %d %-5s %-4s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %s us/req"
					      "  redis ops/req %s%s" % (
						      rnd + 1, workload, v, r["rps"] or 0, r["p50_ms"] or 0,
						      r["p99_ms"] or 0, B.fmt(r["cpu_us_per_req"], ".2f"),
						      B.fmt(r["redis_ops_per_req"], ".4f") if v == "on" else "-",
						      "  ERRORS %d" % r["errors"] if r["errors"] else ""))
					if r.get("died"):
						B.die("%s died during the run:\n%s" % (ts[v].name, ts[v].main.log_tail()))
	except KeyboardInterrupt:
		B.log("bench: interrupted; stopping what was started")
		return 130
	finally:
		B.stop_all(procs, tmp, args.keep_tmp)
	return report(args, runs, info, started, argv)
