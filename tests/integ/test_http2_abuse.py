"""HTTP/2 abuse limits (SPEC §11, issue 12 item 6; doc/tls.md "HTTP/2"):
each test sends the attack with the raw-frame client (h2frames.py) and
asserts bollard's answer on that connection (GOAWAY with the right error,
the connection closed, counted by reason), and that another connection
opened before it is still served."""

import socket
import ssl
import struct
import time

import pytest

import util
import h2frames as h2
from test_tls import CA, metric, tls_config


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


LIMITS = """    tune.h2.reset-budget 20
    tune.h2.control-budget 20
    tune.h2.max-continuations 8
    tune.h2.max-concurrent-streams 4
    tune.h2.max-header-list-size 2k"""


def start_proxy(demo_apps, bollard_factory, ca, keep_alive):
	apps = demo_apps(1)
	return bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
					  extra_bind="alpn h2,http/1.1", global_extra=LIMITS,
					  timeouts={"http-keep-alive": keep_alive, "http-request": "1s"}))


@pytest.fixture
def proxy(demo_apps, bollard_factory, ca):
	return start_proxy(demo_apps, bollard_factory, ca, "1s")


@pytest.fixture
def lasting_proxy(demo_apps, bollard_factory, ca):
	"""The same, but an idle connection lasts far longer than a test: the
	bystander of an attack idles while it runs, which on a slow machine
	can take longer than the 1 s above."""
	return start_proxy(demo_apps, bollard_factory, ca, "60s")


def goaways(b, reason):
	return metric(b, "bollard_http2_goaway_total", frontend="fe", reason=reason)


def served(c, sid, path="/whoami"):
	c.open(sid, h2.request_fields("GET", path))
	r = c.response(sid)
	assert r.status == "200" and r.body.strip() == b"app1", (r.headers, r.body, r.reset)


def ready(c):
	"""The server's SETTINGS are in and acknowledged (its limits apply)."""
	c.wait(lambda: h2.S_MAX_CONCURRENT_STREAMS in c.peer, what="the server's SETTINGS")


def rapid_reset(c):
	out = b""
	for i in range(200):
		sid = 1 + 2 * i
		out += h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, sid,
				h2.hpack(h2.request_fields("GET", "/whoami?rr")))
		out += h2.frame(h2.RST_STREAM, 0, sid, struct.pack(">I", h2.CANCEL))
	return out


def continuation_flood(c):
	out = h2.frame(h2.HEADERS, 0, 1, h2.hpack(h2.request_fields("GET", "/whoami")))
	for i in range(100):
		out += h2.frame(h2.CONTINUATION, 0, 1, h2.hpack([("x-c%d" % i, "v")]))
	return out


def settings_flood(c):
	return b"".join(h2.frame(h2.SETTINGS, 0, 0, h2.settings(enable_push=0)) for _ in range(200))


def ping_flood(c):
	return b"".join(h2.frame(h2.PING, 0, 0, struct.pack(">Q", i)) for i in range(200))


@pytest.mark.parametrize("attack,reason", [
	(rapid_reset, "rapid-reset"),
	(continuation_flood, "continuation-flood"),
	(settings_flood, "settings-flood"),
	(ping_flood, "ping-flood"),
])
def test_flood_gets_goaway_enhance_your_calm(lasting_proxy, attack, reason):
	b = lasting_proxy
	bystander = h2.H2Conn(b.port)
	served(bystander, 1)
	assert goaways(b, reason) == 0
	with h2.H2Conn(b.port) as c:
		ready(c)
		try:
			c.send(attack(c))
		except OSError:
			pass  # closed by bollard while we were still sending
		ga = c.wait_closed()
		assert ga is not None and ga[1] == h2.ENHANCE_YOUR_CALM, ga
	util.wait_until(lambda: goaways(b, reason) == 1, what="the GOAWAY counted as " + reason)
	if attack is rapid_reset:
		# the reset streams were not worked on: few, if any, reached the server
		assert len([e for e in b.access_log() if e.get("target") == "/whoami?rr"]) <= 20
	# the other connection is still served
	served(bystander, 3)
	bystander.close()
	assert b.alive()


