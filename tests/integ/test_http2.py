"""The HTTP/2 frontend (SPEC §11, issue 12 item 6): `alpn h2,http/1.1` on a
TLS bind, driven with curl --http2, nghttp, h2load and the raw-frame client
of h2frames.py. Every stream is an HTTP/1.1 request through the same
route -> persist -> balance path: persistence, the insert cookie, the
access log and the metrics must behave as they do for HTTP/1.1."""

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import util
import h2frames as h2
from test_tls import CA, metric, tls_config


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


def h2_config(apps, crt, alpn="h2,http/1.1", **kw):
	return tls_config(apps, crt, extra_bind="alpn " + alpn if alpn else "", **kw)


def curl(port, path, *extra, http="--http2", timeout=60):
	r = subprocess.run(["curl", "-sS", http, "-k", "--max-time", str(timeout)] + list(extra) +
			   ["-w", "\n%{http_code} %{http_version}", "https://localhost:%d%s" % (port, path),
			    "--resolve", "localhost:%d:127.0.0.1" % port],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 10)
	assert r.returncode == 0, r.stderr.decode(errors="replace")
	body, _, tail = r.stdout.rpartition(b"\n")
	code, ver = tail.decode().split()
	return int(code), ver, body, r.stderr.decode(errors="replace")


def rss_kb(pid):
	for ln in open("/proc/%d/status" % pid):
		if ln.startswith("VmRSS:"):
			return int(ln.split()[1])
	raise AssertionError("no VmRSS")


# ---------------------------------------------------------------- negotiation

def test_curl_h2_request_through_the_exchange(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"]),
				      frontend_extra="    hsts max-age 1d"))
	code, ver, body, _ = curl(b.port, "/echo", "-D", "-")
	assert (code, ver) == (200, "2")
	head, _, js = body.partition(b"\r\n\r\n")
	assert b"strict-transport-security: max-age=86400" in head.lower()
	j = json.loads(js)
	hdrs = {k.lower(): v for k, v in j["headers"]}
	# :authority became Host; the server got HTTP/1.1 and bollard's fields
	assert hdrs["host"] == "localhost:%d" % b.port
	assert j["version"] == "HTTP/1.1"
	assert hdrs["x-forwarded-proto"] == "https"
	e = b.wait_log(lambda e: e["target"] == "/echo")[0]
	assert e["proto"] == "HTTP/2.0" and e["alpn"] == "h2" and e["tls"] == "1.3", e
	assert metric(b, "bollard_http2_streams_total", frontend="fe") == 1


def test_alpn_default_stays_http11(demo_apps, bollard_factory, ca):
	"""Without `alpn`, nothing is offered and curl --http2 speaks 1.1."""
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"]), alpn=None))
	code, ver, _, _ = curl(b.port, "/whoami")
	assert (code, ver) == (200, "1.1")
	b2 = bollard_factory(h2_config(apps, ca.leaf("l2", ["localhost"]), alpn="http/1.1,h2"))
	code, ver, _, _ = curl(b2.port, "/whoami")
	assert (code, ver) == (200, "1.1")  # the server's preference order decides
	code, ver, _, _ = curl(b2.port, "/whoami", http="--http1.1")
	assert (code, ver) == (200, "1.1")


def test_nghttp_many_streams_one_connection(demo_apps, bollard_factory, ca):
	apps = demo_apps(2)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	urls = ["https://localhost:%d/whoami?i=%d" % (b.port, i) for i in range(20)]
	r = subprocess.run(["nghttp", "-n", "-s", "-m", "1"] + urls, stdout=subprocess.PIPE,
			   stderr=subprocess.PIPE, timeout=60)
	assert r.returncode == 0, r.stderr
	codes = re.findall(rb"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s", r.stdout, re.M)
	assert codes == [b"200"] * 20, r.stdout
	got = b.wait_log(lambda e: e["target"].startswith("/whoami?i="), n=20)
	assert {e["server"] for e in got} == {"app1", "app2"}  # balanced, stream by stream


def test_h2load_all_answered(demo_apps, bollard_factory, ca):
	apps = demo_apps(2)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10",
			    "https://127.0.0.1:%d/whoami" % b.port],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
	out = r.stdout.decode()
	assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
	assert "status codes: 2000 2xx" in out, out
	util.wait_until(lambda: metric(b, "bollard_http2_streams_total", frontend="fe") == 2000,
			what="2000 streams counted")


# ---------------------------------------------------------------- persistence

