"""HTTP/2 at the edge as an outside conformance tool (h2spec) and an operator
see it: frames and header lists no well-behaved client sends, answered as
RFC 9113 says without harm to the other streams of the connection, and
stops and reloads with many streams in flight. Raw frames: h2frames.py."""

import json
import os
import re
import signal
import struct
import subprocess
import time

import pytest

import util
import h2frames as h2
from test_tls import CA, metric


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


def h2_proxy(demo_apps, bollard_factory, ca, threads=1, grace="2s", global_extra=""):
	from conftest import simple_config
	crt = ca.leaf("localhost", ["localhost"])
	return bollard_factory(simple_config(
		demo_apps(1), threads=threads, grace=grace,
		bind="127.0.0.1:{port} tls crt %s alpn h2,http/1.1" % crt,
		global_extra="    stats-listen 127.0.0.1:{port_stats}\n" + global_extra))


def served(c, sid, path="/whoami"):
	c.open(sid, h2.request_fields("GET", path))
	r = c.response(sid)
	assert r.status == "200" and r.body.strip() == b"app1", (r.headers, r.body, r.reset)


# ------------------------------------------------------- stop and reload

def test_stop_answers_every_stream_in_flight(demo_apps, bollard_factory, ca):
	"""SIGTERM with 10 streams in flight on each of 3 connections: each
	connection gets GOAWAY(NO_ERROR) naming its last stream (RFC 9113 6.8),
	every stream is answered whole, then bollard exits 0."""
	b = h2_proxy(demo_apps, bollard_factory, ca, grace="10s")
	conns = [h2.H2Conn(b.port) for _ in range(3)]
	try:
		for c in conns:
			for sid in range(1, 21, 2):
				c.open(sid, h2.request_fields("GET", "/slow?ms=700&s=%d" % sid))
		util.wait_until(lambda: metric(b, "bollard_http2_streams_total", frontend="fe") == 30,
				what="30 streams under way")
		os.kill(b.pid, signal.SIGTERM)
		for c in conns:
			for sid in range(1, 21, 2):
				r = c.response(sid)
				assert r.status == "200" and r.reset is None, (sid, r.headers, r.reset)
			ga = c.wait_closed()
			assert ga == (19, h2.NO_ERROR), ga
	finally:
		for c in conns:
			c.close()
	assert b.proc.wait(timeout=15) == 0
	assert len(b.wait_log(lambda e: e["target"].startswith("/slow"), n=30)) == 30


def test_streams_racing_the_stop_are_answered_or_refused(demo_apps, bollard_factory, ca):
	"""A client that keeps opening streams while the stop comes: each stream
	up to the GOAWAY's last-stream-id is answered, each one above it is not
	processed (RFC 9113 6.8: the client may retry it elsewhere), and the
	access log says the same."""
	b = h2_proxy(demo_apps, bollard_factory, ca, grace="10s")
	with h2.H2Conn(b.port) as c:
		sid = 1
		for _ in range(4):
			c.open(sid, h2.request_fields("GET", "/slow?ms=300&s=%d" % sid))
			sid += 2
		util.wait_until(lambda: metric(b, "bollard_http2_streams_total", frontend="fe") == 4,
				what="4 streams under way")
		os.kill(b.pid, signal.SIGTERM)
		for _ in range(200):
			if c.goaway is not None or c.closed:
				break
			try:
				c.open(sid, h2.request_fields("GET", "/slow?ms=300&s=%d" % sid))
			except OSError:
				break  # closed: what was sent is judged below like the rest
			sid += 2
			c.read_frame(timeout=0.01)
		c.wait_closed()
		assert c.goaway is not None and c.goaway[1] == h2.NO_ERROR, c.goaway
		last = c.goaway[0]
		assert last >= 7
		for s, r in c.responses.items():
			if s <= last:
				assert r.status == "200" and r.ended, (s, last, r.headers, r.reset)
			else:
				assert r.status is None, (s, last, r.headers)
	assert b.proc.wait(timeout=15) == 0
	logged = {e["target"] for e in b.access_log() if "unparsed" not in e and e["target"].startswith("/slow")}
	assert logged == {"/slow?ms=300&s=%d" % s for s in c.responses if s <= last}