def test_within_budgets_nothing_happens(proxy):
	"""The same frames, under the budgets: no GOAWAY."""
	b = proxy
	with h2.H2Conn(b.port) as c:
		ready(c)
		for i in range(10):
			c.send(h2.frame(h2.PING, 0, 0, struct.pack(">Q", i)) +
			       h2.frame(h2.SETTINGS, 0, 0, b""))
			sid = 1 + 2 * i
			c.open(sid, h2.request_fields("GET", "/whoami"))
			c.send(h2.frame(h2.RST_STREAM, 0, sid, struct.pack(">I", h2.CANCEL)))
		served(c, 101)
		assert c.goaway is None
	assert all(goaways(b, r) == 0 for r in ("rapid-reset", "settings-flood", "ping-flood"))


def test_too_many_streams_refused(proxy):
	"""RFC 9113 5.1.2: beyond the advertised limit, a stream is refused
	(REFUSED_STREAM) and the connection goes on, while the client may not
	have seen the limit yet; a client that acknowledged it and still
	exceeds it is broken, and nghttp2 ends its connection (GOAWAY
	PROTOCOL_ERROR)."""
	b = proxy
	with h2.H2Conn(b.port) as c:
		# five streams at once, before reading (so before acknowledging)
		# the server's SETTINGS
		out = b""
		for i in range(4):
			c.responses[1 + 2 * i] = h2.Response()
			out += h2.frame(h2.HEADERS, h2.END_HEADERS, 1 + 2 * i, h2.hpack(h2.request_fields(
				"POST" if i else "GET", "/echo" if i else "/slow?ms=1500",
				extra=[("content-length", "2")])))
		c.responses[9] = fifth = h2.Response()
		out += h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 9,
				h2.hpack(h2.request_fields("GET", "/whoami")))
		c.send(out)
		c.wait(lambda: fifth.reset is not None, what="the fifth stream refused")
		assert fifth.reset == h2.REFUSED_STREAM
		assert c.peer.get(h2.S_MAX_CONCURRENT_STREAMS) == 4
		for i in range(4):
			c.send_data(1 + 2 * i, b"ok")
		# the refused header block is not one left open: stream 1, which
		# lasts longer than timeout http-request (1s), is not cut
		for i in range(4):
			assert c.response(1 + 2 * i).status == "200"
		served(c, 11)  # room again
		assert c.goaway is None
	with h2.H2Conn(b.port) as c:
		ready(c)
		c.wait(lambda: h2.S_MAX_CONCURRENT_STREAMS in c.peer, what="the limit")
		served(c, 1)  # our SETTINGS ACK went before it
		for i in range(5):
			c.open(3 + 2 * i, h2.request_fields("POST", "/echo", extra=[("content-length", "2")]),
			       end_stream=False)
		ga = c.wait_closed()
		assert ga is not None and ga[1] == h2.PROTOCOL_ERROR, ga
	util.wait_until(lambda: goaways(b, "protocol-error") == 1, what="counted")


def test_oversized_header_list_431(proxy):
	b = proxy
	with h2.H2Conn(b.port) as c:
		ready(c)
		assert c.peer.get(h2.S_MAX_HEADER_LIST_SIZE) == 2048
		c.open(1, h2.request_fields("GET", "/whoami", extra=[("x-big", "a" * 3000)]))
		r = c.response(1)
		assert r.status is None or r.status == "431"
		assert b"431" in r.body or r.status == "431", (r.headers, r.body)
		served(c, 3)  # the connection goes on
	e = b.wait_log(lambda e: e["status"] == 431)[0]
	assert e["proto"] == "HTTP/2.0"


def test_idle_connection_closed_with_goaway(proxy):
	b = proxy
	with h2.H2Conn(b.port) as c:
		served(c, 1)
		t0 = time.monotonic()
		ga = c.wait_closed(timeout=10)
		took = time.monotonic() - t0
	assert ga is not None and ga[1] == h2.NO_ERROR and ga[0] == 1, ga
	assert 0.8 <= took < 5, took
	util.wait_until(lambda: goaways(b, "timeout") == 1, what="the idle GOAWAY counted")


def test_header_block_that_never_ends_is_bounded(proxy):
	b = proxy
	with h2.H2Conn(b.port) as c:
		ready(c)
		c.send(h2.frame(h2.HEADERS, 0, 1, h2.hpack(h2.request_fields("GET", "/whoami"))))
		t0 = time.monotonic()
		c.wait_closed(timeout=10)
		assert time.monotonic() - t0 < 5
	assert b.alive()


