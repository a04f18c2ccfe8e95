"""`wait drained` across a reload and a restart (issue 9 item 9), through
the real binary: a rolling deploy that trusts `drained` must not lose the
returning users of the drained server. What makes a server drained (its last
request long enough ago, no table session pointing at it) must survive a
reload, a wait in progress must not answer `drained` because a reload
happened, and after a restart the clients' cookies still count.
"""

import json
import os
import signal
import subprocess
import threading

import util
from test_lifecycle_api import ctl, ctl_ok, servers, visit

DRAIN_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    state-file {tmp}/bollard.state
    secret-file {tmp}/bollard.key
"""


def start(demo_apps, bollard_factory, config_for, persist, apps=None):
	apps = apps or demo_apps(3)
	b = bollard_factory(config_for(apps, log_format="json", threads=2, global_extra=DRAIN_GLOBAL,
				       backend_extra="\n".join("    " + p for p in persist)))
	b.sock = os.path.join(os.path.dirname(str(b.conf_path)), "bollard.sock")
	return b, apps


def users_on(b, server, n=24):
	"""n new users; the cookies of those placed on server (at least one)."""
	mine = []
	for _ in range(n):
		srv, ck, e = visit(b)
		assert ck and e.get("persist") == "new", e
		if srv == server:
			mine.append(ck)
	assert mine, "no user placed on %s" % server
	return mine


class ReturningUsers:
	"""Users coming back with their cookies from a thread until stop();
	counts where they landed."""

	def __init__(self, b, cookies):
		self.b, self.cookies = b, cookies
		self.seen, self.errors = {}, []
		self.done = threading.Event()
		self.thread = threading.Thread(target=self.run, daemon=True)
		self.thread.start()

	def run(self):
		i = 0
		while not self.done.is_set() and i < 5000:
			ck = self.cookies[i % len(self.cookies)]
			i += 1
			try:
				r = util.request(self.b.port, "GET", "/whoami",
						 [("Cookie", "BOLLARD=%s" % ck)], timeout=5)
				srv = r.text().strip() if r.status == 200 else "status %d" % r.status
			except (OSError, util.Closed, AssertionError) as e:
				srv = "failed: %s" % e
			self.seen[srv] = self.seen.get(srv, 0) + 1

	def stop(self):
		self.done.set()
		self.thread.join(timeout=30)
		assert not self.thread.is_alive()
		return self.seen


def reload_and_wait(bollard_bin, b, how):
	def reloads():
		return json.loads(ctl_ok(bollard_bin, b, "json", "show", "info"))["reloads"]
	before = reloads()
	if how == "sighup":
		os.kill(b.pid, signal.SIGHUP)
	else:
		assert ctl_ok(bollard_bin, b, "reload").strip() == "reloaded"
	util.wait_until(lambda: reloads() == before + 1, what="the reload")


def test_reload_keeps_the_drain_clock(demo_apps, bollard_factory, config_for, bollard_bin):
	b, _ = start(demo_apps, bollard_factory, config_for,
		     ["persist cookie BOLLARD insert max-idle 1h"])
	mine = users_on(b, "app1")
	ctl_ok(bollard_bin, b, "set", "server", "be/app1", "state", "drain")
	load = ReturningUsers(b, mine)
	for how in ("api", "sighup", "api"):
		reload_and_wait(bollard_bin, b, how)
	seen = load.stop()
	assert set(seen) == {"app1"}, seen
	# the users of app1 came back a moment ago, and their cookies live an
	# hour: app1 is not drained, right after yet another reload either
	reload_and_wait(bollard_bin, b, "api")
	r = ctl(bollard_bin, b, "wait", "drained", "be/app1", "timeout", "1s")
	assert (r.returncode, r.stdout.split(":")[0].strip()) == (0, "timeout"), r
	# a wait in progress is not answered `drained` by a reload
	waiter = subprocess.Popen([bollard_bin, "ctl", "-s", b.sock, "wait", "drained", "be/app1",
				   "timeout", "3s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
				  text=True)
	try:
		reload_and_wait(bollard_bin, b, "sighup")
		out, err = waiter.communicate(timeout=30)
	finally:
		if waiter.poll() is None:
			waiter.kill()
			waiter.wait()
	assert (waiter.returncode, out.split(":")[0].strip()) == (0, "timeout"), (out, err)
	for ck in mine:
		srv, _, e = visit(b, ck)
		assert (srv, e.get("persist")) == ("app1", "hit"), e


def test_reload_keeps_the_session_count(demo_apps, bollard_factory, config_for, bollard_bin):
	"""A table method: the server is drained when no entry points at it;
	right after a reload its entries are still there."""
	b, _ = start(demo_apps, bollard_factory, config_for, ["persist header X-Sess"])
	placed = {}
	for i in range(12):
		srv, _, e = visit(b, headers=[("X-Sess", "u%d" % i)])
		placed.setdefault(srv, []).append("u%d" % i)
	home = max(placed, key=lambda s: len(placed[s]))
	ctl_ok(bollard_bin, b, "set", "server", "be/" + home, "state", "drain")
	util.wait_until(lambda: servers(bollard_bin, b)[home]["sessions"] == len(placed[home]),
			what="the sessions of %s counted" % home)
	# let the last request grow older than the 2 s every method waits,
	# observed through a wait that times out on the table sessions
	r = ctl(bollard_bin, b, "wait", "drained", "be/" + home, "timeout", "3s")
	assert (r.returncode, r.stdout.split(":")[0].strip()) == (0, "timeout"), r
	reload_and_wait(bollard_bin, b, "api")
	r = ctl(bollard_bin, b, "wait", "drained", "be/" + home, "timeout", "1s")
	assert (r.returncode, r.stdout.split(":")[0].strip()) == (0, "timeout"), r
	assert servers(bollard_bin, b)[home]["sessions"] == len(placed[home])
	for key in placed[home]:
		srv, _, e = visit(b, headers=[("X-Sess", key)])
		assert (srv, e.get("persist")) == (home, "hit"), e


def test_restart_counts_the_cookies_clients_hold(demo_apps, bollard_factory, config_for,
						 bollard_bin):
	"""After a restart no request has reached the server yet in this
	process, but its users' cookies are still valid: not drained."""
	apps = demo_apps(3)
	b, _ = start(demo_apps, bollard_factory, config_for,
		     ["persist cookie BOLLARD insert max-idle 1h"], apps=apps)
	mine = users_on(b, "app1")
	assert b.stop() == 0, b.stderr_text()
	b2, _ = start(demo_apps, bollard_factory, config_for,
		      ["persist cookie BOLLARD insert max-idle 1h"], apps=apps)
	ctl_ok(bollard_bin, b2, "set", "server", "be/app1", "state", "drain")
	r = ctl(bollard_bin, b2, "wait", "drained", "be/app1", "timeout", "1s")
	assert (r.returncode, r.stdout.split(":")[0].strip()) == (0, "timeout"), r
	for ck in mine:
		srv, _, e = visit(b2, ck)
		assert (srv, e.get("persist"), e.get("persist_method")) == ("app1", "hit", "cookie"), e


def test_timeout_names_the_open_connections(demo_apps, bollard_factory, config_for, bollard_bin):
	"""Issue 10 item 14: a wait that times out on a request still running
	says so."""
	b, _ = start(demo_apps, bollard_factory, config_for, ["persist header X-Sess"])
	srv, _, _ = visit(b, headers=[("X-Sess", "slow")])
	ctl_ok(bollard_bin, b, "set", "server", "be/" + srv, "state", "drain")
	with util.Conn.connect(b.port) as c:
		c.send(util.build_request("GET", "/slow?ms=8000", [("X-Sess", "slow")]))
		util.wait_until(lambda: servers(bollard_bin, b)[srv]["conns"] == 1,
				what="the slow request on %s" % srv)
		r = ctl(bollard_bin, b, "wait", "drained", "be/" + srv, "timeout", "500ms")
		assert (r.returncode, r.stdout.split(";")[0]) == (0, "timeout: 1 connection still open"), r
		doc = json.loads(ctl_ok(bollard_bin, b, "json", "wait", "drained", "be/" + srv,
					"timeout", "500ms"))
		assert doc["result"] == "timeout" and doc["open"][0] == "connections", doc
		assert doc["conns"] == 1, doc