def test_h2load_across_reloads_loses_nothing(demo_apps, bollard_factory, ca, bollard_bin, tmp_path):
	"""h2load (4 connections, 10 streams each) while three reloads happen
	(SIGHUP, `bollard ctl reload`, SIGHUP), with a held stream on a
	connection of its own so that each reload finds streams in flight:
	every request succeeds."""
	b = h2_proxy(demo_apps, bollard_factory, ca, threads=2,
		     global_extra="    admin-socket {tmp}/adm.sock")
	n = 2000
	load = subprocess.Popen(["h2load", "-n", str(n), "-c", "4", "-m", "10",
				 "https://127.0.0.1:%d/slow?ms=20" % b.port],
				stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
	try:
		with h2.H2Conn(b.port) as c:
			for k in range(1, 4):
				sid = 2 * k - 1
				c.open(sid, h2.request_fields("POST", "/echo?held=%d" % k,
							       extra=[("content-length", "4")]), end_stream=False)
				util.wait_until(lambda: metric(b, "bollard_http2_streams_total",
							       frontend="fe") > 0, what="streams under way")
				if k == 2:
					r = subprocess.run([bollard_bin, "ctl", "-s", str(tmp_path / "adm.sock"),
							    "reload"], capture_output=True, text=True, timeout=30)
					assert r.returncode == 0, r
				else:
					os.kill(b.pid, signal.SIGHUP)
				util.wait_until(lambda: metric(b, "bollard_reloads_total") == k,
						what="reload %d" % k)
				c.send_data(sid, b"ping")
				r = c.response(sid)
				assert r.status == "200" and json.loads(r.body)["body_length"] == 4
		out = load.communicate(timeout=120)[0].decode(errors="replace")
	finally:
		if load.poll() is None:
			load.kill()
			load.wait()
	assert load.returncode == 0, out
	assert "%d succeeded, 0 failed, 0 errored, 0 timeout" % n in out, out
	assert "status codes: %d 2xx" % n in out, out


# ------------------------------------------------- malformed requests

REQ = [(":method", "GET"), (":scheme", "https"), (":path", "/whoami"), (":authority", "localhost")]
SLOW = [REQ[0], REQ[1], (":path", "/slow?ms=500"), REQ[3]]
STREAM_CLOSED, FRAME_SIZE_ERROR = 5, 6


@pytest.mark.parametrize("fields", [
	pytest.param(REQ[:2] + REQ[3:], id="no-path"),
	pytest.param(REQ[:2] + REQ[3:] + [("x-a", "b")], id="no-path-then-a-field"),
	pytest.param(REQ[:2] + [(":path", "")] + REQ[3:], id="empty-path"),
	pytest.param(REQ[:1] + REQ, id="two-methods"),
	pytest.param(REQ[:2] + [("x-a", "b")] + REQ[2:], id="pseudo-after-a-field"),
	pytest.param(REQ + [(":foo", "x")], id="unknown-pseudo"),
	pytest.param(REQ + [(":status", "200")], id="response-pseudo"),
	pytest.param(REQ + [("X-Upper", "b")], id="uppercase-name"),
	pytest.param(REQ + [("te", "gzip")], id="te-not-trailers"),
	pytest.param(REQ + [("connection", "close")], id="connection"),
	pytest.param(REQ + [("transfer-encoding", "chunked")], id="transfer-encoding"),
	pytest.param(REQ + [("upgrade", "h2c")], id="upgrade"),
	pytest.param(REQ + [("x-a", " padded")], id="value-leading-space"),
	pytest.param(REQ + [("content-length", "1x")], id="bad-content-length"),
	# bollard's own checks since libnghttp2's HTTP messaging checks are off
	pytest.param(REQ + [("x(a", "b")], id="name-not-a-token"),
	pytest.param(REQ + [("x-a", "b\x01c")], id="value-control"),
	pytest.param(REQ + [("x-a", "b\x7fc")], id="value-del"),
	pytest.param([(":method", "G(T")] + REQ[1:], id="method-not-a-token"),
	pytest.param(REQ[:3] + [(":authority", "user@localhost")], id="authority-userinfo"),
	pytest.param(REQ[:3] + [(":authority", "local host")], id="authority-space"),
	pytest.param(REQ[:3] + [("host", "local host")], id="host-space"),
	pytest.param(REQ[:3] + [(":authority", "")], id="authority-empty"),
	pytest.param(REQ[:3] + [("host", "")], id="host-empty"),
	pytest.param(REQ[:1] + [(":scheme", "1ttps")] + REQ[2:], id="scheme-digit-first"),
	pytest.param(REQ[:2] + [(":path", "*")] + REQ[3:], id="asterisk-not-options"),
	pytest.param(REQ + [("content-length", "3")], id="content-length-without-data"),
])
def test_malformed_request_reset_with_protocol_error(demo_apps, bollard_factory, ca, fields):
	"""RFC 9113 8.1.1 (8.2.1, 8.2.2, 8.3): a malformed request is a stream
	error of type PROTOCOL_ERROR, whichever of libnghttp2 and bollard's
	own header checks finds it; nothing reaches the server, and the
	connection's next stream is served."""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as c:
		r = c.open(1, fields)
		c.wait(lambda: r.reset is not None or r.ended, what="the answer")
		assert r.reset == h2.PROTOCOL_ERROR and r.status is None, (r.reset, r.headers)
		served(c, 3)
		assert c.goaway is None
	assert [e["target"] for e in b.wait_log()] == ["/whoami"]


@pytest.mark.parametrize("value", ["trailers", "Trailers", "TRAILERS"])
def test_te_trailers_in_any_case_is_served(demo_apps, bollard_factory, ca, value):
	"""RFC 9113 8.2.2 allows te: trailers, and a transfer-coding is a
	case-insensitive token (RFC 9110 10.1.4): no case of it is malformed.
	(te is hop-by-hop: the HTTP/1.1 server does not get it.)"""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as c:
		c.open(1, REQ + [("te", value)])
		r = c.response(1)
		assert r.status == "200" and r.reset is None, (r.headers, r.reset)


def test_content_length_mismatch_is_reset_and_not_passed_on(demo_apps, bollard_factory, ca):
	"""RFC 9113 8.1.1: DATA longer or shorter than content-length makes the
	request malformed: RST_STREAM(PROTOCOL_ERROR), and the server sees no
	complete request (the echo that would answer it is never made)."""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as c:
		for sid, cl, body in ((1, "3", b"12345"), (3, "10", b"12345"), (5, "4", b"")):
			r = c.open(sid, h2.request_fields("POST", "/echo?s=%d" % sid,
							   extra=[("content-length", cl)]), end_stream=False)
			c.send(h2.frame(h2.DATA, h2.END_STREAM, sid, body))
			c.wait(lambda: r.reset is not None or r.ended, what="the answer")
			assert r.reset == h2.PROTOCOL_ERROR and r.status is None, (sid, r.reset, r.headers)
		served(c, 7)
	assert [e for e in b.access_log() if "unparsed" not in e and e["status"] == 200 and
		e["target"].startswith("/echo")] == []


@pytest.mark.parametrize("frames,code", [
	pytest.param(h2.frame(h2.DATA, 0, 0, b"abc"), h2.PROTOCOL_ERROR, id="data-on-stream-0"),
	pytest.param(h2.frame(h2.HEADERS, h2.END_HEADERS, 0, h2.hpack(REQ)), h2.PROTOCOL_ERROR,
		     id="headers-on-stream-0"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 1), h2.PROTOCOL_ERROR, id="settings-on-a-stream"),
	pytest.param(h2.frame(h2.PING, 0, 1, bytes(8)), h2.PROTOCOL_ERROR, id="ping-on-a-stream"),
	pytest.param(h2.frame(h2.RST_STREAM, 0, 0, struct.pack(">I", 8)), h2.PROTOCOL_ERROR,
		     id="rst-on-stream-0"),
	pytest.param(h2.frame(h2.DATA, h2.END_STREAM, 1, b"abc"), h2.PROTOCOL_ERROR, id="data-on-idle"),
	pytest.param(h2.frame(h2.HEADERS, h2.END_HEADERS, 2, h2.hpack(REQ)), h2.PROTOCOL_ERROR,
		     id="even-stream"),
	pytest.param(h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)),
		     h2.FLOW_CONTROL_ERROR, id="window-beyond-2^31-1"),
	pytest.param(h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), h2.PROTOCOL_ERROR,
		     id="window-update-0"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 2, 2)), h2.PROTOCOL_ERROR,
		     id="enable-push-2"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 4, 0x80000000)),
		     h2.FLOW_CONTROL_ERROR, id="initial-window-2^31"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 5, 16383)), h2.PROTOCOL_ERROR,
		     id="max-frame-size-too-small"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 5, 1 << 24)), h2.PROTOCOL_ERROR,
		     id="max-frame-size-too-large"),
	pytest.param(h2.frame(h2.SETTINGS, 0, 0, b"\0\0\0"), FRAME_SIZE_ERROR, id="settings-length"),
	pytest.param(h2.frame(h2.PRIORITY, 0, 1, struct.pack(">IB", 1, 15)), h2.PROTOCOL_ERROR,
		     id="priority-on-itself"),
	pytest.param(h2.frame(h2.HEADERS, 0, 1, h2.hpack(REQ)) +
		     h2.frame(h2.CONTINUATION, h2.END_HEADERS, 3, h2.hpack([("x", "y")])),
		     h2.PROTOCOL_ERROR, id="continuation-of-another-stream"),

	pytest.param(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.hpack(SLOW)) +
		     h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.hpack([("x", "y")])),
		     STREAM_CLOSED, id="headers-after-end-stream"),
	pytest.param(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.hpack(SLOW)) +
		     h2.frame(h2.DATA, h2.END_STREAM, 1, b"abc"), STREAM_CLOSED,
		     id="data-after-end-stream"),
	pytest.param(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
			      h2.hpack(REQ + [("x-big", "a" * 17000)])), FRAME_SIZE_ERROR,
		     id="frame-beyond-max-frame-size"),
])
def test_connection_errors_get_goaway_with_the_rfc_code(demo_apps, bollard_factory, ca, frames, code):
	"""RFC 9113 5.1, 5.1.1, 6.x: frames a stream cannot carry, or stream 0
	cannot, frames on a stream the client ended (STREAM_CLOSED, a stream
	error 5.4.1 lets a server make a connection error), flow-control
	windows beyond 2^31-1, SETTINGS out of range:
	GOAWAY with the error code the RFC names, then the connection closes;
	bollard goes on serving other connections. (A PRIORITY on itself is a
	stream error the RFC lets a server make a connection error, 5.4.1, as
	libnghttp2 does.)"""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as other:
		served(other, 1)
		with h2.H2Conn(b.port) as c:
			c.wait(lambda: h2.S_MAX_CONCURRENT_STREAMS in c.peer, what="the server's SETTINGS")
			c.send(frames)
			ga = c.wait_closed()
			assert ga is not None and ga[1] == code, ga
		served(other, 3)


