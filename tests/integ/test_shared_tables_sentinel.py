"""Shared tables behind Redis Sentinel (SPEC 13, issue 13, doc/scale-out.md
"Sentinel"), through real processes: a redis-server master, its replica and
one redis-sentinel (Debian's, scripts/install-deps.sh stores) on free
loopback ports in a temporary folder; bollard instances whose
`shared-tables` line names only the sentinel (its redis:// address points
at nothing). The master is killed with SIGKILL under load: no request
fails, and the sessions agree before, during and after the failover,
including on an instance started afterwards, which knows them from the
promoted replica only.

Waits are on observable state: INFO replication, SENTINEL replicas, the
instances' /metrics, what the nodes hold.
"""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

import util
from helpers_redis import Redis
from test_shared_tables import admin, get, metric

MASTER = "mym"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
# The master is seen down after DOWN_AFTER_MS; a sentinel waits up to 1 s
# before starting a failover (so that sentinels do not vote in step); the
# promotion ends within FAILOVER_TIMEOUT_MS; each worker's link then needs
# one reconnect backoff (at most 5 s, the link's default) and one connect
# (1 s). Under ASan on a shared machine, twice that.
FAILOVER_BOUND_S = 2 * (DOWN_AFTER_MS + 1000 + FAILOVER_TIMEOUT_MS + 5000 + 1000) / 1000


class Node(Redis):
	"""A redis-server; with of_port, the replica of the one on that port."""

	def __init__(self, dir, of_port=None):
		super().__init__(dir)
		self.of_port = of_port

	def start(self):
		args = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
			"--dir", self.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
			# the first sync at once (by default it waits 5 s for more replicas)
			"--repl-diskless-sync-delay", "0"]
		if self.of_port:
			args += ["--replicaof", "127.0.0.1", str(self.of_port)]
		log = open(os.path.join(self.dir, "redis.log"), "ab")
		self.proc = subprocess.Popen(args, stdout=log, stderr=log)
		log.close()
		util.wait_until(self.answers, timeout=10, what="redis-server answering")
		return self


class Sentinel(Redis):
	def __init__(self, dir, master_port):
		super().__init__(dir)
		self.master_port = master_port

	def start(self):
		binary = shutil.which("redis-sentinel")
		assert binary, "redis-sentinel missing: scripts/install-deps.sh stores installs it"
		conf = os.path.join(self.dir, "sentinel.conf")
		with open(conf, "w") as f:
			f.write("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
				"sentinel monitor %s 127.0.0.1 %d 1\n"
				"sentinel down-after-milliseconds %s %d\n"
				"sentinel failover-timeout %s %d\n"
				% (self.port, self.dir, MASTER, self.master_port, MASTER, DOWN_AFTER_MS,
				   MASTER, FAILOVER_TIMEOUT_MS))
		log = open(os.path.join(self.dir, "sentinel.log"), "ab")
		self.proc = subprocess.Popen([binary, conf], stdout=log, stderr=log)
		log.close()
		util.wait_until(self.answers, timeout=10, what="redis-sentinel answering")
		return self

	def knows_replica(self):
		try:
			reps = self.cmd("SENTINEL", "replicas", MASTER)
		except (OSError, RuntimeError):
			return False
		return any(dict(zip(r[::2], r[1::2])).get(b"flags") == b"slave" for r in reps)

	def master_port_now(self):
		return int(self.cmd("SENTINEL", "get-master-addr-by-name", MASTER)[1])


@pytest.fixture
def trio(tmp_path):
	m = Node(tmp_path / "master").start()
	r = Node(tmp_path / "replica", of_port=m.port).start()
	util.wait_until(lambda: r.info("master_link_status", "replication") == "up",
			what="the replica in sync")
	s = Sentinel(tmp_path / "sentinel", m.port).start()
	# the sentinel learns the replica from the master's INFO
	util.wait_until(s.knows_replica, timeout=15, what="the sentinel knowing the replica")
	yield m, r, s
	for p in (s, r, m):
		p.close()


def sentinel_config(config_for, apps, sentinel, tmp, threads=2, extra_global=()):
	nowhere = util.free_port()
	g = ["    stats-listen 127.0.0.1:{port_stats}"] + list(extra_global) + [
	     "    shared-tables redis://127.0.0.1:%d/0 prefix t: timeout 200ms "
	     "sentinel 127.0.0.1:%d master %s" % (nowhere, sentinel.port, MASTER)]
	return config_for(apps, threads=threads, global_extra="\n".join(g),
			  backend_extra="    persist learn DEMOSESSID")


def links_up(b):
	return metric(b, "bollard_shared_tables_up") == 1


class Load(threading.Thread):
	"""Each session's requests to the instances in turn, until stopped
	(bounded in count and time); records every request that failed or
	reached another server than the session's."""

	def __init__(self, bs, sessions, max_requests=20000, max_s=120):
		super().__init__(daemon=True)
		self.bs, self.sessions = bs, sessions
		self.max_requests, self.max_s = max_requests, max_s
		self.stop_flag = threading.Event()
		self.done, self.bad = 0, []

	def run(self):
		end = time.monotonic() + self.max_s
		k = 0
		while not self.stop_flag.is_set() and self.done < self.max_requests and \
				time.monotonic() < end:
			sid, home = self.sessions[k % len(self.sessions)]
			b = self.bs[k % len(self.bs)]
			k += 1
			try:
				r = util.request(b.port, "GET", "/?format=json",
						 [("Cookie", "DEMOSESSID=" + sid)])
				srv = r.headers.get("X-Server")
				if r.status != 200 or srv != home or r.json()["session"] != sid:
					self.bad.append((sid, r.status, srv, home))
			except OSError as e:
				self.bad.append((sid, repr(e)))
			self.done += 1

	def stop(self):
		self.stop_flag.set()
		self.join(timeout=30)


