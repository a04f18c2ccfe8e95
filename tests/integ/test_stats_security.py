"""The stats listener against a hostile browser and an unauthenticated
reader (issue 9 items 6 and 7), through the real binary: DNS rebinding
cannot drain a server (the Host of a state-changing request must be a name
of the listener: its address, localhost, or `stats-host`), and
/api/sessions shows learned session cookies and client addresses only to
an authenticated admin.
"""

import base64
import os
import re
import subprocess

import util

GLOBAL = """
    admin-socket {tmp}/bollard.sock
    stats-listen 127.0.0.1:{port_stats}
    stats-admin on
"""


def post(port, host, origin=True):
	"""A drain as the dashboard's own fetch sends it, seen from the page's
	origin http://HOST: same-origin by every browser rule."""
	h = [("Host", host), ("Content-Type", "application/x-www-form-urlencoded"),
	     ("X-Bollard-Csrf", "1"), ("Sec-Fetch-Site", "same-origin")]
	if origin:
		h.append(("Origin", "http://" + host))
	return util.request(port, "POST", "/api/server", headers=h,
			    body=b"backend=be&server=app1&state=drain")


def state(port):
	for s in util.request(port, "GET", "/api/servers").json()["servers"]:
		if s["server"] == "app1":
			return s["state"]
	raise AssertionError("no app1")


def ctl(bollard_bin, b, *args):
	sock = os.path.join(os.path.dirname(str(b.conf_path)), "bollard.sock")
	return subprocess.run([bollard_bin, "ctl", "-s", sock] + list(args), capture_output=True,
			      text=True, timeout=15)


def test_dns_rebinding_cannot_drain(demo_apps, bollard_factory, config_for, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra=GLOBAL))
	sp = b.ports["port_stats"]
	# a page of rebind.example.net whose name now resolves to 127.0.0.1:
	# Origin and Host agree, the fetch is same-origin, the header is set
	for host in ("rebind.example.net:%d" % sp, "rebind.example.net", "127.0.0.1.nip.io:%d" % sp):
		r = post(sp, host)
		assert r.status == 403, (host, r, r.body)
		assert "stats-host" in r.json()["error"], r.body
		assert state(sp) == "ready"
	# the listener's own names work
	for host in ("127.0.0.1:%d" % sp, "localhost:%d" % sp, "LOCALHOST", "127.0.0.1"):
		assert post(sp, host).status == 200, host
		assert ctl(bollard_bin, b, "set", "server", "be/app1", "state", "ready").returncode == 0
	# reads are not state changes: a GET names any host
	assert util.request(sp, "GET", "/api/servers",
			    headers=[("Host", "rebind.example.net")]).status == 200
	# stats-host names the rest (a reload takes it)
	text = open(b.conf_path).read()
	with open(b.conf_path, "w") as f:
		f.write(text.replace("    stats-admin on\n",
				     "    stats-admin on\n    stats-host dash.example.com Stats.Example.org\n"))
	assert ctl(bollard_bin, b, "reload").stdout.strip() == "reloaded"
	assert post(sp, "dash.example.com:%d" % sp).status == 200
	assert state(sp) == "drain"
	assert ctl(bollard_bin, b, "set", "server", "be/app1", "state", "ready").returncode == 0
	assert post(sp, "stats.example.org").status == 200
	assert ctl(bollard_bin, b, "set", "server", "be/app1", "state", "ready").returncode == 0
	assert post(sp, "rebind.example.net:%d" % sp).status == 403
	assert post(sp, "dash.example.com.evil.net").status == 403
	assert state(sp) == "ready"


def test_stats_host_checked(bollard_run):
	base = "global\n    stats-listen 127.0.0.1:8404\n%s\nfrontend f\n    bind 127.0.0.1:8080\n" \
	       "    default-backend b\nbackend b\n    server s 127.0.0.1:9000\n"
	r = bollard_run("check", "-c", "{conf}", config=base % "    stats-host dash.example.com [::1]")
	assert r.returncode == 0, r.stderr
	for bad, why in (("stats-host dash.example.com:8404", "without a port"),
			 ("stats-host http://dash", "not a host name"),
			 ("stats-host [nope]", "not a host name")):
		r = bollard_run("check", "-c", "{conf}", config=base % ("    " + bad))
		assert r.returncode == 1 and re.search(r"check\.conf:3: .*%s" % why, r.stderr), (bad, r.stderr)


SESSIONS_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    stats-listen 127.0.0.1:{port_stats}
"""


def make_sessions(b, n=4):
	keys = ["secret-session-%d-Zq7" % i for i in range(n)]
	for k in keys:
		assert util.request(b.port, "GET", "/whoami", headers=[("X-Sess", k)]).status == 200
	return keys


def test_sessions_are_redacted_without_auth(demo_apps, bollard_factory, config_for, bollard_bin):
	"""Item 7: learned session keys are bearer credentials and client
	addresses are personal data: without stats-auth, /api/sessions shows
	a short keyed hash of each key (stable, to correlate), never the key."""
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra=SESSIONS_GLOBAL,
				       backend_extra="    persist header X-Sess\n    persist source"))
	sp = b.ports["port_stats"]
	keys = make_sessions(b)
	raw = ctl(bollard_bin, b, "json", "show", "sessions", "be")
	assert raw.returncode == 0, raw
	full = {(s["method"], s["key"]): s for s in __import__("json").loads(raw.stdout)["sessions"]}
	assert {k for _, k in full} == set(keys) | {"127.0.0.1"}, full   # the socket shows them

	def api():
		r = util.request(sp, "GET", "/api/sessions?backend=be")
		assert r.status == 200, r
		for secret in keys + ["127.0.0.1"]:
			assert secret.encode() not in r.body, r.body
		return r.json()["sessions"]
	first = api()
	assert len(first) == len(full)
	for s in first:
		assert re.fullmatch(r"#[0-9a-f]{16}", s["key"]), s
	assert len({s["key"] for s in first}) == len(first)      # distinct keys, distinct hashes
	assert sorted(s["key"] for s in api()) == sorted(s["key"] for s in first)  # stable
	# the rest of each entry is as the runtime API has it
	by_server = sorted((s["method"], s["server"]) for s in first)
	assert by_server == sorted((m, s["server"]) for (m, _), s in full.items())
	# nothing else on the listener carries them either
	for path in ("/", "/api/stats", "/api/servers", "/metrics"):
		body = util.request(sp, "GET", path).body
		for secret in keys:
			assert secret.encode() not in body, path


def test_sessions_shown_to_an_authenticated_admin(demo_apps, bollard_factory, config_for,
						 bollard_bin, tmp_path):
	auth = tmp_path / "stats.users"
	auth.write_text("admin:pw-Xk2\n")
	os.chmod(auth, 0o600)
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra=SESSIONS_GLOBAL + "    stats-auth %s\n" % auth,
				       backend_extra="    persist header X-Sess"))
	sp = b.ports["port_stats"]
	keys = make_sessions(b)
	assert util.request(sp, "GET", "/api/sessions?backend=be").status == 401
	cred = [("Authorization", "Basic " + base64.b64encode(b"admin:pw-Xk2").decode())]
	r = util.request(sp, "GET", "/api/sessions?backend=be", headers=cred)
	assert r.status == 200, r
	assert sorted(s["key"] for s in r.json()["sessions"]) == sorted(keys)
