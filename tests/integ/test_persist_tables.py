"""Table-based persistence through the real binary (SPEC §3.1, issue 3).

`persist learn`, `source`, `header`, `url-param` and `jwt` remember a key
found in the request (or, for learn, in the server's Set-Cookie) in a
persistence table. These tests run bollard in front of three demo apps with
round robin, so that without persistence consecutive requests would visit
different servers, and check that every request carrying the same key
reaches the same server, that the access log says persist=new on the first
and persist=hit after, and that a malformed or forged JWT is a miss (a new
assignment), never an error. The last test checks that every annotated
configuration in examples/ passes `bollard check`.

Which server answered is read from the demo app's X-Server header (it is
there on every response, even a 404), the decision from the JSON access
log, found by a unique query parameter on each request.
"""

import base64
import hashlib
import hmac
import itertools
import json
import re
import os
import subprocess
from pathlib import Path

import pytest

import util

ROOT = Path(__file__).resolve().parents[2]
_seq = itertools.count(1)


def persist_config(config_for, servers, persist, balance="roundrobin"):
	return config_for(servers, balance=balance, log_format="json",
			  backend_extra="\n".join("    " + p for p in persist.splitlines() if p.strip()))


def tag(path="/whoami"):
	return "%s%st=%d" % (path, "&" if "?" in path else "?", next(_seq))


def served(b, path, headers=()):
	"""(server name, response) of one request on a fresh connection."""
	r = util.request(b.port, "GET", path, list(headers))
	assert r.status < 500, r
	srv = r.headers.get("X-Server")
	assert srv, r.headers
	return srv, r


def decision(b, target):
	e = b.wait_log(lambda x: x.get("target") == target)[0]
	return e.get("persist"), e.get("persist_method")


def sticky(b, path_fn, n, method, headers_fn=lambda i: ()):
	"""n requests built by path_fn(i)/headers_fn(i): the first is new, the
	rest hit the same server. Returns that server."""
	home = None
	for i in range(n):
		t = path_fn(i)
		srv, _ = served(b, t, headers_fn(i))
		if home is None:
			home = srv
			assert decision(b, t) == ("new", method)
		else:
			assert srv == home, "request %d went to %s, session is on %s" % (i, srv, home)
			assert decision(b, t) == ("hit", method)
	return home


@pytest.fixture
def three(demo_apps):
	return demo_apps(3)


# ---------------------------------------------------------------- learn

