"""Cookie-insert persistence through the real binary (SPEC §3.1, issue 3).

`persist cookie NAME insert` keeps no state in bollard: the client carries a
sealed cookie naming its server. These tests drive a real bollard in front
of demo apps and check what a client and a server can observe: the
Set-Cookie bollard adds and its attributes, Cache-Control: private on a
response that carries a new cookie, that the cookie never reaches the
server, that every request carrying it lands on the same server, and that a
tampered, truncated, forged, other-key or expired cookie is refused
(persist=invalid / persist=expired in the access log) and replaced. Key
rotation and two instances sharing a secret-file are covered, as are
several `persist` lines (cookie first, source as the fallback), the spread
of 3000 new sessions by weight, and a WebSocket upgrade under persistence.

The access log is read in JSON (fields "persist" and "persist_method");
each request carries a unique query string so its log entry can be found.
Cookie times have a one-second resolution, so the expiry tests sleep whole
seconds beyond the limit.
"""

import base64
import itertools
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import util

COOKIE = "BOLLARD"
KEY1 = "11" * 32
KEY2 = "22" * 32
KEY3 = "33" * 32

_seq = itertools.count(1)


def write_keys(tmp_path, name, keys):
	"""A secret-file holding keys (hex), first one sealing; mode 0600 as
	bollard demands."""
	p = tmp_path / name
	p.write_text("# test keys\n" + "".join(k + "\n" for k in keys))
	os.chmod(p, 0o600)
	return p


def persist_config(config_for, servers, persist, keyfile=None, balance="roundrobin",
		   log_format="json"):
	glob = "    secret-file %s\n" % keyfile if keyfile else ""
	return config_for(servers, balance=balance, log_format=log_format, global_extra=glob,
			  backend_extra="\n".join("    " + p for p in persist.splitlines() if p.strip()))


def tag(path="/whoami"):
	"""path with a unique query parameter, to find its access-log entry."""
	return "%s%st=%d" % (path, "&" if "?" in path else "?", next(_seq))


def get(b, path, cookie=None, headers=()):
	hdrs = list(headers)
	if cookie is not None:
		hdrs.append(("Cookie", cookie))
	return util.request(b.port, "GET", path, hdrs)


def our_cookie(resp, name=COOKIE):
	"""(value, attribute string) of bollard's Set-Cookie, or (None, None)."""
	for v in resp.headers.get_all("Set-Cookie"):
		n, _, rest = v.partition("=")
		if n == name:
			val, _, attrs = rest.partition(";")
			return val, attrs.strip()
	return None, None


def entry(b, target):
	"""The access-log entry of the request for target (waits for it)."""
	return b.wait_log(lambda e: e.get("target") == target)[0]


def assert_decision(b, target, result, method="cookie"):
	e = entry(b, target)
	assert (e.get("persist"), e.get("persist_method")) == (result, method), e
	return e


def first_visit(b, path="/whoami"):
	"""A request without cookie: returns (server, cookie value)."""
	t = tag(path)
	r = get(b, t)
	assert r.status == 200, r
	val, _ = our_cookie(r)
	assert val, "no %s Set-Cookie on a first visit: %s" % (COOKIE, r.headers)
	assert_decision(b, t, "new")
	return r.text().strip(), val


@pytest.fixture
def three(demo_apps):
	return demo_apps(3)


# ---------------------------------------------------------------- basics