def test_unknown_frames_and_settings_are_ignored(demo_apps, bollard_factory, ca):
	"""RFC 9113 4.1, 5.5, 6.5.2: unknown frame types (on stream 0 or not)
	and unknown SETTINGS identifiers are ignored, and the stream that
	follows is served."""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as c:
		c.send(h2.frame(0x77, 0xff, 0, b"zz") + h2.frame(0x78, 0, 3, b"zz") +
		       h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 0x99, 7)))
		served(c, 1)
		assert c.goaway is None


def test_request_trailers_end_the_body(demo_apps, bollard_factory, ca):
	"""RFC 9113 8.1: trailers after DATA end the request; the body reaches
	the server whole. Trailers without END_STREAM, or with a pseudo-header,
	are malformed (8.1, 8.3)."""
	b = h2_proxy(demo_apps, bollard_factory, ca)
	with h2.H2Conn(b.port) as c:
		c.open(1, h2.request_fields("POST", "/echo"), end_stream=False)
		c.send(h2.frame(h2.DATA, 0, 1, b"hello") +
		       h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, h2.hpack([("x-t", "v")])))
		r = c.response(1)
		assert r.status == "200" and json.loads(r.body)["body_length"] == 5, (r.headers, r.body)
		for sid, flags, trailer in ((3, h2.END_HEADERS, ("x-t", "v")),
					    (5, h2.END_HEADERS | h2.END_STREAM, (":path", "/x"))):
			r = c.open(sid, h2.request_fields("POST", "/echo"), end_stream=False)
			c.send(h2.frame(h2.DATA, 0, sid, b"hello") +
			       h2.frame(h2.HEADERS, flags, sid, h2.hpack([trailer])))
			c.wait(lambda: r.reset is not None or r.ended, what="the answer")
			assert r.reset == h2.PROTOCOL_ERROR and r.status is None, (sid, r.reset, r.headers)
		served(c, 7)


