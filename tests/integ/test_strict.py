"""Strict parsing of SPEC §4 (RFC 9112) over raw sockets: every request that
could desynchronise a hop gets the exact status and the connection closed
after it; over-long request lines get 414, over-large heads 431, a head that
does not arrive within `timeout http-request` 408. A malformed response from
a server becomes a 502, and that server connection is not reused."""

import re
import select
import socket
import threading
import time

import pytest

import util
from util import Conn, build_request, read_response

H = b"GET /echo HTTP/1.1\r\nHost: test\r\n"

BAD_REQUESTS = {
	# RFC 9112 6.1: Transfer-Encoding and Content-Length together.
	"cl_and_te": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
		     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"te_and_cl": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
		     b"Content-Length: 5\r\n\r\n0\r\n\r\n",
	# RFC 9112 6.3 (5): differing or malformed Content-Length.
	"two_different_cl": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
			    b"Content-Length: 6\r\n\r\nhello!",
	"cl_list_different": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5, 6\r\n\r\nhello!",
	"cl_abc": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n",
	"cl_negative": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
	"cl_plus": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: +5\r\n\r\nhello",
	"cl_overflow": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	# RFC 9112 6.3 (4): chunked must be the final coding.
	"te_chunked_gzip": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
			   b"0\r\n\r\n",
	"te_gzip_only": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
	"te_chunked_twice_lines": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
				  b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
	# RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message.
	"te_on_http10": b"POST /echo HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
			b"0\r\n\r\n",
	# RFC 9112 5.2: obs-fold.
	"obs_fold": H + b"X-A: 1\r\n  2\r\n\r\n",
	# RFC 9112 2.2: bare CR; lines end in CRLF.
	"bare_cr_in_value": H + b"X-A: a\rb\r\n\r\n",
	"bare_lf_line_end": b"GET /echo HTTP/1.1\r\nHost: test\nX-A: 1\r\n\r\n",
	# RFC 9112 5.1: no whitespace between field name and colon.
	"space_before_colon": H + b"X-A : 1\r\n\r\n",
	"tab_before_colon": H + b"X-A\t: 1\r\n\r\n",
	# RFC 9112 7.1: chunk-size is 1*HEXDIG, bounded.
	"chunk_size_zz": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
			 b"zz\r\nhello\r\n0\r\n\r\n",
	"chunk_size_overflow": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
			       b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
	# RFC 9110 5.5: NUL and other controls are invalid in field values.
	"nul_in_value": H + b"X-A: a\x00b\r\n\r\n",
	"ctl_in_value": H + b"X-A: a\x01b\r\n\r\n",
	"del_in_name": H + b"X-\x7fA: 1\r\n\r\n",
	# RFC 9112 3.2: Host required on 1.1, exactly once.
	"missing_host": b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n",
	"two_hosts": b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	# Malformed request lines.
	"bad_version": b"GET /echo HTTP/1.x\r\nHost: test\r\n\r\n",
	"empty_field_name": H + b": x\r\n\r\n",
	# RFC 9112 7.1: chunk data must be followed by CRLF.
	"chunk_data_overrun": b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
			      b"5\r\nhelloXX\r\n0\r\n\r\n",
	# RFC 9112 2.2: whitespace before the first field (rejected, or the
	# line ignored, which leaves no Host: 400 either way).
	"space_before_first_field": b"GET /echo HTTP/1.1\r\n Host: test\r\n\r\n",
	# RFC 9112 3.2: controls are not allowed in the request target.
	"ctl_in_target": b"GET /a\x01b HTTP/1.1\r\nHost: test\r\n\r\n",
	"nul_in_target": b"GET /a\x00b HTTP/1.1\r\nHost: test\r\n\r\n",
}


def assert_rejected(port, raw, status=400):
	with Conn.connect(port) as c:
		c.send(raw)
		try:
			r = read_response(c)
		except util.Closed:
			pytest.fail("connection closed without a %d response" % status)
		assert r.status == status, "expected %d, got %r\n%s" % (status, r, r.raw_head)
		assert c.is_closed(timeout=5), "connection not closed after %d" % status
		return r


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_rejected(proxy, name):
	b, _ = proxy
	assert_rejected(b.port, BAD_REQUESTS[name], 400)
	# bollard is still serving.
	r = util.request(b.port, "GET", "/whoami")
	assert r.status == 200


def test_te_gzip_chunked_never_desyncs(proxy):
	# "gzip, chunked" ends in chunked, so framing is unambiguous; bollard may
	# reject it (400/501) or pass it on, but it must not desynchronise.
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		       b"5\r\nhello\r\n0\r\n\r\n")
		r = read_response(c)
		assert r.status in (200, 400, 501), r
		if r.status == 200:
			assert r.json()["body_length"] == 5
			assert util.whoami(c) == "app1"
		else:
			assert c.is_closed(timeout=5)