def test_first_visit_gets_cookie_then_twenty_hits(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	t = tag()
	r = get(b, t)
	assert r.status == 200
	val, attrs = our_cookie(r)
	assert val is not None, r.headers
	# opaque, URL-safe, at most 96 characters (SPEC §3.1)
	assert re.fullmatch(r"[A-Za-z0-9_-]+", val) and len(val) <= 96, val
	# default attributes: Path=/; HttpOnly; SameSite=Lax, no Secure, no Max-Age
	parts = [p.strip() for p in attrs.split(";")]
	assert "Path=/" in parts and "HttpOnly" in parts and "SameSite=Lax" in parts, attrs
	assert not any(p.lower().startswith(("secure", "max-age", "domain")) for p in parts), attrs
	assert r.headers.get_all("Cache-Control") == ["private"], r.headers
	home = r.text().strip()
	assert entry(b, t)["server"] == home
	assert_decision(b, t, "new")

	targets = []
	for _ in range(20):
		t = tag()
		targets.append(t)
		r = get(b, t, cookie="%s=%s" % (COOKIE, val))
		assert r.status == 200
		assert r.text().strip() == home
		# a valid, young cookie is not re-issued on every response
		assert our_cookie(r)[0] is None, r.headers
		assert "private" not in r.headers.get_all("Cache-Control"), r.headers
	for t in targets:
		e = assert_decision(b, t, "hit")
		assert e["server"] == home


def test_combined_log_carries_persist_fields(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key,
					   log_format=None))
	r = get(b, "/whoami?first")
	val, _ = our_cookie(r)
	get(b, "/whoami?second", cookie="%s=%s" % (COOKIE, val))
	lines = util.wait_until(lambda: [ln for ln in b.log_lines() if "?second" in ln] and b.log_lines(),
				what="two log lines")
	first = [ln for ln in lines if "?first" in ln][0]
	second = [ln for ln in lines if "?second" in ln][0]
	assert re.search(r" server=\S+ persist=new method=cookie\b", first), first
	assert re.search(r" server=\S+ persist=hit method=cookie\b", second), second


