"""Redis faults and reloads with shared tables (SPEC 13, issue 13 items 4 and
5, doc/scale-out.md sections 2 and 6), through real processes: Redis killed,
SIGSTOPped and restarted empty under load cost no request and no request
waits longer than `timeout` plus a margin; Redis down at start; SIGHUP
keeps the links, or re-opens them keeping the queued writes; the state file
works without Redis.

The load is made of local misses on purpose: sessions learned on one
instance are asked on the others for the first time, so every request
asks Redis (the path a Redis fault can hurt); local hits never wait.
The bound on latency is derived from `timeout` only: a request blocked by
a stopped Redis would wait for as long as Redis stays stopped, which the
test makes last until every instance saw its link go down and the load
went on past that.
"""

import json
import signal
import threading
import time

import util
from helpers_redis import Redis
from test_shared_tables import SECRET, admin, fleet, get, metric, ops, redis, shared_config  # noqa: F401

TIMEOUT_MS = 200
MARGIN_S = 1.5   # generous: ASan build, two cores shared with other work


def link_clients(redis):
	"""The ids of Redis's clients but the one asking."""
	out = redis.cmd("CLIENT", "LIST").decode()
	return sorted(ln.split()[0] for ln in out.splitlines() if "cmd=client" not in ln)


def links_up(b):
	return metric(b, "bollard_shared_tables_links_up")


class Load:
	"""A client thread: each request a session learned on one instance,
	asked on another that has not seen it yet (a local miss there). It
	records every failure and the longest latency."""

	def __init__(self, bs, origin):
		self.bs, self.origin = bs, origin
		self.fail, self.done, self.max_s = [], 0, 0.0
		self.stop = threading.Event()
		self.t = threading.Thread(target=self.run, daemon=True)

	def run(self):
		k = 0
		while not self.stop.is_set() and k < 100000:
			k += 1
			# a new session on the origin instance, then its first visits
			# elsewhere: local misses that ask Redis
			try:
				_, r = get(self.origin, "/?format=json")
				sid = r.json()["session"]
				for b in self.bs:
					t0 = time.monotonic()
					r = util.request(b.port, "GET", "/whoami",
							 [("Cookie", "DEMOSESSID=" + sid)])
					dt = time.monotonic() - t0
					self.max_s = max(self.max_s, dt)
					if r.status != 200:
						self.fail.append((k, r.status))
					self.done += 1
			except Exception as e:  # a refused or reset connection is a failure
				self.fail.append((k, repr(e)))

	def start(self):
		self.t.start()
		return self

	def wait_more(self, n, what):
		start = self.done
		util.wait_until(lambda: self.done >= start + n or self.fail, timeout=60,
				what="%d more requests %s" % (n, what))

	def end(self):
		self.stop.set()
		self.t.join(timeout=60)
		assert not self.t.is_alive()


def test_redis_killed_stopped_restarted_under_load_costs_no_request(fleet, redis):
	bs, apps = fleet("persist learn DEMOSESSID", timeout="%dms" % TIMEOUT_MS)
	others = bs[1:]
	load = Load(others, bs[0]).start()
	try:
		load.wait_more(30, "with Redis up")
		assert sum(ops(b, "get", "hit") for b in others) > 0  # they did ask Redis

		# killed: the links go down, requests go on, balanced locally
		redis.kill()
		for b in bs:
			util.wait_until(lambda: links_up(b) == 0, what="links down after the kill")
		load.wait_more(30, "with Redis killed")
		assert sum(ops(b, "get", "down") for b in others) > 0

		# restarted empty: the links come back by themselves
		redis.restart()
		for b in bs:
			util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1,
					what="links up after the restart")
		load.wait_more(30, "with Redis back")

		# stopped: requests in flight time out at `timeout`, then the
		# stalled links are dropped and later requests do not wait
		redis.sigstop()
		for b in bs:
			util.wait_until(lambda: links_up(b) == 0, timeout=30,
					what="links dropped while Redis is stopped")
		load.wait_more(30, "with Redis stopped")
		assert sum(ops(b, "get", "timeout") for b in others) > 0
		redis.sigcont()
		for b in bs:
			util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1,
					what="links up after SIGCONT")
		load.wait_more(30, "after SIGCONT")
	finally:
		redis.sigcont()
		load.end()
	assert load.fail == [], load.fail[:10]
	# each fault shows in the access log of the requests it touched
	for kind in ("redis", "down", "timeout"):
		assert any(e.get("persist_shared") == kind for b in others for e in b.access_log()), kind
	assert load.max_s < TIMEOUT_MS / 1000 + MARGIN_S, load.max_s
	# the outage was said once per transition, not per request
	err = bs[0].stderr_text() + "".join(bs[0].log_lines())
	downs = err.count("shared-tables: redis 127.0.0.1:%d down" % redis.port)
	assert 1 <= downs <= 2, err[-3000:]


