"""bollard-demo-app on its own (SPEC section 8): every endpoint, keep-alive
and pipelining, request-body framing (Content-Length, chunked with
trailers, checked by SHA-256 against hashlib), the WebSocket echo, /slow
not blocking the thread, /stats counters, and refusal of bad requests
without dying. The app is started on a free port and stopped by PID."""

import hashlib
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from helpers_demo import (Conn, build_request, chunked, http_request, pattern,
			  start_demo_app, wait_port, ws_connect, DEMO_BIN)


def _need_binary():
	if not os.access(DEMO_BIN, os.X_OK):
		pytest.fail("bollard-demo-app not built: %s (run `make build/bollard-demo-app`)" % DEMO_BIN)


SAN_MARKERS = (b"AddressSanitizer", b"runtime error:", b"LeakSanitizer")


def _check_stderr(path):
	err = path.read_bytes() if path.exists() else b""
	for m in SAN_MARKERS:
		assert m not in err, err[-4000:].decode(errors="replace")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
	"""One app for the module (BOLLARD_DEMO_BIN may name a sanitizer build:
	its stderr is checked at the end)."""
	_need_binary()
	err = tmp_path_factory.mktemp("demo") / "app1.err"
	with open(err, "wb") as f:
		a = start_demo_app("app1", stderr=f)
	yield a
	assert a.alive(), "the demo app died"
	a.stop()
	assert a.proc.returncode == 0
	_check_stderr(err)


@pytest.fixture
def fresh_app(tmp_path):
	_need_binary()
	started = []

	def start(name, **kw):
		err = tmp_path / ("%s.err" % name)
		with open(err, "wb") as f:
			a = start_demo_app(name, stderr=f, **kw)
		started.append((a, err))
		return a
	yield start
	for a, err in started:
		a.stop()
		_check_stderr(err)


def test_whoami_and_x_server(app):
	r = http_request(app.port, "GET", "/whoami")
	assert r.status == 200
	assert r.body == b"app1\n"          # documented: the name and one newline
	assert r.header("X-Server") == "app1"
	assert r.header("Content-Type") == "text/plain"
	assert r.header("Content-Length") == "5"


def test_every_answer_has_x_server(app):
	for path in ("/", "/healthz", "/echo", "/bytes?n=3", "/status?code=418", "/nope", "/stats"):
		r = http_request(app.port, "GET", path)
		assert r.header("X-Server") == "app1", (path, r.headers)


def test_session_created_then_kept(app):
	r = http_request(app.port, "GET", "/")
	assert r.status == 200
	assert "text/html" in r.header("Content-Type")
	cookie = r.header("Set-Cookie")
	m = re.match(r"DEMOSESSID=([0-9a-f]{32}); Path=/; HttpOnly$", cookie)
	assert m, cookie
	assert b"new session" in r.body and b"app1" in r.body
	assert b'action="/cart/add"' in r.body
	sid = m.group(1)
	for visit in (2, 3):
		r = http_request(app.port, "GET", "/", [("Cookie", "other=1; DEMOSESSID=%s" % sid)])
		assert r.header("Set-Cookie") is None
		assert ("visit #%d" % visit).encode() in r.body, r.body
	# An unknown session id (another server's, or expired) starts afresh.
	r = http_request(app.port, "GET", "/", [("Cookie", "DEMOSESSID=%s" % ("0" * 32))])
	assert r.header("Set-Cookie") and b"new session" in r.body