def test_insert_cookie_sticks_across_streams_and_connections(demo_apps, bollard_factory, ca):
	apps = demo_apps(3)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"]),
				      backend_extra="    persist cookie SRV insert"))
	code, _, body, err = curl(b.port, "/whoami", "-D", "-")
	assert code == 200
	head = body.decode(errors="replace")
	m = re.search(r"set-cookie: (SRV=[^;\r\n]+)(.*)", head, re.I)
	assert m and "secure" in m.group(2).lower(), head
	cookie = m.group(1)
	home = body.decode().split("\r\n\r\n", 1)[1].strip()
	# 200 streams, 10 at a time, on 2 connections, all carrying the cookie
	r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10", "-H", "cookie: " + cookie,
			    "https://127.0.0.1:%d/whoami?sticky" % b.port],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
	assert "200 succeeded" in r.stdout.decode(), r.stdout
	got = b.wait_log(lambda e: e["target"] == "/whoami?sticky", n=200)
	assert {e["server"] for e in got} == {home}
	assert {e["persist"] for e in got} == {"hit"}


def test_cookie_crumbs_joined(demo_apps, bollard_factory, ca):
	"""RFC 9113 8.2.3: a client may split Cookie into one field per
	crumb; persistence reads them joined, and the server gets one field."""
	apps = demo_apps(3)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"]),
				      backend_extra="    persist cookie SRV insert"))
	code, _, body, _ = curl(b.port, "/whoami", "-D", "-")
	cookie = re.search(r"set-cookie: (SRV=[^;\r\n]+)", body.decode(), re.I).group(1)
	home = body.decode().split("\r\n\r\n", 1)[1].strip()
	with h2.H2Conn(b.port) as c:
		for i in range(6):
			sid = 1 + 2 * i
			c.open(sid, h2.request_fields("GET", "/echo?crumbs=%d" % i, extra=[
				("cookie", "a=1"), ("accept", "*/*"), ("cookie", cookie), ("cookie", "b=2")]))
			r = c.response(sid)
			assert r.status == "200", r.headers
			j = json.loads(r.body)
			assert j["server"] == home
			cookies = [v for k, v in j["headers"] if k.lower() == "cookie"]
			assert cookies == ["a=1; b=2"], j["headers"]  # joined; ours removed
	got = b.wait_log(lambda e: e["target"].startswith("/echo?crumbs="), n=6)
	assert {e["persist"] for e in got} == {"hit"}


