"""The dashboard and its HTTP API on `stats-listen` (SPEC §7, doc/dashboard.md):
GET / is one self-contained page; /api/stats, /api/sessions agree with the
runtime API; POST /api/server (stats-admin on) changes a server's state and
is refused cross-site (403) or when stats-admin is off (405); stats-auth
puts every path behind HTTP basic auth. Black-box, through the real binary.
(The browser-level test is tests/browser/dashboard.test.mjs.)"""

import base64
import hashlib
import json
import os
import re
import signal
import subprocess

import util

ADMIN_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    stats-listen 127.0.0.1:{port_stats}
    stats-admin on
    stats-host test
"""

PERSIST = "    persist source expire 30m\n"


def _start(demo_apps, bollard_factory, config_for, global_extra=ADMIN_GLOBAL, n=2):
	apps = demo_apps(n)
	b = bollard_factory(config_for(apps, global_extra=global_extra, backend_extra=PERSIST))
	sock = os.path.join(os.path.dirname(str(b.conf_path)), "bollard.sock")
	return b, apps, sock


def _ctl_json(bollard_bin, sock, *words):
	r = subprocess.run([bollard_bin, "ctl", "-s", sock, "json"] + list(words),
			   capture_output=True, text=True, timeout=15)
	assert r.returncode == 0, r.stderr
	return json.loads(r.stdout)


def _post(port, body, headers=None, csrf=True):
	h = [("Content-Type", "application/x-www-form-urlencoded")]
	if csrf:
		h.append(("X-Bollard-Csrf", "1"))
	h += list(headers or [])
	return util.request(port, "POST", "/api/server", headers=h, body=body.encode())


def _state(port, server):
	for s in util.request(port, "GET", "/api/servers").json()["servers"]:
		if s["server"] == server:
			return s["state"]
	raise AssertionError("no server %s in /api/servers" % server)


def _traffic(b, n=10):
	for _ in range(n):
		assert util.request(b.port, "GET", "/").status == 200


def test_page_is_self_contained(demo_apps, bollard_factory, config_for):
	b, _, _ = _start(demo_apps, bollard_factory, config_for)
	r = util.request(b.ports["port_stats"], "GET", "/")
	assert r.status == 200
	assert r.headers.get("content-type").startswith("text/html")
	page = r.text()
	assert "<script>" in page and "<style>" in page and "/api/stats" in page
	# no URL to another host: no http(s)://, no protocol-relative //host
	# (the SVG namespace URI is a name, not something fetched)
	urls = [u for u in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+", page)
		if u != "http://www.w3.org"]
	assert urls == [], urls
	assert not re.search(r"<(?:link|img|iframe)\b|src\s*=", page, re.I)
	csp = r.headers.get("content-security-policy")
	assert csp and "default-src 'none'" in csp
	h = util.request(b.ports["port_stats"], "HEAD", "/")
	assert h.status == 200 and h.body == b""


def _settled(sp, requests, sessions):
	"""Wait until /api/stats shows `requests` persistence decisions and
	`sessions` persistent sessions in all: the observable end of the
	asynchronous bookkeeping of the requests already answered."""
	def done():
		(be,) = util.request(sp, "GET", "/api/stats").json()["backends"]
		decided = sum(m[r] for m in be["persistence"] for r in
			      ("hit", "new", "moved", "invalid", "expired"))
		return decided == requests and sum(s["sessions"] for s in be["servers"]) == sessions
	util.wait_until(done, what="%d decisions and %d sessions in /api/stats"
			% (requests, sessions))


def test_json_apis_agree_with_ctl(demo_apps, bollard_factory, config_for, bollard_bin):
	b, apps, sock = _start(demo_apps, bollard_factory, config_for)
	sp = b.ports["port_stats"]
	_traffic(b, 10)
	# Sessions per server are recounted from the tables once a second and
	# a decision is counted when its request is logged: wait until both
	# show the traffic, after which nothing moves any more, so that the
	# two interfaces read the same state (issue 10 item 17).
	_settled(sp, requests=10, sessions=1)
	servers = util.request(sp, "GET", "/api/servers").json()
	assert servers == _ctl_json(bollard_bin, sock, "show", "servers")
	sess = util.request(sp, "GET", "/api/sessions?backend=be&limit=10")
	assert sess.status == 200 and sess.headers.get("content-type") == "application/json"
	# the same entries, keys redacted without stats-auth (test_stats_security.py)
	want = _ctl_json(bollard_bin, sock, "show", "sessions", "be", "limit", "10")["sessions"]
	assert [dict(e, key=None) for e in sess.json()["sessions"]] == [dict(e, key=None) for e in want]
	assert len(sess.json()["sessions"]) == 1       # one client address, one session
	assert util.request(sp, "GET", "/api/sessions?backend=nope").status == 404
	assert util.request(sp, "GET", "/api/sessions").status == 400
	info = util.request(sp, "GET", "/api/info").json()
	assert info["version"] == _ctl_json(bollard_bin, sock, "show", "info")["version"]

	st = util.request(sp, "GET", "/api/stats").json()
	assert st["admin"] is True and st["time_ms"] > 0
	(be,) = st["backends"]
	assert be["name"] == "be" and be["requests"] >= 10
	assert [s["name"] for s in be["servers"]] == [a.name for a in apps]
	assert sum(s["requests"] for s in be["servers"]) >= 10
	assert sum(s["responses"]["2xx"] for s in be["servers"]) >= 10
	(m,) = be["persistence"]
	assert m["method"] == "source"
	assert m["new"] >= 1 and m["hit"] >= 9
	assert set(m) == {"method", "hit", "new", "moved", "invalid", "expired"}
	assert sum(s["sessions"] for s in be["servers"]) == 1
	for s in be["servers"]:
		assert s["state"] == "ready" and s["active"] >= 0


def test_post_changes_state(demo_apps, bollard_factory, config_for):
	b, apps, _ = _start(demo_apps, bollard_factory, config_for)
	sp = b.ports["port_stats"]
	r = _post(sp, "backend=be&server=app1&state=drain")
	assert r.status == 200, r.body
	assert r.json()["state"] == "drain"
	assert _state(sp, "app1") == "drain"
	# a browser's same-origin POST: Origin names the Host it was sent to
	r = _post(sp, "backend=be&server=app1&state=maint",
		  headers=[("Origin", "http://test"), ("Sec-Fetch-Site", "same-origin")])
	assert r.status == 200, r.body
	assert _state(sp, "app1") == "maint"
	assert _post(sp, "backend=be&server=app1&state=ready").status == 200
	assert _state(sp, "app1") == "ready"
	# errors are JSON and change nothing
	assert _post(sp, "backend=be&server=nope&state=drain").status == 404
	assert _post(sp, "backend=be&server=app1&state=down").status == 400
	assert _post(sp, "backend=be&server=app1").status == 400
	assert _state(sp, "app1") == "ready"
	# a GET cannot change anything
	assert util.request(sp, "GET", "/api/server?backend=be&server=app1&state=drain").status == 405
	assert _state(sp, "app1") == "ready"


def test_post_cross_site_refused(demo_apps, bollard_factory, config_for):
	b, _, _ = _start(demo_apps, bollard_factory, config_for)
	sp = b.ports["port_stats"]
	body = "backend=be&server=app1&state=drain"
	assert _post(sp, body, csrf=False).status == 403
	assert _post(sp, body, headers=[("Origin", "http://evil.example")]).status == 403
	assert _post(sp, body, headers=[("Origin", "null")]).status == 403
	assert _post(sp, body, headers=[("Sec-Fetch-Site", "cross-site")]).status == 403
	assert _post(sp, body, headers=[("Sec-Fetch-Site", "same-site")]).status == 403
	# what a cross-site HTML form can send: no custom header
	assert _post(sp, body, csrf=False, headers=[("Origin", "http://test")]).status == 403
	assert _state(sp, "app1") == "ready"
	# a body over the limit is refused whole
	big = body + "&pad=" + "x" * 5000
	assert _post(sp, big).status == 413
	assert _state(sp, "app1") == "ready"


def test_post_refused_without_stats_admin(demo_apps, bollard_factory, config_for):
	g = ADMIN_GLOBAL.replace("stats-admin on", "stats-admin off")
	b, _, _ = _start(demo_apps, bollard_factory, config_for, global_extra=g)
	sp = b.ports["port_stats"]
	r = _post(sp, "backend=be&server=app1&state=drain")
	assert r.status == 405
	assert "POST" not in r.headers.get("allow")
	assert _state(sp, "app1") == "ready"
	assert util.request(sp, "GET", "/api/stats").json()["admin"] is False


def _basic(user, pw):
	return [("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode())]


def test_basic_auth(demo_apps, bollard_factory, config_for, tmp_path):
	salt = "c2FsdA"
	digest = hashlib.sha256((salt + "s3cret two").encode()).hexdigest()
	auth = tmp_path / "stats.auth"
	auth.write_text("# operators\nalice:plain-pw\nbob:$sha256$%s$%s\n" % (salt, digest))
	os.chmod(auth, 0o600)
	g = ADMIN_GLOBAL + "    stats-auth %s\n" % auth
	b, _, _ = _start(demo_apps, bollard_factory, config_for, global_extra=g)
	sp = b.ports["port_stats"]
	for path in ("/", "/metrics", "/api/servers", "/api/stats", "/api/info"):
		r = util.request(sp, "GET", path)
		assert r.status == 401, path
		assert r.headers.get("www-authenticate").startswith("Basic realm=")
	for user, pw in (("alice", "wrong"), ("bob", "s3cret"), ("carol", "plain-pw"),
			 ("alice", "plain-pw2"), ("bob", "$sha256$%s$%s" % (salt, digest))):
		assert util.request(sp, "GET", "/api/info", headers=_basic(user, pw)).status == 401
	assert util.request(sp, "GET", "/api/info",
			    headers=[("Authorization", "Basic !!!")]).status == 401
	assert util.request(sp, "GET", "/", headers=_basic("alice", "plain-pw")).status == 200
	assert util.request(sp, "GET", "/metrics", headers=_basic("bob", "s3cret two")).status == 200
	# auth comes before anything else: no state change without it
	assert _post(sp, "backend=be&server=app1&state=drain").status == 401
	r = _post(sp, "backend=be&server=app1&state=drain", headers=_basic("alice", "plain-pw"))
	assert r.status == 200
	assert util.request(sp, "GET", "/api/servers",
			    headers=_basic("alice", "plain-pw")).json()["servers"][0]["state"] == "drain"


def test_auth_file_readable_by_others_refused(bollard_run, tmp_path):
	auth = tmp_path / "stats.auth"
	auth.write_text("alice:pw\n")
	os.chmod(auth, 0o644)
	conf = ("global\n    stats-listen 127.0.0.1:%d\n    stats-auth %s\n\n"
		"frontend fe\n    bind 127.0.0.1:%d\n    default-backend be\n\n"
		"backend be\n    server a 127.0.0.1:9\n" % (util.free_port(), auth, util.free_port()))
	r = bollard_run("-c", "{conf}", config=conf)
	assert r.returncode != 0
	assert "stats-auth" in r.stderr and "0644" in r.stderr
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode != 0 and "0644" in (r.stdout + r.stderr)
	os.chmod(auth, 0o600)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 0, r.stdout + r.stderr
	auth.write_text("no colon here\n")
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode != 0 and "stats.auth:1" in (r.stdout + r.stderr)


def _stats_servers(sp):
	(be,) = util.request(sp, "GET", "/api/stats").json()["backends"]
	return be, {s["name"]: s for s in be["servers"]}


def test_api_stats_server_details(demo_apps, bollard_factory, config_for):
	"""What the dashboard shows per server besides the counters (issue 10
	item 15): backup, the configured weight and its slow start, the queue,
	and no cookie estimate without an insert cookie."""
	apps = demo_apps(3)
	servers = [(apps[0].name, apps[0].port, "weight 50 slowstart 30s"),
		   (apps[1].name, apps[1].port, "maxconn 4"),
		   (apps[2].name, apps[2].port, "backup")]
	b = bollard_factory(config_for(servers, global_extra=ADMIN_GLOBAL, backend_extra=PERSIST))
	be, s = _stats_servers(b.ports["port_stats"])
	assert be["cookie_window_ms"] == 0
	assert s["app1"]["weight_target"] == 50 and s["app1"]["weight"] == 50
	assert s["app1"]["slowstart_ms"] == 30000 and s["app2"]["slowstart_ms"] == 0
	assert [s[n]["backup"] for n in ("app1", "app2", "app3")] == [False, False, True]
	for n in s:
		assert s[n]["queued"] == 0 and s[n]["cookie_sessions"] is None, s[n]


def test_api_stats_cookie_sessions_estimate(demo_apps, bollard_factory, config_for):
	"""Insert-cookie sessions live in the clients, so no table counts them:
	/api/stats estimates them per server (hll.c, about 3% standard error).
	300 sessions, each seen twice: the estimate is near the number of
	sessions each server took, not of requests."""
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra=ADMIN_GLOBAL,
				       backend_extra="    persist cookie BOLLARD insert max-idle 30m\n"))
	sp = b.ports["port_stats"]
	took = {"app1": 0, "app2": 0}
	cookies = []
	for _ in range(300):
		r = util.request(b.port, "GET", "/whoami")
		assert r.status == 200
		took[r.headers.get("x-server")] += 1
		cookies.append(r.headers.get("set-cookie").split(";")[0])
	be, s = _stats_servers(sp)
	assert be["cookie_window_ms"] == 30 * 60 * 1000
	for n, want in took.items():
		assert abs(s[n]["cookie_sessions"] - want) <= 0.1 * want + 1, (n, want, s[n])
	# a reload keeps the estimate: the new generation counts into the
	# estimator the old one filled (reload.c)
	reloads = util.request(sp, "GET", "/api/info").json()["reloads"]
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: util.request(sp, "GET", "/api/info").json()["reloads"] == reloads + 1,
			what="the reload")
	be, s = _stats_servers(sp)
	for n, want in took.items():
		assert abs(s[n]["cookie_sessions"] - want) <= 0.1 * want + 1, (n, want, s[n])
	for c in cookies:   # every session comes back once: still one session each
		assert util.request(b.port, "GET", "/whoami", headers=[("Cookie", c)]).status == 200
	be, s = _stats_servers(sp)
	assert sum(m["hit"] for m in be["persistence"]) == 300
	for n, want in took.items():
		assert abs(s[n]["cookie_sessions"] - want) <= 0.1 * want + 1, (n, want, s[n])
		assert s[n]["sessions"] == 0     # no table holds them


def test_api_stats_queue_length(demo_apps, bollard_factory, config_for):
	"""A persistent request waiting for its full server (maxconn) shows in
	the server's queue, and leaves it when served."""
	(app,) = demo_apps(1, threads=2)
	b = bollard_factory(config_for([(app.name, app.port, "maxconn 1")], global_extra=ADMIN_GLOBAL,
				       backend_extra="    persist cookie BOLLARD insert\n",
				       timeouts={"queue": "10s"}))
	sp = b.ports["port_stats"]
	r = util.request(b.port, "GET", "/whoami")
	cookie = [("Cookie", r.headers.get("set-cookie").split(";")[0])]
	slow = util.Conn.connect(b.port)
	slow.send(util.build_request("GET", "/slow?ms=4000", headers=cookie))
	util.wait_until(lambda: _stats_servers(sp)[1]["app1"]["active"] == 1, what="the slow request")
	waiting = util.Conn.connect(b.port)
	waiting.send(util.build_request("GET", "/whoami", headers=cookie))
	util.wait_until(lambda: _stats_servers(sp)[1]["app1"]["queued"] == 1, what="one queued")
	assert util.read_response(slow).status == 200
	assert util.read_response(waiting).status == 200
	util.wait_until(lambda: _stats_servers(sp)[1]["app1"]["queued"] == 0, what="the queue empty")
	slow.close()
	waiting.close()
