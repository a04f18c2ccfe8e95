"""Failover of persistent sessions (SPEC 3.2, issue 4): a sticky server
killed under load costs no GET and moves each of its sessions exactly once;
on-server-down replica sends them to the replica; fail answers 503."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import util


def conf(apps, on_down="redispatch", replica=False):
	lines = []
	for i, a in enumerate(apps):
		opt = " replica %s" % apps[(i + 1) % len(apps)].name if replica else ""
		lines.append("    server %s 127.0.0.1:%d%s\n" % (a.name, a.port, opt))
	return ("global\n    threads 2\n    log stdout\n    log-format json\n"
		"    admin-socket {tmp}/adm.sock\n"
		"defaults\n    timeout connect 1s\n    timeout server 5s\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    retries 2\n    on-server-down %s\n"
		"    persist cookie BOLLARD insert\n%s" % (on_down, "".join(lines)))


def ctl(bin_, b, cmd):
	sock = str(Path(b.conf_path).parent / "adm.sock")
	return subprocess.run([bin_, "ctl", "-s", sock] + cmd.split(), capture_output=True,
			      text=True, timeout=15)


class Session:
	"""A browser: one cookie jar, requests tagged ?s=ID&n=SEQ for the log.
	The sequence number orders them: each worker thread writes its log lines
	at the end of its loop iteration, so the next request of a session,
	served by the other thread, may be logged before the one it followed."""

	def __init__(self, port, sid):
		self.port, self.sid, self.cookie, self.n = port, sid, None, 0

	def get(self):
		h = [("Cookie", self.cookie)] if self.cookie else []
		self.n += 1
		r = util.request(self.port, "GET", "/whoami?s=%d&n=%d" % (self.sid, self.n), headers=h)
		sc = r.headers.get("Set-Cookie")
		if sc:
			self.cookie = sc.split(";")[0]
		return r


def entries(b, sid, n=0):
	"""The log entries of session sid, waiting until there are at least n
	(a line is written just after its response goes out)."""
	def get():
		tag = "/whoami?s=%d&n=" % sid
		es = [e for e in b.access_log() if e.get("target", "").startswith(tag)]
		es.sort(key=lambda e: int(e["target"][len(tag):]))
		return es if len(es) >= n else None
	return util.wait_until(get, what="%d log entries of session %d" % (n, sid)) if n else get() or []


def test_kill_sticky_server_under_load(demo_apps, bollard_factory):
	apps = demo_apps(3)
	b = bollard_factory(conf(apps))
	sessions = [Session(b.port, i) for i in range(12)]
	home = {s.sid: s.get().text().strip() for s in sessions}
	victims = [sid for sid, h in home.items() if h == "app1"]
	assert victims, home
	stop = threading.Event()
	failed = []

	def run(s):
		while not stop.is_set():
			try:
				r = s.get()
				if r.status != 200:
					failed.append((s.sid, r.status))
			except Exception as e:
				failed.append((s.sid, repr(e)))
	ts = [threading.Thread(target=run, args=(s,)) for s in sessions]
	for t in ts:
		t.start()
	try:
		time.sleep(0.7)
		os.kill(apps[0].pid, signal.SIGKILL)
		time.sleep(1.5)
	finally:
		stop.set()
		for t in ts:
			t.join(10)
	assert failed == [], failed[:5]
	for s in sessions:
		sid = s.sid
		es = entries(b, sid, s.n)  # every request answered is logged, just after
		moved = [e for e in es if e.get("persist") == "moved"]
		if sid in victims:
			assert len(moved) == 1, (sid, moved)
			after = es[es.index(moved[0]) + 1:]
			assert after and all(e["persist"] == "hit" for e in after), after[:3]
			assert all(e["server"] == moved[0]["server"] != "app1" for e in after), (
				moved[0], [(e["target"], e["server"], e["persist"]) for e in after][:5])
		else:
			assert moved == [], (sid, moved)
			assert all(e["server"] == home[sid] for e in es)


def test_replica_takes_the_sessions(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(3)
	b = bollard_factory(conf(apps, on_down="replica", replica=True))
	sessions = [Session(b.port, i) for i in range(9)]
	home = {s.sid: s.get().text().strip() for s in sessions}
	assert ctl(bollard_bin, b, "set server be/app1 state maint").returncode == 0
	for s in sessions:
		got = s.get().text().strip()
		if home[s.sid] == "app1":
			assert got == "app2", (s.sid, got)  # app1's replica
			e = entries(b, s.sid, 2)[-1]
			assert e["persist"] == "moved" and e.get("persist_reason") == "maint", e
			assert s.get().text().strip() == "app2"  # moved once: now a hit
			assert entries(b, s.sid, 3)[-1]["persist"] == "hit"
		else:
			assert got == home[s.sid]


def test_on_server_down_fail_answers_503(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps, on_down="fail"))
	sessions = [Session(b.port, i) for i in range(6)]
	home = {s.sid: s.get().text().strip() for s in sessions}
	assert ctl(bollard_bin, b, "set server be/app1 state maint").returncode == 0
	for s in sessions:
		r = s.get()
		if home[s.sid] == "app1":
			assert r.status == 503 and r.headers.get("Retry-After"), r
		else:
			assert r.status == 200 and r.text().strip() == home[s.sid]


def connect_fail_conf(apps, on_down):
	# app1's replica is app2, which takes no new sessions (weight 0): the
	# balancer would never choose it, so a session that lands there after a
	# connect failure was sent by the on-server-down policy. `fall 1000`
	# keeps app1 from being marked down: every failure is a connect failure.
	a1, a2, a3 = apps
	return ("global\n    threads 1\n    log stdout\n    log-format json\n"
		"    stats-listen 127.0.0.1:{port_stats}\n"
		"defaults\n    timeout connect 1s\n    timeout server 5s\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    retries 2\n    on-server-down %s\n"
		"    persist cookie BOLLARD insert\n"
		"    server app1 127.0.0.1:%d replica app2 fall 1000\n"
		"    server app2 127.0.0.1:%d weight 0\n"
		"    server app3 127.0.0.1:%d\n" % (on_down, a1.port, a2.port, a3.port))


def kill_app1_under_sessions(demo_apps, bollard_factory, on_down, n):
	"""Start the three apps and bollard, open 2n sessions (half of them on
	app1, the others on app3), kill app1; returns bollard and app1's."""
	apps = demo_apps(3)
	b = bollard_factory(connect_fail_conf(apps, on_down))
	sessions = [Session(b.port, i) for i in range(2 * n)]
	home = {s.sid: s.get().text().strip() for s in sessions}
	assert set(home.values()) == {"app1", "app3"}, home
	util.stop_process(apps[0].proc, signal.SIGKILL)
	return b, [s for s in sessions if home[s.sid] == "app1"]