def test_session_json_and_cart(app):
	r = http_request(app.port, "GET", "/?format=json")
	j = r.json()
	assert j["server"] == "app1" and j["new"] is True and j["visits"] == 1
	sid = j["session"]
	ck = [("Cookie", "DEMOSESSID=" + sid)]
	r = http_request(app.port, "POST", "/cart/add", ck + [("Content-Type",
		"application/x-www-form-urlencoded")], body=b"item=red+shoe%21")
	assert r.status == 303 and r.header("Location") == "/"
	r = http_request(app.port, "POST", "/cart/add", ck + [("Accept", "application/json")], body=b"")
	assert r.status == 200
	j = r.json()
	assert j["cart"] == ["red shoe!", "widget"] and j["cart_total"] == 2
	assert j["session"] == sid and j["new"] is False
	r = http_request(app.port, "GET", "/", ck)
	assert b"<li>red shoe!</li>" in r.body and b"visit #2" in r.body
	# Item names are escaped in the page.
	http_request(app.port, "POST", "/cart/add", ck, body=b"item=%3Cscript%3E")
	r = http_request(app.port, "GET", "/", ck)
	assert b"<script>" not in r.body and b"&lt;script&gt;" in r.body


def test_cart_without_session_creates_one(app):
	r = http_request(app.port, "POST", "/cart/add", [("Accept", "application/json")],
			 body=b"item=x")
	assert r.header("Set-Cookie", "").startswith("DEMOSESSID=")
	assert r.json()["cart"] == ["x"]


def test_custom_session_cookie_name(fresh_app):
	a = fresh_app("app9", cookie="JSESSIONID")
	r = http_request(a.port, "GET", "/")
	assert r.header("Set-Cookie").startswith("JSESSIONID=")


def test_healthz_fail_and_recover(fresh_app):
	a = fresh_app("app2")
	r = http_request(a.port, "GET", "/healthz")
	assert (r.status, r.body.strip()) == (200, b"ok")
	assert http_request(a.port, "POST", "/admin/fail").status == 200
	assert http_request(a.port, "GET", "/healthz").status == 503
	assert http_request(a.port, "GET", "/whoami").status == 200   # only health fails
	assert http_request(a.port, "POST", "/admin/recover").status == 200
	assert http_request(a.port, "GET", "/healthz").status == 200
	assert http_request(a.port, "GET", "/admin/fail").status == 405


def test_echo_headers_in_order(app):
	hdrs = [("X-B", "2"), ("x-a", "1"), ("X-B", "3"), ("Cookie", 'q="\\"')]
	r = http_request(app.port, "DELETE", "/echo/sub?x=1&y=2", hdrs)
	j = r.json()
	assert j["server"] == "app1" and j["method"] == "DELETE"
	assert j["path"] == "/echo/sub?x=1&y=2"
	assert j["headers"] == [["Host", "test"]] + [list(h) for h in hdrs]
	assert j["body_length"] == 0
	assert j["body_sha256"] == hashlib.sha256(b"").hexdigest()


def test_echo_content_length_body(app):
	body = os.urandom(300000)
	r = http_request(app.port, "POST", "/echo", body=body)
	j = r.json()
	assert j["body_length"] == len(body) and j["chunked"] is False
	assert j["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_echo_chunked_5mb_streamed_with_trailers(app):
	body = os.urandom(5 * 1024 * 1024)
	data = chunked(body, sizes=(1, 17, 4096, 65536, 100003), trailers=[("X-Sum", "42")])
	with Conn(app.port) as c:
		c.send(build_request("PUT", "/echo", [("Transfer-Encoding", "chunked")]))
		# Send in odd pieces so chunk boundaries straddle reads.
		for i in range(0, len(data), 77777):
			c.send(data[i:i + 77777])
		r = c.read_response()
	j = r.json()
	assert j["chunked"] is True
	assert j["body_length"] == len(body)
	assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
	assert j["trailers"] == [["X-Sum", "42"]]


def test_chunk_extensions_accepted(app):
	with Conn(app.port) as c:
		c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) +
		       b"3;name=value\r\nabc\r\n2 ; x\r\nde\r\n0\r\n\r\n")
		j = c.read_response().json()
	assert j["body_length"] == 5
	assert j["body_sha256"] == hashlib.sha256(b"abcde").hexdigest()


def test_expect_100_continue(app):
	with Conn(app.port) as c:
		c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
							("Content-Length", "4")]))
		assert c.read_line() == b"HTTP/1.1 100 Continue"
		assert c.read_line() == b""
		c.send(b"data")
		assert c.read_response().json()["body_length"] == 4


