"""The demo app's session stores (SPEC 14, issue 14), each through the real
bollard-demo-app against the real server from Debian, started on a free
loopback port in a temporary folder (lab/stores.py, shared with `make lab`):
memory, redis://, memcached://, postgresql:// and jwt, plus --replicate-to.

For each: a session written by one app server is the session another app
server of the same store reads (memory: only its own), the store keeps it
with its TTL, logout deletes it, and a store that is killed or stopped
answers a clear 503 with one log line, within the store timeout, and
serves again once the store is back. The JWT store refuses tampered,
forged, alg-none and expired tokens (built here with the app's key file).
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import util
from helpers_demo import DEMO_BIN, http_request

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
import stores  # noqa: E402

SAN_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


def need(kind):
	why = stores.missing().get(kind)
	if why:
		print("skipping: " + why)
		pytest.skip(why)


class App:
	def __init__(self, name, port, proc, err):
		self.name, self.port, self.proc, self.err = name, port, proc, err

	def stderr(self):
		return Path(self.err).read_text(errors="replace")

	def stats(self):
		return http_request(self.port, "GET", "/stats").json()

	def alive(self):
		return self.proc.poll() is None


@pytest.fixture
def app(tmp_path):
	"""app(name, store, *extra) -> App, started on a free port; all are
	stopped by PID at teardown and their stderr checked for sanitizer
	reports (BOLLARD_DEMO_BIN may name an ASan build)."""
	started = []

	def start(name, store, *extra):
		port = util.free_port()
		out, err = tmp_path / ("%s.out" % name), tmp_path / ("%s.err" % name)
		args = [DEMO_BIN, "--name", name, "--port", str(port), "--store", store,
			"--store-timeout", "300ms", "--threads", "2"] + list(extra)
		proc = util.start_process(args, out, err)
		a = App(name, port, proc, err)
		started.append(a)
		util.wait_port(port, proc=proc, what="demo app %s" % name)
		return a
	yield start
	for a in started:
		util.stop_process(a.proc)
		text = a.stderr()
		for m in SAN_MARKERS:
			assert m not in text, text[-4000:]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
	return str(tmp_path_factory.mktemp("stores"))


@pytest.fixture
def server(workdir):
	"""server(kind) -> a started lab store; stopped at teardown."""
	made = []

	def start(kind):
		need(kind)
		s = stores.KINDS[kind](workdir)
		made.append(s)
		return s.start()
	yield start
	for s in made:
		s.close()                 # resumes it first if a test stopped it


class User:
	"""A browser with one cookie jar, asking for JSON."""

	def __init__(self, cookie_name="DEMOSESSID"):
		self.cookie = None
		self.name = cookie_name

	def headers(self):
		h = [("Accept", "application/json")]
		if self.cookie:
			h.append(("Cookie", "%s=%s" % (self.name, self.cookie)))
		return h

	def _take(self, r):
		for sc in r.header_all("Set-Cookie"):
			name, _, rest = sc.partition("=")
			if name == self.name:
				val = rest.split(";")[0]
				self.cookie = val or None
		return r

	def visit(self, app):
		return self._take(http_request(app.port, "GET", "/", self.headers()))

	def add(self, app, item):
		return self._take(http_request(app.port, "POST", "/cart/add", self.headers()
					       + [("Content-Type", "application/x-www-form-urlencoded")],
					       body=b"item=" + item.encode("latin-1")))

	def logout(self, app):
		return self._take(http_request(app.port, "POST", "/logout", self.headers(), body=b""))


def store_spec(kind, server):
	if kind in ("memory", "jwt"):
		return kind
	return server(kind).url()


def extra_for(kind, tmp_path):
	return ["--key-file", str(tmp_path / "jwt.key")] if kind == "jwt" else []


SHARED = ["redis", "memcached", "postgresql", "jwt"]


@pytest.mark.parametrize("kind", SHARED)
def test_shared_store_serves_the_session_on_any_app(kind, app, server, tmp_path):
	spec = store_spec(kind, server)
	a1 = app("app1", spec, *extra_for(kind, tmp_path))
	a2 = app("app2", spec, *extra_for(kind, tmp_path))
	u = User()
	j = u.visit(a1).json()
	assert j["new"] is True and j["visits"] == 1 and j["store"] == kind, j
	sid = j["session"]
	assert u.add(a2, "red shoe!").json()["cart"] == ["red shoe!"]
	assert u.add(a1, "caf\xe9").json()["cart"] == ["red shoe!", "caf\xe9"]
	for i, a in enumerate([a2, a1, a2]):
		j = u.visit(a).json()
		assert j["server"] == a.name and j["session"] == sid and j["new"] is False, j
		assert j["visits"] == 2 + i and j["cart_total"] == 2, j
		assert j["cart"] == ["red shoe!", "caf\xe9"], j
	# the HTML page reads the same session
	r = http_request(a2.port, "GET", "/", u.headers()[1:])
	assert r.status == 200 and b"visit #5" in r.body and b"red shoe!" in r.body
	assert a1.stats()["store_errors"] == 0 and a2.stats()["store"] == kind


def test_memory_store_is_per_process(app):
	a1, a2 = app("app1", "memory"), app("app2", "memory")
	u = User()
	sid = u.visit(a1).json()["session"]
	assert u.visit(a1).json()["visits"] == 2
	j = u.visit(a2).json()
	assert j["new"] is True and j["session"] != sid, j
	assert a1.stats()["sessions"] == 1


def test_memory_session_expires_after_its_ttl(app):
	a = app("app1", "memory", "--session-ttl", "1s")
	u = User()
	sid = u.visit(a).json()["session"]
	time.sleep(1.2)                      # the TTL itself is what is tested
	j = u.visit(a).json()
	assert j["new"] is True and j["session"] != sid, j


@pytest.mark.parametrize("kind", ["memory", "redis", "memcached", "postgresql"])
def test_logout_deletes_the_session(kind, app, server):
	spec = store_spec(kind, server)
	a = app("app1", spec)
	u = User()
	sid = u.visit(a).json()["session"]
	r = u.logout(a)
	assert r.status == 200 and r.body == b"logged out\n" and u.cookie is None, r
	assert "Max-Age=0" in r.header("Set-Cookie")
	# the old cookie, replayed, finds nothing: the store forgot it
	u.cookie = sid
	j = u.visit(a).json()
	assert j["new"] is True and j["session"] != sid, j


def test_redis_keeps_the_session_with_its_ttl(app, server):
	r = server("redis")
	a = app("app1", r.url(), "--session-ttl", "90s")
	u = User()
	sid = u.add(a, "w").json()["session"]
	val = r.command("GET", "demo:sess:" + sid)
	assert val.endswith(b"\r\n1 0 1 1 w\r\n"), val
	ttl = int(r.command("TTL", "demo:sess:" + sid)[1:].split(b"\r\n")[0])
	assert 0 < ttl <= 90, ttl
	# a value that is not the demo app's is a fresh session, not a crash
	r.command("SET", "demo:sess:" + sid, "garbage")
	assert u.visit(a).json()["new"] is True
	assert "not ours" in a.stderr()


def test_memcached_keeps_the_session_with_its_ttl(app, server):
	m = server("memcached")
	a = app("app1", m.url(), "--session-ttl", "90s")
	u = User()
	sid = u.add(a, "w").json()["session"]
	with socket.create_connection(("127.0.0.1", m.port), timeout=5) as s:
		# meta get (memcached 1.6): v = value, t = remaining TTL
		s.sendall(b"mg demo:sess:%s v t\r\n" % sid.encode())
		data = b""
		while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
			data += s.recv(4096)
	head, value = data.split(b"\r\n")[:2]
	assert value == b"1 0 1 1 w", data
	ttl = int([f for f in head.split() if f.startswith(b"t")][0][1:])
	assert 0 < ttl <= 90, head


def test_postgresql_table_upsert_and_expiry(app, server):
	p = server("postgresql")
	# one thread: each thread's first use of its own PostgreSQL connection
	# sweeps the expired rows, and the row must survive until app2's sweep
	# below (with two, the visit after the expiry may land on the thread
	# that has not swept yet, and sweep it there)
	a = app("app1", p.url(), "--session-ttl", "90s", "--threads", "1")
	u = User()
	sid = u.visit(a).json()["session"]
	u.add(a, "w")
	# created when absent, one row per session (an upsert, not an insert)
	assert p.sql("SELECT count(*), min(data) FROM demo_sessions WHERE id = '%s'" % sid) \
		== "1|1 1 1 1 w"
	left = float(p.sql("SELECT extract(epoch FROM expires_at - now()) FROM demo_sessions "
			   "WHERE id = '%s'" % sid))
	assert 0 < left <= 90, left
	# an expired row is no session, and a new connection sweeps it
	p.sql("UPDATE demo_sessions SET expires_at = now() - interval '1 second' WHERE id = '%s'" % sid)
	assert u.visit(a).json()["new"] is True
	assert p.sql("SELECT count(*) FROM demo_sessions WHERE id = '%s'" % sid) == "1"
	a2 = app("app2", p.url())
	User().visit(a2)      # app2's first connection sweeps the expired rows
	assert p.sql("SELECT count(*) FROM demo_sessions WHERE id = '%s'" % sid) == "0"


def test_postgresql_session_survives_a_database_crash(app, server):
	p = server("postgresql")
	a = app("app1", p.url())
	u = User()
	sid = u.add(a, "kept").json()["session"]
	p.kill()
	r = u.visit(a)
	assert r.status == 503, r
	p.start()
	j = util.wait_until(lambda: (lambda r: r.status == 200 and r.json())(u.visit(a)),
			    what="the app serving again")
	assert j["session"] == sid and j["cart"] == ["kept"], j
	assert "is back" in a.stderr()


@pytest.mark.parametrize("kind", ["redis", "memcached", "postgresql"])
def test_store_down_is_a_clear_503_and_one_log_line(kind, app, server):
	s = server(kind)
	a = app("app1", s.url())
	u = User()
	assert u.visit(a).status == 200
	s.kill()
	for _ in range(5):
		t = time.monotonic()
		r = u.visit(a)
		assert r.status == 503, r
		assert r.body.startswith(b"session store unavailable: "), r.body
		assert r.header("Retry-After") == "1"
		assert time.monotonic() - t < 5, "the 503 took longer than the store timeout allows"
	err = a.stderr()
	assert err.count("answering 503 while it is down") == 1, err
	assert a.alive() and a.stats()["store_errors"] >= 5
	s.start()
	j = util.wait_until(lambda: (lambda r: r.status == 200 and r.json())(u.visit(a)),
			    what="the app serving again")
	assert j["visits"] >= 1
	assert a.stderr().count("is back") == 1


@pytest.mark.parametrize("kind", ["redis", "memcached", "postgresql"])
def test_stopped_store_costs_a_bounded_wait(kind, app, server):
	"""A store that accepts but never answers (SIGSTOP): each request waits
	at most --store-timeout (300 ms here), then 503; the app keeps serving
	what needs no store, and recovers when the store does."""
	s = server(kind)
	a = app("app1", s.url())
	u = User()
	assert u.visit(a).status == 200
	pids = s.pids()              # PostgreSQL: the backends answer, not the postmaster
	for pid in pids:
		os.kill(pid, signal.SIGSTOP)
	try:
		t = time.monotonic()
		r = u.visit(a)
		waited = time.monotonic() - t
		assert r.status == 503, r
		assert waited < 5, waited
		assert http_request(a.port, "GET", "/healthz").status == 200
	finally:
		for pid in pids:
			os.kill(pid, signal.SIGCONT)
	util.wait_until(lambda: u.visit(a).status == 200, what="the app serving again")


# ---------------------------------------------------------------- jwt

def b64(data):
	return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
	return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key, claims, header=None):
	h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
	p = b64(json.dumps(claims, separators=(",", ":")).encode())
	mac = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
	return "%s.%s.%s" % (h, p, b64(mac))


def claims(sid="ab" * 16, visits=7, exp=None):
	now = int(time.time())
	return {"sid": sid, "visits": visits, "cart_total": 1, "cart": ["x"], "iat": now,
		"exp": now + 600 if exp is None else exp}


def test_jwt_token_carries_the_session_and_reports_its_size(app, tmp_path):
	keyf = tmp_path / "jwt.key"
	a = app("app1", "jwt", "--key-file", str(keyf))
	assert keyf.stat().st_mode & 0o777 == 0o600
	assert len(keyf.read_bytes().strip()) == 64
	u = User()
	j = u.add(a, "w").json()
	tok = u.cookie
	assert j["token_bytes"] == len(tok) and tok.count(".") == 2, (j, tok)
	hdr, payload, _ = tok.split(".")
	assert json.loads(unb64(hdr)) == {"alg": "HS256", "typ": "JWT"}
	c = json.loads(unb64(payload))
	assert c["sid"] == j["session"] and c["cart"] == ["w"] and c["cart_total"] == 1
	assert c["exp"] - c["iat"] == 1800
	# the token grows with the cart, and the server keeps nothing
	for i in range(5):
		j = u.add(a, "item-%d" % i).json()
	assert j["token_bytes"] == len(u.cookie) > len(tok)
	assert a.stats()["sessions"] is None


def test_jwt_refuses_tampered_forged_and_expired_tokens(app, tmp_path):
	keyf = tmp_path / "jwt.key"
	a = app("app1", "jwt", "--key-file", str(keyf))
	key = keyf.read_bytes().strip()
	u = User()
	# control: a token signed here with the key file is accepted, so the
	# refusals below are about what was changed, not about our signing
	u.cookie = sign(key, claims(visits=7))
	j = u.visit(a).json()
	assert j["new"] is False and j["visits"] == 8 and j["session"] == "ab" * 16, j
	good = u.cookie
	hdr, payload, sig = good.split(".")
	c = json.loads(unb64(payload))
	c["visits"] = 1000
	bad = {
		"tampered claims": "%s.%s.%s" % (hdr, b64(json.dumps(c).encode()), sig),
		"tampered signature": "%s.%s.%s" % (hdr, payload, sig[:-2] + ("AA" if sig[-2:] != "AA" else "BA")),
		"other key": sign(b"k" * 32, claims(visits=50)),
		"alg none": "%s.%s." % (b64(b'{"alg":"none","typ":"JWT"}'), payload),
		"alg HS512 header": sign(key, claims(), header={"alg": "HS512", "typ": "JWT"}),
		"expired": sign(key, claims(visits=50, exp=int(time.time()) - 60)),
		"not a token": "garbage",
	}
	for what, tok in bad.items():
		before = a.stats()["refused"]
		v = User()
		v.cookie = tok
		j = v.visit(a).json()
		assert j["new"] is True and j["visits"] == 1 and j["session"] != "ab" * 16, (what, j)
		assert a.stats()["refused"] == before + 1, what
		assert v.cookie != tok
	assert a.alive()


def test_jwt_key_file_is_shared_and_checked(app, tmp_path, demo_bin):
	keyf = tmp_path / "shared.key"
	a1 = app("app1", "jwt", "--key-file", str(keyf))
	a2 = app("app2", "jwt", "--key-file", str(keyf))
	other = app("app3", "jwt", "--key-file", str(tmp_path / "other.key"))
	u = User()
	sid = u.visit(a1).json()["session"]
	assert u.visit(a2).json()["session"] == sid
	assert u.visit(other).json()["new"] is True
	short = tmp_path / "short.key"
	short.write_text("too short\n")
	for args, msg in [(["--store", "jwt"], "needs --key-file"),
			  (["--store", "jwt", "--key-file", str(short)], "32 to 1024 bytes"),
			  (["--store", "memory", "--key-file", str(keyf)], "key of --store jwt")]:
		cp = subprocess.run([demo_bin, "--name", "x", "--port", "0"] + args,
				    capture_output=True, text=True, timeout=10)
		assert cp.returncode == 2 and msg in cp.stderr, (args, cp.stderr)


# ---------------------------------------------------------------- replication

def test_replicate_to_peer_serves_the_session_after_a_failover(app):
	a2 = app("app2", "memory")
	a1 = app("app1", "memory", "--replicate-to", "127.0.0.1:%d" % a2.port)
	u = User()
	sid = u.visit(a1).json()["session"]
	u.add(a1, "kept")
	u.visit(a1)
	util.wait_until(lambda: a1.stats()["replica_sent"] >= 3, what="3 copies sent")
	util.stop_process(a1.proc, signal.SIGKILL)
	j = u.visit(a2).json()
	assert j["session"] == sid and j["new"] is False, j
	assert j["visits"] == 3 and j["cart"] == ["kept"], j
	# the replica does not copy further (a ring would loop for ever)
	assert a2.stats()["replica_sent"] == 0


def test_replica_logout_deletes_the_copy(app):
	a2 = app("app2", "memory")
	a1 = app("app1", "memory", "--replicate-to", "127.0.0.1:%d" % a2.port)
	u = User()
	sid = u.visit(a1).json()["session"]
	u.logout(a1)
	util.wait_until(lambda: a1.stats()["replica_sent"] >= 2, what="the put and the delete sent")
	u.cookie = sid
	assert u.visit(a2).json()["new"] is True


def test_replica_down_costs_nothing_but_the_copy(app):
	port = util.free_port()                     # nobody listens there
	a1 = app("app1", "memory", "--replicate-to", "127.0.0.1:%d" % port)
	u = User()
	for i in range(20):
		r = u.visit(a1)
		assert r.status == 200 and r.json()["visits"] == i + 1
	util.wait_until(lambda: a1.stats()["replica_dropped"] >= 1, what="a dropped copy")
	err = a1.stderr()
	assert err.count("dropping copies") == 1, err


def test_replica_endpoint_checks_what_it_gets(app):
	a = app("app1", "memory")
	sid = "cd" * 16
	r = http_request(a.port, "PUT", "/replica/%s?ttl=60" % sid, body=b"1 4 1 1 w")
	assert r.status == 204, r
	u = User()
	u.cookie = sid
	j = u.visit(a).json()
	assert j["visits"] == 5 and j["cart"] == ["w"], j
	for path, body in [("/replica/%s?ttl=60" % sid, b"not a value"),
			   ("/replica/%s?ttl=60" % sid, b"1 4 1 1 %0A"),
			   ("/replica/%s?ttl=60" % sid, b"1 4 1 2 w"),
			   ("/replica/xyz?ttl=60", b"1 0 0 0"),
			   ("/replica/%s" % sid, b"1 0 0 0")]:
		assert http_request(a.port, "PUT", path, body=body).status == 400, (path, body)
	r = http_request(a.port, "GET", "/replica/%s" % sid)
	assert r.status == 405
	j = u.visit(a).json()
	assert j["visits"] == 6, j


def test_replica_endpoint_refused_by_other_stores(app, tmp_path):
	a = app("app1", "jwt", "--key-file", str(tmp_path / "k"))
	r = http_request(a.port, "PUT", "/replica/%s?ttl=60" % ("ab" * 16), body=b"1 0 0 0")
	assert r.status == 409, r


def test_bad_store_options_exit_2(demo_bin):
	for args, msg in [(["--store", "mongodb://x"], "--store must be"),
			  (["--store", "redis://"], "bad address"),
			  (["--store", "redis://h:99999"], "bad address"),
			  (["--store", "redis://127.0.0.1:1", "--replicate-to", "127.0.0.1:2"],
			   "needs --store memory"),
			  (["--replicate-to", "nohost"], "HOST:PORT"),
			  (["--session-ttl", "0"], "bad --session-ttl"),
			  (["--session-ttl", "1500ms"], "bad --session-ttl"),
			  (["--store-timeout", "2m"], "bad --store-timeout")]:
		cp = subprocess.run([demo_bin, "--name", "x", "--port", "0"] + args,
				    capture_output=True, text=True, timeout=10)
		assert cp.returncode == 2 and msg in cp.stderr, (args, cp.stderr)