def moved_metric(b, reason):
	text = util.request(b.ports["port_stats"], "GET", "/metrics").text()
	for line in text.splitlines():
		if line.startswith("bollard_persistence_moved_total{") and 'reason="%s"' % reason in line:
			return int(float(line.rsplit(" ", 1)[1]))
	return 0


def test_connect_failure_follows_replica(demo_apps, bollard_factory):
	# Issue 9 item 15: app1's process is gone but not marked down; its
	# sessions go to its replica, not to a server the balancer picks, and
	# each moves once.
	b, victims = kill_app1_under_sessions(demo_apps, bollard_factory, "replica", 4)
	for s in victims:
		r = s.get()
		assert r.status == 200 and r.text().strip() == "app2", (s.sid, r.status, r.text())
		e = entries(b, s.sid, 2)[-1]
		assert e["persist"] == "moved" and e.get("persist_reason") == "connect", e
		assert e["server"] == "app2", e
	# moved once: the new cookie names app2, no connect to app1 any more
	for s in victims:
		assert s.get().text().strip() == "app2"
		assert entries(b, s.sid, 3)[-1]["persist"] == "hit"
	assert moved_metric(b, "connect") == len(victims)


def test_connect_failure_follows_fail(demo_apps, bollard_factory):
	b, victims = kill_app1_under_sessions(demo_apps, bollard_factory, "fail", 3)
	for s in victims:
		r = s.get()
		assert r.status == 503 and r.headers.get("Retry-After"), (s.sid, r)
		e = entries(b, s.sid, 2)[-1]
		assert e.get("term") == "session-server-down" and e["server"] == "app1", e
	# a new session is still balanced (to app3: app1 fails, app2 takes none)
	r = util.request(b.port, "GET", "/whoami")
	assert r.status == 200 and r.text().strip() == "app3", r