@pytest.mark.parametrize("n", [0, 1, 16, 16385, 1000000])
def test_bytes_content_length(app, n):
	r = http_request(app.port, "GET", "/bytes?n=%d" % n)
	assert r.status == 200 and r.header("Content-Length") == str(n)
	assert r.body == pattern(n)


@pytest.mark.parametrize("n", [0, 5, 16384, 16385, 100000])
def test_bytes_chunked(app, n):
	with Conn(app.port) as c:
		c.send(build_request("GET", "/bytes?n=%d&chunked=1" % n))
		r = c.read_response()
		assert r.header("Transfer-Encoding") == "chunked"
		assert r.header("Content-Length") is None
		assert r.body == pattern(n)
		# The connection stays usable after a chunked answer.
		c.send(build_request("GET", "/whoami"))
		assert c.read_response().body == b"app1\n"


def test_bytes_bad_parameter(app):
	assert http_request(app.port, "GET", "/bytes?n=abc").status == 400


def test_head_has_headers_no_body(app):
	with Conn(app.port) as c:
		for path, cl in (("/bytes?n=1000", "1000"), ("/whoami", "5"), ("/healthz", "3")):
			c.send(build_request("HEAD", path))
			r = c.read_response(head=True)
			assert r.status == 200 and r.header("Content-Length") == cl, r.headers
		# Had a body been sent after a HEAD answer, this would misparse.
		c.send(build_request("GET", "/whoami"))
		assert c.read_response().body == b"app1\n"


def test_status_codes(app):
	with Conn(app.port) as c:
		for code in (204, 304):
			c.send(build_request("GET", "/status?code=%d" % code))
			r = c.read_response()
			assert r.status == code and r.body == b""
			assert r.header("Content-Length") in (None, "0")
		c.send(build_request("GET", "/status?code=418"))
		r = c.read_response()
		assert r.status == 418 and r.body == b"status 418\n"
		c.send(build_request("GET", "/status?code=503"))
		assert c.read_response().status == 503
		c.send(build_request("GET", "/whoami"))
		assert c.read_response().body == b"app1\n"
	assert http_request(app.port, "GET", "/status?code=99").status == 400


def test_not_found_and_method(app):
	assert http_request(app.port, "GET", "/nope").status == 404
	r = http_request(app.port, "POST", "/bytes?n=1", body=b"x")
	assert r.status == 405


def test_slow_does_not_block(app):
	t0 = time.monotonic()
	with Conn(app.port) as slow:
		slow.send(build_request("GET", "/slow?ms=1500"))
		# Meanwhile the same (single) thread answers another client.
		r = http_request(app.port, "GET", "/whoami")
		assert r.status == 200
		assert time.monotonic() - t0 < 1.4, "the thread was blocked by /slow"
		r = slow.read_response()
	elapsed = time.monotonic() - t0
	assert r.status == 200
	assert 1.4 <= elapsed < 10, elapsed


def test_slow_short(app):
	t0 = time.monotonic()
	r = http_request(app.port, "GET", "/slow?ms=200")
	assert r.status == 200 and 0.18 <= time.monotonic() - t0 < 10


def test_stats_counts_connections_and_requests(fresh_app):
	a = fresh_app("app3")
	s0 = a.stats()      # wait_port's probe connection was counted too
	assert s0["requests"] == 1
	with Conn(a.port) as c:
		for _ in range(10):
			c.send(build_request("GET", "/whoami"))
			c.read_response()
	s1 = a.stats()
	# one keep-alive connection and the second /stats connection
	assert s1["connections_accepted"] == s0["connections_accepted"] + 2
	assert s1["requests"] == s0["requests"] + 11
	assert s1["server"] == "app3"