def test_malformed_request_is_a_stream_error(proxy):
	"""RFC 9113 8.2.2: a connection-specific field makes the request
	malformed; the stream is reset, the connection goes on."""
	b = proxy
	with h2.H2Conn(b.port) as c:
		ready(c)
		r = c.open(1, h2.request_fields("GET", "/whoami", extra=[("connection", "keep-alive")]))
		c.wait(lambda: r.reset is not None or r.ended, what="the answer")
		assert r.reset is not None and r.status is None
		served(c, 3)


def test_stream_that_never_sends_its_body_is_answered_408(demo_apps, bollard_factory, ca):
	"""An idle stream is bounded by the frontend's timeout client, as an
	HTTP/1.1 request body that stops coming; the connection goes on."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       extra_bind="alpn h2,http/1.1", timeouts={"client": "1s"}))
	with h2.H2Conn(b.port) as c:
		r = c.open(1, h2.request_fields("POST", "/echo", extra=[("content-length", "10")]),
			   end_stream=False)
		t0 = time.monotonic()
		c.response(1, timeout=10)
		assert 0.8 <= time.monotonic() - t0 < 5
		assert r.status is None or r.status == "408"
		assert b"408" in r.body, (r.headers, r.body)
		served(c, 3)
	e = b.wait_log(lambda e: e["status"] == 408)[0]
	assert e["term"] == "client-timeout" and e["proto"] == "HTTP/2.0"


def test_connect_is_answered_501(proxy):
	"""RFC 9113 8.5: CONNECT (:method and :authority only) would open a
	tunnel; bollard does not over HTTP/2, and says so with a 501."""
	b = proxy
	with h2.H2Conn(b.port) as c:
		ready(c)
		r = c.open(1, [(":method", "CONNECT"), (":authority", "example.com:443")], end_stream=False)
		c.wait(lambda: r.ended or r.reset is not None, what="the answer")
		assert b"501" in r.body, (r.headers, r.body, r.reset)
		served(c, 3)
	e = b.wait_log(lambda e: e["status"] == 501)[0]
	assert e["proto"] == "HTTP/2.0"


def test_answered_streams_held_by_a_shut_window_are_bounded(demo_apps, bollard_factory, ca):
	"""Responses complete in bollard but held by a client that never opens
	its window: the connection is closed after timeout client, not kept
	with its buffers for ever."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       extra_bind="alpn h2,http/1.1", timeouts={"client": "1s"}))
	with h2.H2Conn(b.port, local_settings=h2.settings(initial_window_size=0)) as c:
		c.auto_window = False
		for i in range(5):
			c.open(1 + 2 * i, h2.request_fields("GET", "/whoami?held"))
		b.wait_log(lambda e: e["target"] == "/whoami?held", n=5)  # all answered by the app
		t0 = time.monotonic()
		ga = c.wait_closed(timeout=10)
		# timeout client (1s), not http-keep-alive (5s): each stream
		# connection ended with its response
		assert time.monotonic() - t0 < 3
		assert ga is not None and ga[1] == h2.NO_ERROR, ga
		assert all(not c.responses[1 + 2 * i].body for i in range(5))
	util.wait_until(lambda: goaways(b, "timeout") == 1, what="counted")


def test_http11_spoken_after_alpn_h2_is_refused(proxy):
	"""A client that negotiated h2 and sends HTTP/1.1 instead (no client
	preface, RFC 9113 3.4): the connection is closed, counted as a
	protocol error, and nothing reaches a server."""
	b = proxy
	ctx = ssl._create_unverified_context()
	ctx.set_alpn_protocols(["h2"])
	raw = socket.create_connection(("127.0.0.1", b.port), timeout=util.DEFAULT_TIMEOUT)
	s = ctx.wrap_socket(raw, server_hostname="localhost")
	assert s.selected_alpn_protocol() == "h2"
	s.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n")
	got = b""
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		try:
			d = s.recv(65536)
		except (OSError, ssl.SSLError):
			break
		if not d:
			break
		got += d
	s.close()
	assert b"HTTP/1.1" not in got  # never answered as HTTP/1.1
	assert time.monotonic() < deadline
	util.wait_until(lambda: goaways(b, "protocol-error") == 1, what="counted")
	assert not [e for e in b.access_log() if e.get("target") == "/whoami"]
