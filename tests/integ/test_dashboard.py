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
import subprocess

import util

ADMIN_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    stats-listen 127.0.0.1:{port_stats}
    stats-admin on
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
	assert sess.json() == _ctl_json(bollard_bin, sock, "show", "sessions", "be", "limit", "10")
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