def test_failover_under_load_loses_no_request_and_no_session(trio, demo_apps, bollard_factory,
							     config_for, tmp_path):
	m, r, s = trio
	apps = demo_apps(3)
	conf = sentinel_config(config_for, apps, s, tmp_path)
	bs = [bollard_factory(conf) for _ in range(2)]
	for b in bs:
		util.wait_until(lambda: links_up(b), what="every link up, on the master the sentinel named")
	sessions = []
	for i in range(12):
		srv, resp = get(bs[i % 2], "/?format=json")
		sessions.append((resp.json()["session"], srv))
	keys = ["t:be/learn/DEMOSESSID:" + sid for sid, _ in sessions]
	# written behind to the master, and replicated before it dies
	util.wait_until(lambda: all(r.get(k) for k in keys), what="the bindings on the replica")
	assert all(m.get(k) == home for k, (_, home) in zip(keys, sessions))

	load = Load(bs, sessions)
	load.start()
	util.wait_until(lambda: load.done >= 50, what="load running")
	done_before = load.done
	m.kill()
	t0 = time.monotonic()
	util.wait_until(lambda: s.master_port_now() == r.port, timeout=FAILOVER_BOUND_S,
			what="the sentinel promoting the replica")
	for b in bs:
		util.wait_until(lambda: links_up(b) and
				metric(b, "bollard_shared_tables_sentinel_total", {"event": "switch"}) >= 2,
				timeout=FAILOVER_BOUND_S, what="every link on the promoted replica")
	assert time.monotonic() - t0 <= FAILOVER_BOUND_S
	# the load went on through the failover, then a while on the new master
	util.wait_until(lambda: load.done >= done_before + 200, what="load after the failover")
	load.stop()
	assert load.bad == [], load.bad[:10]

	# a session started after the failover is written to the new master and
	# agreed on by the other instance
	srv, resp = get(bs[0], "/?format=json")
	sid = resp.json()["session"]
	util.wait_until(lambda: r.get("t:be/learn/DEMOSESSID:" + sid) == srv,
			what="the new binding on the promoted replica")
	assert get(bs[1], headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == srv

	# an instance started now knows the sessions from the new master only
	late = bollard_factory(conf)
	util.wait_until(lambda: links_up(late), what="the late instance's links up")
	for sid, home in sessions:
		assert get(late, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
	assert metric(late, "bollard_shared_tables_ops_total", {"op": "get", "result": "hit"}) \
		== len(sessions)
	for b in bs + [late]:
		assert b.alive()
		assert metric(b, "bollard_shared_tables_ops_total", {"op": "set", "result": "dropped"}) == 0


def test_every_sentinel_down_costs_no_request(demo_apps, bollard_factory, config_for, tmp_path):
	"""Configured sentinels that do not answer: the tables are local, every
	request is served, the rounds are counted and logged once."""
	apps = demo_apps(2)

	class Nobody:
		port = util.free_port()
	conf = sentinel_config(config_for, apps, Nobody, tmp_path, threads=1)
	b = bollard_factory(conf)
	util.wait_until(lambda: metric(b, "bollard_shared_tables_sentinel_total",
				       {"event": "no_answer"}) >= 3,
			what="rounds with no answer, retried")
	sessions = []
	for i in range(6):
		srv, resp = get(b, "/?format=json")
		sessions.append((resp.json()["session"], srv))
	for sid, home in sessions:
		assert get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
	assert metric(b, "bollard_shared_tables_up") == 0
	lines = [ln for ln in b.stderr_text().splitlines() if "no sentinel answered" in ln]
	assert len(lines) == 1, b.stderr_text()


def test_show_and_clear_sessions_find_the_master_through_the_sentinel(trio, demo_apps,
								      bollard_factory, config_for,
								      tmp_path):
	"""The runtime API's walk of Redis (doc/scale-out.md "show and clear")
	asks the sentinel where the master is: the redis:// address of the
	configuration points at nothing."""
	m, r, s = trio
	apps = demo_apps(2)
	conf = sentinel_config(config_for, apps, s, tmp_path, threads=1,
			       extra_global=["    admin-socket %s/{port_stats}.sock" % tmp_path])
	b = bollard_factory(conf)
	util.wait_until(lambda: links_up(b), what="the link up, on the master the sentinel named")
	srv, resp = get(b, "/?format=json")
	sid = resp.json()["session"]
	key = "t:be/learn/DEMOSESSID:" + sid
	util.wait_until(lambda: m.get(key) == srv, what="the binding written behind")
	m.cmd("SET", "t:be/learn/DEMOSESSID:other", srv)
	shown = admin(b, "show sessions be")
	assert "be learn other %s - - redis\n" % srv in shown, shown
	assert "be learn %s %s " % (sid, srv) in shown and " local\n" in shown, shown
	ans = admin(b, "clear sessions be")
	assert ans.startswith("cleared 1 local, 2 in redis"), ans
	# bollard's binding: the mark, with its TTL; a key without one: deleted
	assert m.get(key) == "" and m.get("t:be/learn/DEMOSESSID:other") is None