def test_redis_down_at_start_then_up_replays_the_queued_writes(tmp_path, demo_apps,
							       bollard_factory, config_for):
	(tmp_path / "secret.key").write_text(SECRET)
	(tmp_path / "secret.key").chmod(0o600)
	redis = Redis(tmp_path / "late")      # its port, nobody listening yet
	try:
		apps = demo_apps(3)
		b = bollard_factory(shared_config(config_for, apps, redis, "persist learn DEMOSESSID",
						  tmp_path, timeout="%dms" % TIMEOUT_MS))
		sids = []
		for _ in range(5):
			t0 = time.monotonic()
			srv, r = get(b, "/?format=json")
			assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + MARGIN_S
			sids.append((r.json()["session"], srv))
		for sid, home in sids:
			assert get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
		assert metric(b, "bollard_shared_tables_up") == 0
		assert metric(b, "bollard_shared_tables_queued") >= len(sids)
		assert "shared_tables down\n" in admin(b, "show info")
		util.wait_until(lambda: "unreachable" in b.stderr_text() + "".join(b.log_lines()),
				what="the outage logged")
		redis.start()
		util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, timeout=30,
				what="links up once Redis starts")
		for sid, home in sids:
			util.wait_until(lambda: redis.get("t:be/learn/DEMOSESSID:" + sid) == home,
					what="the queued binding replayed")
		assert metric(b, "bollard_shared_tables_queued") == 0
		log = b.stderr_text() + "".join(b.log_lines())
		assert log.count("unreachable") == 1, log[-3000:]
	finally:
		redis.close()