def test_server_never_sees_our_cookie(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	_, val = first_visit(b)
	# among other cookies: ours removed, the others intact and in order
	r = get(b, tag("/echo"), cookie="a=1; %s=%s; b=two" % (COOKIE, val))
	h = util.echo_headers(r)
	cookies = h.get_all("Cookie")
	assert cookies, h
	joined = "; ".join(cookies)
	assert COOKIE not in joined and val not in joined, cookies
	pairs = [c.strip() for c in joined.split(";")]
	assert pairs == ["a=1", "b=two"], cookies
	# alone: the Cookie header is dropped, not sent empty
	r = get(b, tag("/echo"), cookie="%s=%s" % (COOKIE, val))
	h = util.echo_headers(r)
	assert h.get_all("Cookie") == [], h
	# an invalid cookie of ours is removed too
	r = get(b, tag("/echo"), cookie="x=y; %s=garbage" % COOKIE)
	h = util.echo_headers(r)
	assert [c.strip() for c in "; ".join(h.get_all("Cookie")).split(";")] == ["x=y"], h
	# a cookie whose name merely contains ours is not ours
	r = get(b, tag("/echo"), cookie="X%s=1; %sX=2" % (COOKIE, COOKIE))
	h = util.echo_headers(r)
	assert "X%s=1" % COOKIE in "; ".join(h.get_all("Cookie")), h
	assert "%sX=2" % COOKIE in "; ".join(h.get_all("Cookie")), h


# ---------------------------------------------------------------- refused cookies

def _flip(s, i):
	alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	c = s[i]
	return s[:i] + alphabet[(alphabet.index(c) + 1) % 64] + s[i + 1:]


def assert_refused(b, bad, result="invalid"):
	t = tag()
	r = get(b, t, cookie="%s=%s" % (COOKIE, bad))
	assert r.status == 200, r
	assert_decision(b, t, result)
	new, _ = our_cookie(r)
	assert new and new != bad, "no fresh cookie after a refused one: %s" % r.headers
	assert r.headers.get_all("Cache-Control") == ["private"], r.headers
	# the fresh cookie works
	t2 = tag()
	r2 = get(b, t2, cookie="%s=%s" % (COOKIE, new))
	assert r2.text().strip() == r.text().strip()
	assert_decision(b, t2, "hit")


def test_tampered_truncated_garbage_cookies_are_invalid(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	_, val = first_visit(b)
	# one flipped character anywhere: nonce, ciphertext, tag
	for i in (0, len(val) // 2, len(val) - 2):
		assert_refused(b, _flip(val, i))
	assert_refused(b, val[:-1])
	assert_refused(b, val[:40])
	assert_refused(b, val + "A")
	assert_refused(b, "garbage")
	assert_refused(b, base64.urlsafe_b64encode(os.urandom(57)).decode().rstrip("="))
	assert_refused(b, "")
	assert_refused(b, "%00%ff" * 10)
	assert not [ln for ln in b.log_lines() if '"status":5' in ln]


def test_cookie_sealed_under_another_key_is_invalid(three, bollard_factory, config_for, tmp_path):
	k1 = write_keys(tmp_path, "k1", [KEY1])
	k2 = write_keys(tmp_path, "k2", [KEY2])
	b1 = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", k1))
	b2 = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", k2))
	_, foreign = first_visit(b2)
	assert_refused(b1, foreign)


def test_key_rotation(three, bollard_factory, config_for, tmp_path):
	"""secret-file: the first key seals, every key opens."""
	old = write_keys(tmp_path, "old", [KEY1])
	rotated = write_keys(tmp_path, "rotated", [KEY2, KEY1])
	b_old = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", old))
	b_new = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", rotated))
	home, old_cookie = first_visit(b_old)
	# an old cookie is still honoured by the instance with the rotated file
	for _ in range(3):
		t = tag()
		r = get(b_new, t, cookie="%s=%s" % (COOKIE, old_cookie))
		assert r.text().strip() == home
		assert_decision(b_new, t, "hit")
	# cookies it issues are sealed with KEY2: the old instance refuses them
	_, new_cookie = first_visit(b_new)
	assert_refused(b_old, new_cookie)


def test_reload_that_drops_a_key_refuses_its_cookies_at_once(three, bollard_factory, bollard_bin,
								 config_for, tmp_path):
	"""Each worker remembers the cookies it opened (persist.c), which must
	not outlive the keys: once a reload takes a cookie's key out of
	secret-file, the very next request with it is refused, though the
	same thread opened it a moment before; put back, the key opens it
	again."""
	keyfile = write_keys(tmp_path, "keys", [KEY1])
	sock = tmp_path / "adm.sock"
	b = bollard_factory(config_for(three, log_format="json",
				       global_extra="    secret-file %s\n    admin-socket %s" % (keyfile, sock),
				       backend_extra="    persist cookie BOLLARD insert"))

	def reload(keys, n):
		write_keys(tmp_path, "keys", keys)
		os.kill(b.pid, signal.SIGHUP)
		util.wait_until(lambda: "reloads %d" % n in subprocess.run(
			[bollard_bin, "ctl", "-s", str(sock), "show info"], capture_output=True,
			text=True, timeout=15).stdout, what="reload %d" % n)

	home, val = first_visit(b)
	for _ in range(3):
		t = tag()
		assert get(b, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
		assert_decision(b, t, "hit")
	reload([KEY2], 1)
	assert_refused(b, val)
	reload([KEY2, KEY1], 2)
	t = tag()
	assert get(b, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
	assert_decision(b, t, "hit")


def test_two_instances_share_a_secret_file(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "shared", [KEY3])
	b1 = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	b2 = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	homes = set()
	for src, dst in ((b1, b2), (b2, b1), (b1, b2), (b2, b1)):
		home, val = first_visit(src)
		homes.add(home)
		t = tag()
		r = get(dst, t, cookie="%s=%s" % (COOKIE, val))
		assert r.text().strip() == home
		assert_decision(dst, t, "hit")
	assert len(homes) >= 2  # round robin spread the first visits


# ---------------------------------------------------------------- lifetime

def test_max_idle_expiry(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three,
					   "persist cookie BOLLARD insert max-idle 2s", key))
	_, val = first_visit(b)
	time.sleep(3.2)
	assert_refused(b, val, result="expired")


def test_max_life_expiry_despite_use(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three,
					   "persist cookie BOLLARD insert max-idle 1h max-life 2s", key))
	home, val = first_visit(b)
	t = tag()
	assert get(b, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
	assert_decision(b, t, "hit")
	time.sleep(3.2)
	assert_refused(b, val, result="expired")


def test_refresh_before_max_idle(three, bollard_factory, config_for, tmp_path):
	"""Re-issued once older than a fraction (a quarter) of max-idle, with the
	same server; the refreshed cookie keeps the session alive beyond the
	first cookie's max-idle."""
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three,
					   "persist cookie BOLLARD insert max-idle 4s", key))
	home, val = first_visit(b)
	# young: no refresh
	r = get(b, tag(), cookie="%s=%s" % (COOKIE, val))
	assert our_cookie(r)[0] is None, r.headers
	time.sleep(2.3)
	t = tag()
	r = get(b, t, cookie="%s=%s" % (COOKIE, val))
	assert r.text().strip() == home
	assert_decision(b, t, "hit")
	fresh, _ = our_cookie(r)
	assert fresh and fresh != val, "no refresh after 2.3 s of max-idle 4s: %s" % r.headers
	# cookie times are whole seconds: 5.3 s after issue the first cookie is
	# past max-idle however the seconds fall, the refreshed one (3 s) is not
	time.sleep(3.0)
	t = tag()
	r = get(b, t, cookie="%s=%s" % (COOKIE, fresh))
	assert r.text().strip() == home
	assert_decision(b, t, "hit")
	t = tag()
	get(b, t, cookie="%s=%s" % (COOKIE, val))
	assert_decision(b, t, "expired")


# ---------------------------------------------------------------- attributes

def _attrs(b):
	r = get(b, tag())
	val, attrs = our_cookie(r)
	assert val, r.headers
	return [p.strip() for p in attrs.split(";")]


def test_cookie_attributes(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(
		config_for, three,
		"persist cookie BOLLARD insert domain example.test path /shop secure samesite strict max-age 1h",
		key))
	parts = _attrs(b)
	low = [p.lower() for p in parts]
	assert "domain=example.test" in low, parts
	assert "path=/shop" in low and "path=/" not in low, parts
	assert "secure" in low and "httponly" in low, parts
	assert "samesite=strict" in low, parts
	assert "max-age=3600" in low, parts


def test_cookie_samesite_none(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three,
					   "persist cookie SRV insert samesite none secure", key))
	r = get(b, tag())
	val, attrs = our_cookie(r, "SRV")
	assert val, r.headers
	low = [p.strip().lower() for p in attrs.split(";")]
	assert "samesite=none" in low and "secure" in low, attrs
	# the cookie name is the configured one
	t = tag()
	assert get(b, t, cookie="SRV=%s" % val).text().strip() == r.text().strip()
	assert_decision(b, t, "hit")


def test_cache_control_of_the_server_is_kept(py_backend, bollard_factory, config_for, tmp_path):
	def with_cc(req, _b):
		return (b"HTTP/1.1 200 OK\r\nCache-Control: no-store, max-age=0\r\n"
			b"Content-Length: 2\r\n\r\nok")

	def without_cc(req, _b):
		return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	key = write_keys(tmp_path, "k1", [KEY1])
	pb1 = py_backend(with_cc)
	b1 = bollard_factory(persist_config(config_for, [pb1], "persist cookie BOLLARD insert", key))
	r = get(b1, tag("/"))
	assert our_cookie(r)[0], r.headers
	assert r.headers.get_all("Cache-Control") == ["no-store, max-age=0"], r.headers

	pb2 = py_backend(without_cc)
	b2 = bollard_factory(persist_config(config_for, [pb2], "persist cookie BOLLARD insert", key))
	r = get(b2, tag("/"))
	val, _ = our_cookie(r)
	assert val, r.headers
	assert r.headers.get_all("Cache-Control") == ["private"], r.headers
	# no new cookie: nothing added
	r = get(b2, tag("/"), cookie="%s=%s" % (COOKIE, val))
	assert our_cookie(r)[0] is None and r.headers.get_all("Cache-Control") == [], r.headers


# ---------------------------------------------------------------- several methods, load, upgrades

def test_cookie_then_source_fallback(three, bollard_factory, config_for, tmp_path):
	"""On a fresh assignment every method records the server; a client that
	drops its cookie lands home by source and gets a fresh cookie for it."""
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three,
					   "persist cookie BOLLARD insert\npersist source", key))
	home, val = first_visit(b)
	for _ in range(3):
		t = tag()
		r = get(b, t)
		assert r.text().strip() == home
		assert_decision(b, t, "hit", "source")
		fresh, _ = our_cookie(r)
		assert fresh, "no fresh cookie for a client that lost it: %s" % r.headers
		# ... and that fresh cookie names the same server, by cookie
		t = tag()
		r = get(b, t, cookie="%s=%s" % (COOKIE, fresh))
		assert r.text().strip() == home
		assert_decision(b, t, "hit", "cookie")
		assert our_cookie(r)[0] is None
	# the cookie wins while it is valid
	t = tag()
	assert get(b, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
	assert_decision(b, t, "hit", "cookie")


def _persist_count(b, method, result):
	m = util.request(b.ports["port_stats"], "GET", "/metrics").text()
	got = re.search(r'^bollard_persistence_total\{backend="be",method="%s",result="%s"\} (\d+)$'
			% (method, result), m, re.M)
	return int(got.group(1)) if got else 0


@pytest.mark.parametrize("refused", ["invalid", "expired"])
def test_refused_cookie_is_counted_when_a_fallback_hits(three, bollard_factory, config_for,
							tmp_path, refused):
	"""A forged (or expired) cookie must not vanish behind the fallback that
	answers (issue 9 item 3): the request is logged persist=hit
	method=source cookie=invalid, the cookie method counts an invalid, and
	the response carries a fresh cookie naming the same server."""
	key = write_keys(tmp_path, "k1", [KEY1])
	idle = " max-idle 1s" if refused == "expired" else ""
	conf = config_for(three, log_format="json",
			  global_extra="    secret-file %s\n    stats-listen 127.0.0.1:{port_stats}" % key,
			  backend_extra="    persist cookie BOLLARD insert%s\n    persist source" % idle)
	b = bollard_factory(conf)
	home, val = first_visit(b)
	bad = _flip(val, len(val) // 2) if refused == "invalid" else val
	if refused == "expired":
		time.sleep(2.2)  # cookie times are whole seconds: 2 s past max-idle 1s
	before = (_persist_count(b, "cookie", refused), _persist_count(b, "source", "hit"))
	t = tag()
	r = get(b, t, cookie="%s=%s" % (COOKIE, bad))
	assert r.text().strip() == home
	e = assert_decision(b, t, "hit", "source")
	assert e.get("persist_cookie") == refused, e
	fresh, _ = our_cookie(r)
	assert fresh and fresh != bad, "no fresh cookie after a %s one: %s" % (refused, r.headers)
	assert r.headers.get_all("Cache-Control") == ["private"], r.headers
	assert (_persist_count(b, "cookie", refused), _persist_count(b, "source", "hit")) == (
		before[0] + 1, before[1] + 1)
	# the fresh cookie names home, by cookie, with no verdict beside
	t = tag()
	r = get(b, t, cookie="%s=%s" % (COOKIE, fresh))
	assert r.text().strip() == home
	e = assert_decision(b, t, "hit", "cookie")
	assert "persist_cookie" not in e, e


def test_refused_cookie_in_the_combined_log(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(config_for(three, global_extra="    secret-file %s" % key,
				       backend_extra="    persist cookie BOLLARD insert\n    persist source"))
	get(b, "/whoami?first")
	get(b, "/whoami?forged", cookie="%s=%s" % (COOKIE, "A" * 80))
	line = util.wait_until(lambda: [ln for ln in b.log_lines() if "?forged" in ln],
			       what="the log line")[0]
	assert re.search(r" persist=hit method=source cookie=invalid ", line), line


def test_3000_sessions_spread_by_weight(demo_apps, bollard_factory, config_for, tmp_path):
	apps = demo_apps(3)
	key = write_keys(tmp_path, "k1", [KEY1])
	servers = [(a.name, a.port, "weight %d" % w) for a, w in zip(apps, (1, 2, 3))]
	b = bollard_factory(persist_config(config_for, servers, "persist cookie BOLLARD insert", key))
	counts = {a.name: 0 for a in apps}
	cookies = {}
	n = 3000
	with util.Conn.connect(b.port) as c:
		for i in range(n):
			c.send(util.build_request("GET", "/whoami"))
			r = util.read_response(c)
			assert r.status == 200
			name = r.text().strip()
			counts[name] += 1
			val, _ = our_cookie(r)
			assert val, r.headers
			cookies.setdefault(name, val)
	for a, w in zip(apps, (1, 2, 3)):
		want = n * w / 6
		assert abs(counts[a.name] - want) <= 0.2 * want, counts
	# every session is sticky to the server it got
	for name, val in cookies.items():
		assert get(b, tag(), cookie="%s=%s" % (COOKIE, val)).text().strip() == name
	news = [e for e in b.access_log() if e.get("persist") == "new"]
	assert len(news) >= n, len(news)


def test_websocket_upgrade_under_persistence(three, bollard_factory, config_for, tmp_path):
	key = write_keys(tmp_path, "k1", [KEY1])
	b = bollard_factory(persist_config(config_for, three, "persist cookie BOLLARD insert", key))
	t = tag("/ws")
	with util.Conn.connect(b.port) as c:
		r = util.ws_handshake(c, t)
		val, _ = our_cookie(r)
		assert val, "the 101 of a new session carries no cookie: %s" % r.headers
		util.ws_send(c, "hello")
		assert util.ws_recv(c) == (1, b"hello")
	first = entry(b, t)
	assert first.get("persist") == "new", first
	home = first["server"]
	for _ in range(4):
		t = tag("/ws")
		with util.Conn.connect(b.port) as c:
			r = util.ws_handshake(c, t, extra_headers=[("Cookie", "%s=%s" % (COOKIE, val))])
			assert our_cookie(r)[0] is None, r.headers
			util.ws_send(c, "again")
			assert util.ws_recv(c) == (1, b"again")
		e = entry(b, t)
		assert (e.get("server"), e.get("persist")) == (home, "hit"), e
	# and plain requests with the cookie go there too
	assert get(b, tag(), cookie="%s=%s" % (COOKIE, val)).text().strip() == home


def test_secret_file_generated_and_survives_restart(three, bollard_factory, config_for, tmp_path):
	"""An absent secret-file is generated with mode 0600; a restarted bollard
	reading it honours the cookies of the previous run."""
	key = tmp_path / "gen.key"
	conf = persist_config(config_for, three, "persist cookie BOLLARD insert", key)
	b1 = bollard_factory(conf)
	home, val = first_visit(b1)
	assert key.exists() and (os.stat(key).st_mode & 0o777) == 0o600, oct(os.stat(key).st_mode)
	assert b1.stop() == 0
	b2 = bollard_factory(conf)
	t = tag()
	assert get(b2, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
	assert_decision(b2, t, "hit")


@pytest.mark.parametrize("state", [False, True])
def test_cookies_survive_a_restart_without_secret_file(three, bollard_factory, config_for,
							tmp_path, state):
	"""No secret-file line (the README's sample): the key is kept in
	bollard.key beside the state file, or in the working directory without
	one, created 0600 at first start, so a restart keeps every cookie
	(issue 9 item 11)."""
	glob = ""
	keyfile = tmp_path / "bollard.key"
	if state:
		(tmp_path / "var").mkdir()
		glob = "    state-file %s/var/bollard.state" % tmp_path
		keyfile = tmp_path / "var" / "bollard.key"
	conf = config_for(three, log_format="json", global_extra=glob,
			  backend_extra="    persist cookie BOLLARD insert")
	b1 = bollard_factory(conf)
	home, val = first_visit(b1)
	assert keyfile.exists() and (os.stat(keyfile).st_mode & 0o777) == 0o600
	assert "cookie key is kept in %s" % ("./bollard.key" if not state else keyfile) in \
		b1.stderr_text(), b1.stderr_text()
	assert b1.stop() == 0
	b2 = bollard_factory(conf)
	t = tag()
	assert get(b2, t, cookie="%s=%s" % (COOKIE, val)).text().strip() == home
	assert_decision(b2, t, "hit")


def test_check_warns_about_the_default_key_file(bollard_run, tmp_path):
	conf = ("global\n    log stdout\nfrontend fe\n    bind 127.0.0.1:1\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert\n    server a 127.0.0.1:2\n")
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 0, r
	assert re.search(r"check\.conf:7: warning: persist cookie BOLLARD insert without secret-file: "
			 r"the cookie key is kept in \./bollard\.key", r.stderr), r.stderr
	assert not (tmp_path / "bollard.key").exists()  # check creates nothing
	# with a secret-file: no warning; one start would refuse, check refuses
	key = write_keys(tmp_path, "k", [KEY1])
	with_key = conf.replace("    log stdout\n", "    log stdout\n    secret-file %s\n" % key)
	r = bollard_run("check", "-c", "{conf}", config=with_key)
	assert r.returncode == 0 and "warning" not in r.stderr, r
	os.chmod(key, 0o644)
	r = bollard_run("check", "-c", "{conf}", config=with_key)
	assert r.returncode == 1 and "readable by others" in r.stderr, r


def test_readme_sample_keeps_its_cookie_key(bollard_run):
	"""The README's short configuration names its key file: cookies of the
	sample survive a restart, and `check` has nothing to warn about."""
	readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
	sample = readme.split("## A short configuration", 1)[1].split("```", 2)[1]
	assert "persist cookie" in sample and "secret-file" in sample, sample
	r = bollard_run("check", "-c", "{conf}", config=sample.lstrip("\n"))
	assert r.returncode == 0 and "warning" not in r.stderr, r