def test_learn_and_source_persistence_over_h2(demo_apps, bollard_factory, ca):
	apps = demo_apps(3)
	crt = ca.leaf("localhost", ["localhost"])
	b = bollard_factory(h2_config(apps, crt, backend_extra="    persist learn DEMOSESSID"))
	code, _, body, _ = curl(b.port, "/?format=json")
	j = json.loads(body)
	home, sid = j["server"], j["session"]
	r = subprocess.run(["h2load", "-n", "60", "-c", "2", "-m", "6", "-H",
			    "cookie: DEMOSESSID=" + sid, "https://127.0.0.1:%d/whoami?learn" % b.port],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
	assert "60 succeeded" in r.stdout.decode(), r.stdout
	got = b.wait_log(lambda e: e["target"] == "/whoami?learn", n=60)
	assert {e["server"] for e in got} == {home} and {e["persist"] for e in got} == {"hit"}

	b2 = bollard_factory(h2_config(apps, crt, backend_extra="    persist source"))
	r = subprocess.run(["h2load", "-n", "60", "-c", "3", "-m", "5",
			    "https://127.0.0.1:%d/whoami?src" % b2.port],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
	assert "60 succeeded" in r.stdout.decode(), r.stdout
	got = b2.wait_log(lambda e: e["target"] == "/whoami?src", n=60)
	assert len({e["server"] for e in got}) == 1


# ---------------------------------------------------------------- bodies

def test_post_bodies_both_framings(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	data = util.pattern_bytes(300000)
	f = tmp_path / "body.bin"
	f.write_bytes(data)
	want = hashlib.sha256(data).hexdigest()
	# content-length given: passed on as it is
	code, _, body, _ = curl(b.port, "/echo", "--data-binary", "@%s" % f)
	j = json.loads(body)
	assert code == 200 and j["body_length"] == len(data) and j["body_sha256"] == want
	assert not j["chunked"]
	# no content-length (curl drops the HTTP/1.1 field over h2): chunked to the server
	code, _, body, _ = curl(b.port, "/echo", "-H", "Transfer-Encoding: chunked",
				"--data-binary", "@%s" % f)
	j = json.loads(body)
	assert code == 200 and j["chunked"] and j["body_length"] == len(data)
	assert j["body_sha256"] == want
	# raw frames: many small DATA frames, no content-length
	with h2.H2Conn(b.port) as c:
		c.open(1, h2.request_fields("POST", "/echo"), end_stream=False)
		for k in range(0, 20000, 100):
			c.send_data(1, data[k:k + 100], end_stream=False)
		c.send_data(1, b"", end_stream=True)
		r = c.response(1)
		j = json.loads(r.body)
		assert r.status == "200" and j["body_length"] == 20000
		assert j["body_sha256"] == hashlib.sha256(data[:20000]).hexdigest()


def test_responses_both_framings_and_head(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	for q in ("n=3000000", "n=1000000&chunked=1", "n=0"):
		code, _, body, _ = curl(b.port, "/bytes?" + q)
		assert code == 200 and len(body) == int(q.split("&")[0][2:]), q
	code, _, body, _ = curl(b.port, "/bytes?n=1000", "-I")
	assert code == 200 and b"content-length: 1000" in body.lower() and b"\r\n\r\n" in body


def test_response_head_fields_as_over_http11(py_backend, bollard_factory, ca):
	"""The response head of a stream is built from the server's parsed head
	and what bollard adds (xprt_h2s.c h2s_head), or, for a cookie prefix,
	from the HTTP/1.1 text parsed back: either way the client gets the
	server's fields but the connection-specific ones (RFC 9113 8.2.2), one
	content-length, and bollard's Set-Cookie, Cache-Control and
	Strict-Transport-Security."""
	srv = py_backend(lambda req, b: (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
					 b"Connection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
					 b"X-App: yes\r\nSet-Cookie: APP=v1\r\n\r\nok"))
	crt = ca.leaf("localhost", ["localhost"])

	def fields(persist):
		b = bollard_factory(h2_config([srv], crt, frontend_extra="    hsts max-age 1d",
					      backend_extra="    " + persist))
		code, ver, out, _ = curl(b.port, "/f", "-D", "-")
		head, _, body = out.decode().partition("\r\n\r\n")
		assert (code, ver, body) == (200, "2", "ok"), out
		got = {}
		for ln in head.split("\r\n")[1:]:
			n, _, v = ln.partition(": ")
			got.setdefault(n, []).append(v)
		return got

	got = fields("persist cookie SRV insert")
	cookies = got.pop("set-cookie")
	srv_cookie = [v for v in cookies if v.startswith("SRV=")]
	assert len(srv_cookie) == 1 and "secure" in srv_cookie[0].lower(), cookies
	assert [v for v in cookies if v not in srv_cookie] == ["APP=v1"], cookies
	assert got == {"content-length": ["2"], "x-app": ["yes"], "cache-control": ["private"],
		       "strict-transport-security": ["max-age=86400"]}, got
	got = fields("persist cookie APP prefix")
	assert got.pop("set-cookie") == ["APP=py1~v1"], got
	assert got == {"content-length": ["2"], "x-app": ["yes"],
		       "strict-transport-security": ["max-age=86400"]}, got


def test_big_upload_does_not_stall_other_streams(demo_apps, bollard_factory, ca):
	"""A 100 MB upload on stream 1 while other streams of the same
	connection come and go: they are answered meanwhile, the upload
	arrives whole, and bollard's window keeps what it holds bounded."""
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	size = 100 << 20
	block = util.pattern_bytes(1 << 20)
	with h2.H2Conn(b.port) as c:
		c.wait(lambda: h2.S_INITIAL_WINDOW_SIZE in c.peer, what="SETTINGS")
		window = c.peer[h2.S_INITIAL_WINDOW_SIZE]
		assert window == 65535  # tune.h2.stream-window: what one stream may hold
		c.open(1, h2.request_fields("POST", "/echo", extra=[("content-length", str(size + (1 << 16)))]),
		       end_stream=False)
		c.send_data(1, block[:1 << 16], end_stream=False)  # warm-up: buffers, TLS
		rss0 = rss_kb(b.pid)
		sha = hashlib.sha256(block[:1 << 16])
		size += 1 << 16
		sid, answered = 3, 0
		for i in range(100):
			c.send_data(1, block, end_stream=(i == 99), timeout=60)
			sha.update(block)
			if i % 10 == 5:
				# another stream while the upload is in the middle
				c.open(sid, h2.request_fields("GET", "/whoami?during=%d" % i))
				r = c.response(sid)
				assert r.status == "200" and r.body.strip() == b"app1"
				assert not c.responses[1].ended
				sid += 2
				answered += 1
		r = c.response(1, timeout=60)
		j = json.loads(r.body)
		assert j["body_length"] == size and j["body_sha256"] == sha.hexdigest()
		# bounded memory: the 100 MB went through without staying
		grown = rss_kb(b.pid) - rss0
		assert grown < 16 << 10, "bollard grew by %d KB during the upload" % grown
	assert answered == 10


def test_unopened_window_stops_reading_the_server(py_backend, bollard_factory, ca):
	"""A client that does not open its window must not make bollard read
	the whole response: the server finds its writes blocked."""
	total = 64 << 20
	sent = [0]
	blocked = threading.Event()
	done = threading.Event()

	def handler(conn, be):
		req = util.read_request(conn)
		if req is None:
			return
		conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
		conn.sock.settimeout(1.0)
		chunk = b"x" * 65536
		while sent[0] < total:
			try:
				n = conn.sock.send(chunk[:min(len(chunk), total - sent[0])])
			except TimeoutError:
				blocked.set()  # the proxy stopped taking bytes
				continue
			except OSError:
				return
			sent[0] += n
		done.set()

	be = py_backend(handler=handler)
	b = bollard_factory(h2_config([("py", be.port)], ca.leaf("localhost", ["localhost"])))
	with h2.H2Conn(b.port, local_settings=h2.settings(initial_window_size=0)) as c:
		c.auto_window = False
		c.open(1, h2.request_fields("GET", "/big"))
		c.wait(lambda: c.responses[1].status == "200", what="the response head")
		assert blocked.wait(30), "the server never blocked: bollard read it all"
		assert sent[0] < total // 4, sent[0]
		# the client opens its window: the rest flows
		c.auto_window = True
		c.send(h2.frame(h2.WINDOW_UPDATE, 0, 1, (1 << 30).to_bytes(4, "big")) +
		       h2.frame(h2.SETTINGS, 0, 0, h2.settings(initial_window_size=1 << 20)))
		r = c.response(1, timeout=120)
		assert len(r.body) == total
	assert done.wait(10)


# ---------------------------------------------------------------- reload

def test_reload_with_open_h2_connections_loses_nothing(demo_apps, bollard_factory, ca):
	apps = demo_apps(2)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	conns = [h2.H2Conn(b.port) for _ in range(3)]
	sids = [1, 1, 1]

	def round_trip(k, tag):
		c = conns[k]
		c.open(sids[k], h2.request_fields("GET", "/whoami?%s" % tag))
		r = c.response(sids[k])
		sids[k] += 2
		return r

	for k in range(3):
		assert round_trip(k, "before").status == "200"
	# streams open on every connection while the reload happens
	pending = []
	for k in range(3):
		c = conns[k]
		c.open(sids[k], h2.request_fields("POST", "/echo?across", extra=[("content-length", "4")]),
		       end_stream=False)
		pending.append((k, sids[k]))
		sids[k] += 2
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: metric(b, "bollard_reloads_total") == 1, what="the reload")
	for k, sid in pending:
		conns[k].send_data(sid, b"ping")
		r = conns[k].response(sid)
		assert r.status == "200" and json.loads(r.body)["body_length"] == 4
	for i in range(5):
		for k in range(3):
			assert round_trip(k, "after").status == "200"
	for c in conns:
		c.close()
	got = b.wait_log(lambda e: "/whoami?" in e["target"] or "/echo?across" in e["target"],
			 n=3 + 3 + 15)
	assert len(got) == 3 + 3 + 15 and {e["status"] for e in got} == {200}


def test_graceful_stop_finishes_streams_in_flight(demo_apps, bollard_factory, ca):
	"""SIGTERM: GOAWAY to the HTTP/2 client, the stream in flight is
	answered, then the connection closes and bollard exits."""
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	with h2.H2Conn(b.port) as c:
		c.open(1, h2.request_fields("GET", "/slow?ms=1000"))
		util.wait_until(lambda: metric(b, "bollard_http2_streams_total", frontend="fe") == 1,
				what="the stream under way")
		os.kill(b.pid, signal.SIGTERM)
		r = c.response(1)
		assert r.status == "200"
		ga = c.wait_closed()
		assert ga is not None and ga[1] == h2.NO_ERROR and ga[0] == 1, ga
	assert b.proc.wait(timeout=10) == 0


def test_h2_requests_do_not_allocate(demo_apps, ca, tmp_path):
	"""test_no_alloc.py over HTTP/2: after the warm-up, thousands of
	streams on the same connections (persistence deciding each) must not grow
	bollard's own allocations: stream slots and buffers are pooled, and so
	are the blocks libnghttp2 allocates per stream (its stream objects,
	HPACK), through the worker's allocator it is given (h2_mem.c): those
	count as bollard's here, since they come from its code. What OpenSSL
	allocates, and what libnghttp2 allocates with malloc itself, is counted
	apart by the shim."""
	import test_no_alloc as na
	apps = demo_apps(2)
	crt = ca.leaf("localhost", ["localhost"])
	port = util.free_port()
	proc, counts = na.start_counted(tmp_path, (
		"global\n    threads 1\n    log file %s/access.log\n    secret-file %s/key\n"
		"frontend fe\n    bind 127.0.0.1:%d tls crt %s alpn h2,http/1.1\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert max-idle 30m\n"
		"    server app1 127.0.0.1:%d\n    server app2 127.0.0.1:%d\n"
		% (tmp_path, tmp_path, port, crt, apps[0].port, apps[1].port)), port)
	conns = []
	try:
		conns = [h2.H2Conn(port) for _ in range(2)]
		sids = [1, 1]

		def run(n):
			for _ in range(n // 10):
				for k, c in enumerate(conns):
					batch = []
					for _ in range(10):  # 10 streams at once
						c.open(sids[k], h2.request_fields("GET", "/?format=json"))
						batch.append(sids[k])
						sids[k] += 2
					for sid in batch:
						r = c.response(sid)
						assert r.status == "200", r.headers
		run(500)
		a0, f0, o0, n0 = counts()
		run(2000)
		a1, f1, o1, n1 = counts()
	finally:
		for c in conns:
			c.close()
		util.stop_process(proc)
	print("allocations before/after 4000 HTTP/2 streams:", a0, a1, "OpenSSL's:", o0, o1,
	      "nghttp2's:", n0, n1, "(%.1f a stream)" % ((n1 - n0) / 4000))
	assert (a1 - a0) - (o1 - o0) - (n1 - n0) < 50, (a0, a1, o0, o1, n0, n1)
	assert (a1 - a0) - (f1 - f0) < 50, (a0, a1, f0, f1)
	assert n0 > 0  # the shim found libnghttp2
	assert n1 == n0  # and nghttp2 allocates nothing per stream behind the allocator


def test_stream_window_configurable(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"]),
				      global_extra="    tune.h2.stream-window 32k"))
	data = util.pattern_bytes(1 << 20)
	with h2.H2Conn(b.port) as c:
		c.wait(lambda: h2.S_INITIAL_WINDOW_SIZE in c.peer, what="SETTINGS")
		assert c.peer[h2.S_INITIAL_WINDOW_SIZE] == 32768
		c.open(1, h2.request_fields("POST", "/echo"), end_stream=False)
		c.send_data(1, data)
		j = json.loads(c.response(1).body)
		assert j["body_length"] == len(data) and j["chunked"]
		assert j["body_sha256"] == hashlib.sha256(data).hexdigest()
	# it sizes the workers' buffers: a reload cannot change it
	text = open(b.conf_path).read().replace("tune.h2.stream-window 32k", "tune.h2.stream-window 64k")
	open(b.conf_path, "w").write(text)
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: "tune.h2.stream-window cannot change on reload" in b.stderr_text(),
			what="the refused reload")
	with h2.H2Conn(b.port) as c:
		c.wait(lambda: h2.S_INITIAL_WINDOW_SIZE in c.peer, what="SETTINGS")
		assert c.peer[h2.S_INITIAL_WINDOW_SIZE] == 32768


def test_empty_data_end_stream_after_the_body_was_taken(py_backend, bollard_factory, ca):
	"""The body is all passed on to the server, then an empty DATA frame
	ends the stream: that alone must finish the request, not a timeout.

	"All passed on" is read at the server, which counts the body bytes as
	they arrive: the window updates cannot say it, since bollard (as
	nghttp2 does) acknowledges taken bytes once they reach half the window,
	so up to half of it may stay unacknowledged however fast the exchange
	takes them."""
	data = util.pattern_bytes(65535)
	got = {"n": 0, "framing": None}

	def handler(conn, backend):
		req_line = conn.read_line()
		lines, _ = util._read_head_lines(conn)
		fields = util._parse_fields(lines)
		got["framing"] = fields.get("Transfer-Encoding")
		while True:
			size = int(conn.read_line().split(b";", 1)[0].strip(), 16)
			if not size:
				break
			conn.read_exact(size)
			# counted before its CRLF, which bollard writes with the
			# next DATA frame's bytes (or the last chunk)
			with backend.lock:
				got["n"] += size
			conn.read_exact(2)
		util._read_head_lines(conn)
		body = json.dumps({"body_length": got["n"], "line": req_line.decode().strip()}).encode()
		conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

	app = py_backend(handler=handler)
	b = bollard_factory(h2_config([app], ca.leaf("localhost", ["localhost"])))
	with h2.H2Conn(b.port) as c:
		c.wait(lambda: h2.S_INITIAL_WINDOW_SIZE in c.peer, what="SETTINGS")
		c.open(1, h2.request_fields("POST", "/echo"), end_stream=False)
		c.send_data(1, data, end_stream=False)
		util.wait_until(lambda: got["n"] == len(data), what="the server read the whole body")
		# the body was taken: at least half the window is back
		c.wait(lambda: c.stream_windows[1] * 2 >= c.initial_window, what="the window reopened")
		t0 = time.monotonic()
		c.send(h2.frame(h2.DATA, h2.END_STREAM, 1))
		r = c.response(1, timeout=20)
		assert time.monotonic() - t0 < 5
		j = json.loads(r.body)
		assert j["body_length"] == len(data) and got["framing"] == "chunked", (j, got)


def test_header_list_limit_checked_against_bufsize(bollard_run):
	r = bollard_run("check", "-c", "{conf}", config=(
		"global\n    tune.bufsize 8k\n    tune.h2.max-header-list-size 16k\n"
		"listen web\n    bind 127.0.0.1:1\n    server a 127.0.0.1:9\n"))
	assert r.returncode != 0
	out = r.stdout + r.stderr
	assert re.search(r"check\.conf:3: tune\.h2\.max-header-list-size \(16384\) must not exceed "
			 r"tune\.bufsize \(8192\) minus 512", out), out
	r = bollard_run("check", "-c", "{conf}", config=(
		"global\n    tune.bufsize 8k\n    tune.h2.max-header-list-size 4k\n"
		"listen web\n    bind 127.0.0.1:1\n    server a 127.0.0.1:9\n"))
	assert r.returncode == 0, r.stdout + r.stderr


def test_expect_100_continue_interim_headers(demo_apps, bollard_factory, ca):
	"""The server's 100 Continue goes to the client as an interim HEADERS
	(RFC 9113 8.1), before the client sends its body."""
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	with h2.H2Conn(b.port) as c:
		r = c.open(1, h2.request_fields("POST", "/echo", extra=[
			("expect", "100-continue"), ("content-length", "4")]), end_stream=False)
		c.wait(lambda: r.headers, what="the interim response")
		assert not r.ended and r.reset is None  # interim: no END_STREAM
		seen = list(r.headers)
		c.send_data(1, b"ping")
		r = c.response(1)
		assert r.status == "200" and json.loads(r.body)["body_length"] == 4
		assert len(r.headers) > len(seen)  # the final head came after it


def test_frontend_gone_in_reload_ends_connection_gracefully(demo_apps, bollard_factory, ca):
	"""A reload without the connection's frontend: GOAWAY NO_ERROR naming
	the last stream it took (RFC 9113 6.8: the later ones were not
	processed, the client may send them again elsewhere), then the close;
	a new connection is served by the new configuration."""
	apps = demo_apps(1)
	b = bollard_factory(h2_config(apps, ca.leaf("localhost", ["localhost"])))
	with h2.H2Conn(b.port) as c:
		assert c.open(1, h2.request_fields("GET", "/whoami")) and c.response(1).status == "200"
		text = open(b.conf_path).read().replace("frontend fe\n", "frontend fe2\n")
		open(b.conf_path, "w").write(text)
		os.kill(b.pid, signal.SIGHUP)
		util.wait_until(lambda: metric(b, "bollard_reloads_total") == 1, what="the reload")
		c.open(3, h2.request_fields("GET", "/whoami"))
		ga = c.wait_closed()
		assert ga == (1, h2.NO_ERROR), ga
		assert not c.responses[3].ended
	with h2.H2Conn(b.port) as c:
		assert c.open(1, h2.request_fields("GET", "/whoami")) and c.response(1).status == "200"
	e = b.wait_log(lambda e: e["target"] == "/whoami", n=2)
	assert [x["frontend"] for x in e] == ["fe", "fe2"]