def test_pipelined_good_then_bad(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami") +
		       b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n")
		r = read_response(c)
		assert r.status == 200 and r.text().strip() == "app1", r
		r = read_response(c)
		assert r.status == 400, r
		assert c.is_closed(timeout=5)


def test_request_line_too_long_414(proxy):
	b, _ = proxy
	raw = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: test\r\n\r\n"
	assert_rejected(b.port, raw, 414)


def test_head_too_large_431(proxy):
	b, _ = proxy
	# 24 headers of 1000 bytes: over tune.bufsize (16k), each line short.
	raw = b"GET /echo HTTP/1.1\r\nHost: test\r\n"
	raw += b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(24))
	raw += b"\r\n"
	assert_rejected(b.port, raw, 431)


def test_too_many_headers_431(proxy):
	b, _ = proxy
	# More than tune.maxhdr (default 100) fields, in a small head.
	raw = b"GET /echo HTTP/1.1\r\nHost: test\r\n"
	raw += b"".join(b"X-%d: 1\r\n" % i for i in range(150))
	raw += b"\r\n"
	assert_rejected(b.port, raw, 431)


def test_big_but_allowed_head_passes(proxy):
	b, _ = proxy
	hdrs = [("X-Big-%d" % i, "v" * 1000) for i in range(8)]
	r = util.request(b.port, "GET", "/echo", headers=hdrs)
	assert r.status == 200
	assert util.echo_headers(r).get("X-Big-7") == "v" * 1000


def test_slowloris_408(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"http-request": "1s", "client": "30s"}))
	with Conn.connect(b.port) as c:
		c.send(b"GET /echo HTTP/1.1\r\nHost: test\r\n")
		deadline = time.monotonic() + 8
		got = False
		i = 0
		# Keep the connection busy with one header line every 200 ms: the
		# head as a whole is late, although the client is never idle.
		while time.monotonic() < deadline:
			rd, _, _ = select.select([c.sock], [], [], 0.2)
			if rd:
				got = True
				break
			try:
				c.send(b"X-Slow-%d: 1\r\n" % i)
			except OSError:
				got = True
				break
			i += 1
		assert got, "no answer to a head trickling for 8 s with timeout http-request 1s"
		r = read_response(c)
		assert r.status == 408, r
		assert c.is_closed(timeout=5)


def test_idle_connection_without_request_closed(demo_apps, bollard_factory, config_for):
	# A connection that never sends a byte is closed too (408 or silently).
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"http-request": "1s", "client": "2s",
							"http-keep-alive": "1s"}))
	with Conn.connect(b.port) as c:
		data = c.read_some(timeout=8)
		assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
		assert c.eof or c.is_closed(timeout=5)


def test_malformed_response_502_and_fresh_server_connection(py_backend, bollard_factory,
							       config_for):
	state = {"n": 0}

	def respond(req, be):
		state["n"] += 1
		if state["n"] == 1:
			return (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"
				b"hello!!")
		return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb], retries=0))
	r = util.request(b.port, "GET", "/")
	assert r.status == 502, r
	with Conn.connect(b.port) as c:
		for _ in range(3):
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 200 and r.body == b"ok", r
	assert pb.accepted == 2, ("the server connection that sent a malformed response was "
				   "reused (%d connections accepted)" % pb.accepted)


@pytest.mark.parametrize("raw", [
	b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
	b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
	b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
	b"garbage\r\n\r\n",
	b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(24))
	+ b"Content-Length: 0\r\n\r\n",
], ids=["cl_abc", "cl_and_te", "obs_fold", "bad_status", "garbage", "head_too_large"])
def test_malformed_response_502(py_backend, bollard_factory, config_for, raw):
	pb = py_backend(lambda req, be: (raw, True))
	b = bollard_factory(config_for([pb], retries=0))
	r = util.request(b.port, "GET", "/")
	assert r.status == 502, r


def test_configurable_limits(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, global_extra="    tune.max-request-line 1k\n"
							  "    tune.maxhdr 10"))
	r = util.request(b.port, "GET", "/echo?" + "a" * 500)
	assert r.status == 200, r
	assert_rejected(b.port, b"GET /echo?" + b"a" * 2000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414)
	r = util.request(b.port, "GET", "/echo", headers=[("X-%d" % i, "1") for i in range(5)])
	assert r.status == 200, r
	raw = b"GET /echo HTTP/1.1\r\nHost: test\r\n" + b"".join(
		b"X-%d: 1\r\n" % i for i in range(20)) + b"\r\n"
	assert_rejected(b.port, raw, 431)