def test_pipelined_requests_answered_in_order(app):
	reqs = (build_request("GET", "/bytes?n=20000") + build_request("GET", "/whoami") +
		build_request("POST", "/echo", body=b"hello") +
		build_request("GET", "/bytes?n=7&chunked=1") + build_request("GET", "/status?code=204") +
		build_request("GET", "/healthz"))
	with Conn(app.port) as c:
		c.send(reqs)
		assert c.read_response().body == pattern(20000)
		assert c.read_response().body == b"app1\n"
		assert c.read_response().json()["body_length"] == 5
		assert c.read_response().body == pattern(7)
		assert c.read_response().status == 204
		assert c.read_response().body == b"ok\n"


def test_many_pipelined_requests(app):
	with Conn(app.port) as c:
		c.send(build_request("GET", "/whoami") * 2000)
		for _ in range(2000):
			assert c.read_response().body == b"app1\n"


def test_connection_close_honoured(app):
	with Conn(app.port) as c:
		c.send(build_request("GET", "/whoami", [("Connection", "close")]))
		r = c.read_response()
		assert r.header("Connection") == "close"
		assert c.at_eof()


def test_http10_closes_unless_keepalive(app):
	with Conn(app.port) as c:
		c.send(build_request("GET", "/whoami", version="HTTP/1.0"))
		r = c.read_response()
		assert r.body == b"app1\n" and r.header("Connection") == "close"
		assert c.at_eof()
	with Conn(app.port) as c:
		for _ in range(2):
			c.send(build_request("GET", "/whoami", [("Connection", "keep-alive")],
					     version="HTTP/1.0"))
			r = c.read_response()
			assert r.header("Connection") == "keep-alive"
	# No chunked framing toward an HTTP/1.0 client.
	with Conn(app.port) as c:
		c.send(build_request("GET", "/bytes?n=10&chunked=1", version="HTTP/1.0"))
		r = c.read_response()
		assert r.header("Content-Length") == "10" and r.body == pattern(10)


def test_client_half_close_still_answered(app):
	with Conn(app.port) as c:
		c.send(build_request("GET", "/whoami"))
		c.sock.shutdown(socket.SHUT_WR)
		assert c.read_response().body == b"app1\n"
		assert c.at_eof()