def test_sighup_keeps_the_links_or_reopens_them_with_the_queued_writes(
		tmp_path, demo_apps, bollard_factory, config_for, redis):
	(tmp_path / "secret.key").write_text(SECRET)
	(tmp_path / "secret.key").chmod(0o600)
	apps = demo_apps(3)
	b = bollard_factory(shared_config(config_for, apps, redis, "persist learn DEMOSESSID",
					  tmp_path))
	util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, what="links up")
	reloads = metric(b, "bollard_reloads_total")

	def reload():
		nonlocal reloads
		b.proc.send_signal(signal.SIGHUP)
		util.wait_until(lambda: metric(b, "bollard_reloads_total") == reloads + 1,
				what="the reload done")
		reloads += 1

	# the same configuration: the links stay, the same Redis clients
	# before and after (our own look is the one running CLIENT LIST)
	before = link_clients(redis)
	assert len(before) == 2, before  # one per worker thread
	reload()
	_, r = get(b, "/?format=json")
	sid0 = r.json()["session"]
	util.wait_until(lambda: redis.get("t:be/learn/DEMOSESSID:" + sid0) is not None,
			what="a write through the kept link")
	assert link_clients(redis) == before

	# the old Redis goes away: writes queue on the links; then a reload
	# moves them to an address where no Redis runs yet (more queue there),
	# a second reload keeps them, and the new Redis gets every one of them
	redis.kill()
	util.wait_until(lambda: metric(b, "bollard_shared_tables_links_up") == 0,
			what="links down with the old Redis")
	sids = []
	for _ in range(3):
		srv, r = get(b, "/?format=json")
		sids.append((r.json()["session"], srv))
	util.wait_until(lambda: metric(b, "bollard_shared_tables_queued") >= len(sids),
			what="writes queued before the change")
	other = Redis(tmp_path / "other")
	try:
		text = b.conf_path.read_text().replace("redis://127.0.0.1:%d/" % redis.port,
						       "redis://127.0.0.1:%d/" % other.port)
		b.conf_path.write_text(text)
		reload()
		for _ in range(3):
			srv, r = get(b, "/?format=json")
			sids.append((r.json()["session"], srv))
		util.wait_until(lambda: metric(b, "bollard_shared_tables_queued") >= len(sids),
				what="writes queued across the change")
		reload()
		other.start()
		util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, timeout=30,
				what="links up on the new Redis")
		for sid, home in sids:
			util.wait_until(lambda: other.get("t:be/learn/DEMOSESSID:" + sid) == home,
					what="the queued writes replayed to the new Redis")
		# removing the keyword: tables local again, still served
		b.conf_path.write_text("\n".join(ln for ln in text.splitlines()
						 if "shared-tables" not in ln) + "\n")
		reload()
		assert get(b, headers=[("Cookie", "DEMOSESSID=" + sids[0][0])])[0] == sids[0][1]
		assert "bollard_shared_tables_up" not in util.request(
			b.ports["port_stats"], "GET", "/metrics").text()
	finally:
		other.close()


def test_state_file_restores_the_tables_without_redis(tmp_path, demo_apps, bollard_factory,
						      config_for):
	(tmp_path / "secret.key").write_text(SECRET)
	(tmp_path / "secret.key").chmod(0o600)
	nobody = Redis(tmp_path / "never")   # never started
	apps = demo_apps(3)
	conf = shared_config(config_for, apps, nobody, "persist learn DEMOSESSID", tmp_path,
			     extra_global="    state-file %s/bollard.state" % tmp_path)
	b = bollard_factory(conf)
	sids = []
	for _ in range(6):
		srv, r = get(b, "/?format=json")
		sids.append((r.json()["session"], srv))
	assert b.stop() == 0
	b2 = bollard_factory(conf)
	for sid, home in sids:
		srv, r = get(b2, "/?format=json", [("Cookie", "DEMOSESSID=" + sid)])
		assert srv == home and r.json()["session"] == sid
	e = b2.wait_log(lambda x: x.get("persist") == "hit", n=len(sids))
	assert len(e) >= len(sids)
	assert metric(b2, "bollard_shared_tables_up") == 0


def test_restarted_empty_redis_is_refilled_by_the_refreshes(fleet, redis):
	bs, apps = fleet("persist learn DEMOSESSID", n=2)
	sids = []
	for _ in range(4):
		srv, r = get(bs[0], "/?format=json")
		sids.append((r.json()["session"], srv))
	util.wait_until(lambda: len(redis.keys("t:*")) == len(sids)
			and metric(bs[0], "bollard_shared_tables_queued") == 0,
			what="every binding written and acknowledged")
	redis.restart()
	for b in bs:
		util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, timeout=30,
				what="links up after the restart")
	assert redis.keys("t:*") == []
	# the live sessions' local hits refresh Redis (at most once per second
	# per binding), so an instance that never saw them finds them again
	deadline = time.monotonic() + 30
	while time.monotonic() < deadline and len(redis.keys("t:*")) < len(sids):
		for sid, home in sids:
			assert get(bs[0], headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
	assert len(redis.keys("t:*")) == len(sids)
	for sid, home in sids:
		assert get(bs[1], headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