def _trickle(c, data, pause=0.003):
	for i in range(len(data)):
		c.send(data[i:i + 1])
		if pause:
			time.sleep(pause)


def test_request_sent_byte_by_byte(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		body = b"hello chunked world"
		raw = build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked"),
							      ("X-Seq", "1")],
				    body=util.chunked_encode(body, 5, [("X-T", "1")]))
		_trickle(c, raw)
		r = read_response(c)
		assert r.status == 200, r
		assert r.json()["body_sha256"] == util.sha256_hex(body)
		_trickle(c, build_request("GET", "/whoami"), pause=0)
		r = read_response(c)
		assert r.text().strip() == "app1"


def test_bad_request_sent_byte_by_byte_still_400(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		_trickle(c, b"GET /echo HTTP/1.1\r\nHost: test\r\nX-A : 1\r\n\r\n")
		r = read_response(c)
		assert r.status == 400, r
		assert c.is_closed(timeout=5)


def test_response_sent_byte_by_byte(py_backend, bollard_factory, config_for):
	body = b"0123456789" * 5
	resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
		+ util.chunked_encode(body, 7, [("X-T", "2")]))

	def handler(conn, be):
		while util.read_request(conn) is not None:
			conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
			for i in range(len(resp)):
				conn.send(resp[i:i + 1])
				time.sleep(0.002)

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port) as c:
		for _ in range(2):
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 200 and r.body == body, r
			assert r.trailers.get("X-T") == "2"


def test_interim_1xx_response_then_final(py_backend, bollard_factory, config_for):
	# RFC 9110 15.2: a proxy forwards 1xx responses (103 Early Hints here);
	# at the least it must not take the 103 for the final answer.
	def respond(req, be):
		return (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
			b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port) as c:
		for _ in range(2):
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 200 and r.body == b"ok", r


def test_client_body_timeout_closes(demo_apps, bollard_factory, config_for):
	# The head is complete but the body never finishes: `timeout client`
	# bounds how long bollard waits (it may answer 408, or just close).
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"client": "1s", "http-request": "1s",
							"server": "10s"}))
	with Conn.connect(b.port) as c:
		c.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789")
		data = c.read_some(timeout=8)
		if data:
			assert re.match(rb"HTTP/1\.1 (408|400|502|504) ", data), data
			c.read_until_close()
		assert c.eof or c.is_closed(timeout=5), "stalled upload kept open"


def test_framing_tokens_case_insensitive(proxy):
	# RFC 9112 7: transfer-coding names are case-insensitive; strictness must
	# not reject valid spellings.
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: Chunked\r\n\r\n"
		       b"5\r\nhello\r\n0\r\n\r\n")
		r = read_response(c)
		assert r.status == 200, r
		assert r.json()["body_length"] == 5
		c.send(b"POST /echo HTTP/1.1\r\nHOST: test\r\nCONTENT-LENGTH: 3\r\n\r\nabc")
		r = read_response(c)
		assert r.status == 200 and r.json()["body_length"] == 3, r


def test_malformed_response_body_not_passed_as_complete(py_backend, bollard_factory, config_for):
	# The head was valid, the chunked body is not: bollard may already have
	# forwarded the head, so it either answers 502 (nothing sent yet) or
	# cuts the client connection; the client must never see a complete
	# response, and the next client is served on a fresh server connection.
	state = {"n": 0}

	def respond(req, be):
		state["n"] += 1
		if state["n"] == 1:
			return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				b"zz\r\nhello\r\n0\r\n\r\n")
		return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb], retries=0))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		try:
			r = read_response(c)
			assert r.status == 502, r
		except (util.Closed, ValueError):
			pass  # cut mid-response: the client knows it is incomplete
	r = util.request(b.port, "GET", "/")
	assert r.status == 200 and r.body == b"ok", r
	assert pb.accepted == 2


def test_error_after_interim_response_is_still_an_answer(py_backend, bollard_factory, config_for):
	# After a 100 Continue the client still waits for the final response:
	# a server that then sends garbage is answered 502, not cut.
	gate = threading.Event()

	def handler(conn, backend):
		if util.read_request(conn) is None:
			return
		conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
		if gate.wait(10):
			conn.send(b"HTTP/1.1 2000 Nope\r\n\r\n")
			conn.is_closed(timeout=5)

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], retries=0))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		r = read_response(c, skip_1xx=False)
		assert r.status == 100, r
		gate.set()
		r = read_response(c)
		assert r.status == 502, r