def test_learn_from_set_cookie(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist learn DEMOSESSID"))
	t = tag("/?format=json")
	home, r = served(b, t)
	j = r.json()
	assert j["new"] is True and j["server"] == home
	sid = j["session"]
	assert decision(b, t) == ("new", "learn")
	# Cookie header: the app sees the same session, visits grow
	for i in range(5):
		t = tag("/?format=json")
		srv, r = served(b, t, [("Cookie", "a=b; DEMOSESSID=%s" % sid)])
		assert srv == home
		j = r.json()
		assert j["session"] == sid and j["new"] is False and j["visits"] == i + 2, j
		assert decision(b, t) == ("hit", "learn")
	# ;name= path parameter, name matched case-insensitively (servlet style)
	for name in ("demosessid", "DEMOSESSID", "DemoSessId"):
		t = tag("/whoami;%s=%s" % (name, sid))
		srv, _ = served(b, t)
		assert srv == home, name
		assert decision(b, t) == ("hit", "learn")
	# query parameter (URL rewriting)
	for i in range(3):
		t = tag("/whoami?DEMOSESSID=%s" % sid)
		srv, _ = served(b, t)
		assert srv == home
		assert decision(b, t) == ("hit", "learn")
	# an unknown value is a miss, not an error
	t = tag("/whoami")
	served(b, t, [("Cookie", "DEMOSESSID=%s" % ("f" * 32))])
	assert decision(b, t) == ("new", "learn")


def test_learn_spreads_sessions_and_keeps_each(demo_apps, bollard_factory, config_for):
	apps = demo_apps(3, extra_args=("--session-cookie", "JSESSIONID"))
	b = bollard_factory(persist_config(config_for, apps, "persist learn JSESSIONID expire 10m size 1000"))
	sessions = []
	for _ in range(6):
		srv, r = served(b, tag("/?format=json"))
		sessions.append((r.json()["session"], srv))
	assert len({s for _, s in sessions}) == 3  # round robin placed them
	for _ in range(2):
		for sid, home in sessions:
			t = tag("/?format=json")
			srv, r = served(b, t, [("Cookie", "JSESSIONID=" + sid)])
			assert srv == home and r.json()["session"] == sid
			assert decision(b, t) == ("hit", "learn")


def test_learn_name_in_another_case_is_exact_but_said(demo_apps, bollard_factory, config_for,
						      bollard_run):
	"""`persist learn jsessionid` in front of a server that writes JSESSIONID:
	RFC 6265 cookie names are case-sensitive, so nothing is learned (kept
	so), but bollard says it once at run time and `check` says it before
	(issue 9 item 19)."""
	apps = demo_apps(2, extra_args=("--session-cookie", "JSESSIONID"))
	conf = persist_config(config_for, apps, "persist learn jsessionid")
	checked = conf.replace("{port}", "18080")
	r = bollard_run("check", "-c", "{conf}", config=checked)
	line = [i + 1 for i, ln in enumerate(conf.splitlines()) if "persist learn" in ln][0]
	assert r.returncode == 0, r
	assert re.search(r"check\.conf:%d: warning: persist learn jsessionid: cookie names are "
			 r"case-sensitive \(RFC 6265\) and Java servlet containers .* writes "
			 r"JSESSIONID" % line, r.stderr), r.stderr
	b = bollard_factory(conf)
	for _ in range(3):  # three new sessions: nothing learned, said once
		t = tag("/?format=json")
		served(b, t)
		assert decision(b, t) == ("new", "learn")
	sid = served(b, tag("/?format=json"))[1].json()["session"]
	t = tag("/?format=json")
	served(b, t, [("Cookie", "JSESSIONID=" + sid)])
	assert decision(b, t) == ("new", "learn")
	warn = [ln for ln in b.stderr_text().splitlines()
		if "persist learn jsessionid learns nothing" in ln]
	assert len(warn) == 1, b.stderr_text()
	assert "Set-Cookie JSESSIONID" in warn[0] and "'persist learn JSESSIONID'" in warn[0], warn
	# the exact name warns about nothing
	r = bollard_run("check", "-c", "{conf}", config=checked.replace("jsessionid", "JSESSIONID"))
	assert r.returncode == 0 and "warning" not in r.stderr, r


# ---------------------------------------------------------------- source

def test_source(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist source mask4 32 expire 5m"))
	home = sticky(b, lambda i: tag(), 10, "source")
	assert home in {a.name for a in three}


def test_source_mask_zero_puts_everyone_together(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist source mask4 0"))
	sticky(b, lambda i: tag(), 6, "source")


# ---------------------------------------------------------------- header, url-param

def test_header(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist header X-User"))
	homes = {}
	for user in ("alice", "bob", "carol"):
		homes[user] = sticky(b, lambda i: tag(), 1, "header", lambda i, u=user: [("X-User", u)])
	assert len(set(homes.values())) == 3, homes
	for _ in range(3):
		for user, home in homes.items():
			t = tag()
			# header names are case-insensitive (RFC 9110 5.1)
			srv, _ = served(b, t, [("x-user", user)])
			assert srv == home
			assert decision(b, t) == ("hit", "header")
	t = tag()
	served(b, t)
	assert decision(b, t) == ("new", "header")


def test_url_param(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist url-param uid"))
	homes = {}
	for uid in ("17", "42", "99"):
		homes[uid] = sticky(b, lambda i, u=uid: tag("/whoami?uid=%s" % u), 1, "url-param")
	assert len(set(homes.values())) == 3, homes
	for _ in range(3):
		for uid, home in homes.items():
			t = tag("/echo?x=1&uid=%s" % uid)
			srv, _ = served(b, t)
			assert srv == home
			assert decision(b, t) == ("hit", "url-param")


# ---------------------------------------------------------------- jwt

def b64u(data):
	return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, key=b"secret", alg="HS256"):
	head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
	body = b64u(json.dumps(claims).encode())
	sig = hmac.new(key, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
	return "%s.%s.%s" % (head, body, b64u(sig))


def bearer(tok):
	return [("Authorization", "Bearer " + tok)]


def test_jwt_sub_from_bearer(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist jwt sub"))
	homes = {}
	for user in ("u1", "u2", "u3"):
		homes[user] = sticky(b, lambda i: tag(), 1, "jwt",
				     lambda i, u=user: bearer(jwt({"sub": u, "iat": 1})))
	assert len(set(homes.values())) == 3, homes
	for n in range(3):
		for user, home in homes.items():
			t = tag()
			# a different token (other claims) with the same sub: same server
			srv, _ = served(b, t, bearer(jwt({"sub": user, "iat": 100 + n, "x": "y" * n})))
			assert srv == home
			assert decision(b, t) == ("hit", "jwt")
	# malformed tokens are a miss, never an error
	for bad in ("abc", "a.b.c", "..", "x.%s.y" % b64u(b"not json"), b64u(b"{}") + ".",
		    jwt({"name": "no sub"}), "." * 200, jwt({"sub": 7})[:-5] + "!!!!!"):
		t = tag()
		srv, r = served(b, t, bearer(bad))
		assert r.status == 200, (bad, r)
		assert decision(b, t)[0] == "new", bad


def test_jwt_from_header_and_cookie(three, bollard_factory, config_for):
	b = bollard_factory(persist_config(config_for, three, "persist jwt tenant from header X-Token"))
	home = sticky(b, lambda i: tag(), 5, "jwt",
		      lambda i: [("X-Token", jwt({"tenant": "acme", "n": i}))])
	# the default header is not read by this rule
	t = tag()
	served(b, t, bearer(jwt({"tenant": "acme"})))
	assert decision(b, t) == ("new", "jwt")
	assert home

	b2 = bollard_factory(persist_config(config_for, three, "persist jwt sub from cookie tok"))
	sticky(b2, lambda i: tag(), 5, "jwt",
	       lambda i: [("Cookie", "x=1; tok=%s" % jwt({"sub": "zed", "n": i}))])


def test_jwt_verify_hs256(three, bollard_factory, config_for, tmp_path):
	keyfile = tmp_path / "jwt.key"
	keyfile.write_text("s3cret-signing-key\n")
	b = bollard_factory(persist_config(config_for, three,
					   "persist jwt sub verify hs256 %s" % keyfile))
	key = b"s3cret-signing-key"
	home = sticky(b, lambda i: tag(), 4, "jwt", lambda i: bearer(jwt({"sub": "v", "i": i}, key)))
	# a bad signature is a miss: new, and not recorded (each time new)
	forged = jwt({"sub": "mallory"}, b"wrong key")
	for _ in range(3):
		t = tag()
		srv, r = served(b, t, bearer(forged))
		assert r.status == 200
		assert decision(b, t) == ("new", "jwt")
	# a token for the victim's sub signed with another key does not reach home
	# by persistence either
	t = tag()
	served(b, t, bearer(jwt({"sub": "v"}, b"wrong key")))
	assert decision(b, t) == ("new", "jwt")
	# alg none, or a tampered payload under a valid signature, is a miss
	good = jwt({"sub": "v"}, key)
	h, p, s = good.split(".")
	for bad in ("%s.%s." % (b64u(b'{"alg":"none"}'), p), "%s.%s.%s" % (h, b64u(b'{"sub":"v2"}'), s)):
		t = tag()
		served(b, t, bearer(bad))
		assert decision(b, t) == ("new", "jwt")
	t = tag()
	assert served(b, t, bearer(good))[0] == home
	assert decision(b, t) == ("hit", "jwt")


# ---------------------------------------------------------------- several rules

def test_several_table_rules_record_every_key(three, bollard_factory, config_for):
	"""header first, url-param second: a fresh assignment is recorded under
	both keys, so the url-param alone finds the same server."""
	b = bollard_factory(persist_config(config_for, three, "persist header X-User\npersist url-param u"))
	t = tag("/whoami?u=k1")
	home, _ = served(b, t, [("X-User", "h1")])
	assert decision(b, t)[0] == "new"
	for _ in range(3):
		t = tag("/whoami?u=k1")
		assert served(b, t)[0] == home
		assert decision(b, t) == ("hit", "url-param")
		t = tag()
		assert served(b, t, [("X-User", "h1")])[0] == home
		assert decision(b, t) == ("hit", "header")


# ---------------------------------------------------------------- examples

EXAMPLES = sorted((ROOT / "examples").glob("*.conf"))


def test_persistence_examples_exist():
	names = {p.name for p in EXAMPLES}
	for m in ("cookie", "learn", "source", "header", "url-param", "jwt"):
		assert "persist-%s.conf" % m in names, names


@pytest.mark.parametrize("conf", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_check(bollard_bin, conf, tmp_path):
	env = dict(os.environ)
	if "BOLLARD_TLS_CRT" in conf.read_text():
		# https.conf takes its certificate from the environment: make one
		crt = tmp_path / "site.pem"
		subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
				"ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "site.key"),
				"-out", str(crt), "-days", "90", "-subj", "/CN=localhost"],
			       check=True, capture_output=True, timeout=30)
		env["BOLLARD_TLS_CRT"] = str(crt)
	r = subprocess.run([bollard_bin, "check", "-c", str(conf)], capture_output=True, text=True,
			   timeout=20, cwd=str(tmp_path), env=env)
	assert r.returncode == 0, "%s:\n%s%s" % (conf, r.stdout, r.stderr)