@pytest.mark.parametrize("raw,status", [
	(b"garbage\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
	(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
	(b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n", 400),
	(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400),
	(b"GET / HTTP/2.0\r\n\r\n", 505),
	(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
	(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	 b"ffffffffffffffffffff\r\n", 400),
	(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400),
])
def test_bad_requests_get_400_and_close(app, raw, status):
	with Conn(app.port) as c:
		c.send(raw)
		r = c.read_response()
		assert r.status == status, r
		assert r.header("Connection") == "close"
		assert c.at_eof()
	assert http_request(app.port, "GET", "/whoami").status == 200


def test_oversized_head_431(app):
	with Conn(app.port) as c:
		c.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
		assert c.read_response().status == 431
	assert http_request(app.port, "GET", "/whoami").status == 200


def test_large_but_allowed_head(app):
	v = "v" * 20000
	r = http_request(app.port, "GET", "/echo", [("X-Large", v)])
	assert r.json()["headers"][1] == ["X-Large", v]


def test_abrupt_disconnects_do_not_hurt(app):
	for raw in (b"GET /bytes?n=50000000 HTTP/1.1\r\n\r\n", b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nab",
		    b"GET /slow?ms=100 HTTP/1.1\r\n\r\n", b"GET / HT"):
		s = socket.create_connection(("127.0.0.1", app.port))
		s.sendall(raw)
		s.close()
	time.sleep(0.3)
	assert app.alive()
	assert http_request(app.port, "GET", "/whoami").status == 200


def test_websocket_echo(app):
	ws = ws_connect(app.port)
	assert ws.response.header("X-Server") == "app1"
	ws.send("hello")
	assert ws.recv() == (True, 1, b"hello")
	for n in (0, 125, 126, 65535, 65536, 300000):
		data = os.urandom(n)
		ws.send(data, opcode=2)
		assert ws.recv() == (True, 2, data), n
	# Fragmented message: fragments come back as sent.
	ws.send("ab", opcode=1, fin=False)
	ws.send("cd", opcode=0, fin=True)
	assert ws.recv() == (False, 1, b"ab")
	assert ws.recv() == (True, 0, b"cd")
	ws.send(b"p1", opcode=9)                       # ping -> pong
	assert ws.recv() == (True, 10, b"p1")
	ws.send(b"ignored", opcode=10)                 # pong: no answer
	ws.send("after")
	assert ws.recv() == (True, 1, b"after")
	ws.close(1000)                                 # close -> close, then EOF
	assert ws.recv() == (True, 8, b"\x03\xe8")
	assert ws.conn.at_eof()
	ws.close_socket()


def test_websocket_unmasked_frame_fails(app):
	ws = ws_connect(app.port)
	ws.send("x", mask=False)
	fin, op, payload = ws.recv()
	assert op == 8 and payload == b"\x03\xea"      # 1002 protocol error
	assert ws.conn.at_eof()
	ws.close_socket()


def test_websocket_bad_handshake(app):
	r = http_request(app.port, "GET", "/ws")
	assert r.status == 426
	r = http_request(app.port, "GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
						  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
						  ("Sec-WebSocket-Version", "8")])
	assert r.status == 426


def test_websocket_rfc_example_key(app):
	# RFC 6455 1.3: key "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
	with Conn(app.port) as c:
		c.send(build_request("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
						    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
						    ("Sec-WebSocket-Version", "13")]))
		r = c.read_response()
		assert r.status == 101
		assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_threads_share_sessions(fresh_app):
	a = fresh_app("app4", threads=3)
	before = a.stats()["connections_accepted"]
	r = http_request(a.port, "GET", "/?format=json")
	sid = r.json()["session"]
	# Fresh connections land on any of the three threads' listeners.
	for i in range(30):
		j = http_request(a.port, "GET", "/?format=json", [("Cookie", "DEMOSESSID=" + sid)]).json()
		assert j["session"] == sid and j["visits"] == i + 2
	# (+1 at most: wait_port's probe may be accepted late by another thread)
	assert before + 32 <= a.stats()["connections_accepted"] <= before + 33
	assert a.stats()["threads"] == 3


def test_concurrent_clients(app):
	errors = []

	def client():
		try:
			with Conn(app.port) as c:
				for _ in range(50):
					c.send(build_request("GET", "/whoami"))
					assert c.read_response().body == b"app1\n"
		except Exception as e:  # reported below
			errors.append(e)
	ts = [threading.Thread(target=client) for _ in range(20)]
	for t in ts:
		t.start()
	for t in ts:
		t.join(30)
	assert not errors, errors[:3]


def test_port_zero_prints_port(tmp_path):
	_need_binary()
	out = tmp_path / "out"
	with open(out, "w") as f:
		p = subprocess.Popen([DEMO_BIN, "--name", "zero", "--port", "0"], stdout=f)
	try:
		deadline = time.monotonic() + 10
		m = None
		while time.monotonic() < deadline and not m:
			m = re.search(r"listening on 127\.0\.0\.1:(\d+)", out.read_text())
			time.sleep(0.05)
		assert m, out.read_text()
		port = int(m.group(1))
		wait_port(port, proc=p)
		assert http_request(port, "GET", "/whoami").body == b"zero\n"
	finally:
		p.terminate()
		p.wait(5)


def test_bad_command_line():
	_need_binary()
	r = subprocess.run([DEMO_BIN, "--name", "x"], capture_output=True, timeout=10)
	assert r.returncode == 2
	r = subprocess.run([DEMO_BIN, "--name", "x", "--port", "99999"], capture_output=True, timeout=10)
	assert r.returncode == 2
	r = subprocess.run([DEMO_BIN, "--help"], capture_output=True, timeout=10)
	assert r.returncode == 0 and b"--port" in r.stdout
	# Port in use: an error, not a crash.
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		s.listen()
		port = s.getsockname()[1]
		r = subprocess.run([DEMO_BIN, "--name", "x", "--port", str(port)], capture_output=True,
				   timeout=10)
		assert r.returncode == 1, r