# ------------------------------------------------- responses

RESPONSES = {
	"/hop": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x-foo\r\n"
		b"X-Foo: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n"
		b"TE: trailers\r\nX-Ok: yes\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"/204": b"HTTP/1.1 204 No Content\r\nX-Ok: yes\r\n\r\n",
	"/304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"a\"\r\n\r\n",
	"/1xx": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
		b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"/101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
}


def nghttp(port, path, *extra):
	"""(response header blocks [[(name, value)]], END_STREAM on the final
	HEADERS, DATA bytes) of one request with `nghttp -nv`, which refuses a
	response with a connection-specific field (RFC 9113 8.2.2)."""
	r = subprocess.run(["nghttp", "-nv"] + list(extra) + ["https://127.0.0.1:%d%s" % (port, path)],
			   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
	out = r.stdout.decode(errors="replace")
	assert r.returncode == 0, out
	blocks, fields, ended, data = [], [], False, 0
	for ln in out.splitlines():
		# nghttp prints a block's fields, then the HEADERS frame that held them
		m = re.match(r"\[.*\] recv \(stream_id=13\) (:?[^:]+): (.*)$", ln)
		if m:
			fields.append((m.group(1), m.group(2)))
		m = re.match(r"\[.*\] recv HEADERS frame <length=\d+, flags=(0x[0-9a-f]+), stream_id=13>", ln)
		if m:
			blocks.append(fields)
			fields = []
			ended = bool(int(m.group(1), 16) & 1)
		m = re.match(r"\[.*\] recv DATA frame <length=(\d+), flags=0x[0-9a-f]+, stream_id=13>", ln)
		if m:
			data += int(m.group(1))
	return blocks, ended, data


def test_responses_from_http11_servers_made_valid_http2(py_backend, bollard_factory, ca):
	"""RFC 9113 8.2.2: the server's connection-specific fields (Connection,
	what it lists, Keep-Alive, Transfer-Encoding, Upgrade, TE) are not
	passed on; 1xx are (8.1), 101 is not an answer to an HTTP/2 request
	(8.6: a 502); 204 and 304 end on their HEADERS (RFC 9110 6.4.1)."""
	be = py_backend(lambda req, b: RESPONSES[req.target])
	crt = ca.leaf("localhost", ["localhost"])
	from conftest import simple_config
	b = bollard_factory(simple_config([be], bind="127.0.0.1:{port} tls crt %s alpn h2" % crt))
	blocks, ended, data = nghttp(b.port, "/hop")
	assert blocks == [[(":status", "200"), ("x-ok", "yes")]] and data == 5, blocks
	for path, status in (("/204", "204"), ("/304", "304")):
		blocks, ended, data = nghttp(b.port, path)
		assert len(blocks) == 1 and blocks[0][0] == (":status", status), blocks
		assert ended and data == 0, (path, ended, data)
	blocks, ended, data = nghttp(b.port, "/1xx")
	assert [blk[0] for blk in blocks] == [(":status", "103"), (":status", "200")], blocks
	assert ("link", "</s.css>; rel=preload") in blocks[0] and data == 2, blocks
	blocks, ended, data = nghttp(b.port, "/101")
	assert len(blocks) == 1 and blocks[0][0] == (":status", "502"), blocks
	assert not [f for f in blocks[0] if f[0] in ("upgrade", "connection")], blocks
