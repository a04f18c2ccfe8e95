"""Server-side failures of SPEC §3.2 and §4: a connect failure is retried on
another server (`retries`); a server that fails before any response byte
gives 502; no usable server gives 503; a server slower than `timeout server`
gives 504. bollard's own error responses are short and well-formed, and the
client connection stays usable when the error allows it."""

import util
from util import Conn, build_request, read_response


def test_connect_failure_retried_on_other_server(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	dead = util.free_port()  # nothing listens there
	b = bollard_factory(config_for([("dead", dead), apps[0]], retries=2))
	for i in range(20):
		r = util.request(b.port, "GET", "/whoami")
		assert r.status == 200, (i, r)
		assert r.text().strip() == "app1"


def test_connect_failure_retried_keepalive(demo_apps, bollard_factory, config_for):
	apps = demo_apps(2)
	dead = util.free_port()
	b = bollard_factory(config_for([apps[0], ("dead", dead), apps[1]], retries=2))
	seen = set()
	with Conn.connect(b.port) as c:
		for i in range(30):
			seen.add(util.whoami(c))
	assert seen == {"app1", "app2"}


def test_all_servers_refuse_502(bollard_factory, config_for):
	b = bollard_factory(config_for([("d1", util.free_port()), ("d2", util.free_port())],
				       retries=2))
	r = util.request(b.port, "GET", "/")
	assert r.status in (502, 503), r
	assert r.status == 502, "connect failures on every server: expected 502, got %d" % r.status


def test_server_closes_before_response_502(py_backend, bollard_factory, config_for):
	def handler(conn, be):
		util.read_request(conn)
		conn.close()  # accept, read, and close without a byte

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], retries=1))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		r = read_response(c)
		assert r.status == 502, r
		body_ok = r.body and len(r.body) < 4096
		assert body_ok, r.body


def test_server_resets_mid_response_never_200_truncated(py_backend, bollard_factory, config_for):
	# The server promises 100 bytes and closes after 10: the client must not
	# be able to mistake the result for a complete response.
	def handler(conn, be):
		util.read_request(conn)
		conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		conn.close()

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], retries=0))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		try:
			r = read_response(c)
		except util.Closed:
			return  # closed mid-body: correct
		assert r.status != 200 or len(r.body) != 100, r


def test_no_usable_server_503(demo_apps, bollard_factory, config_for):
	apps = demo_apps(2)
	b = bollard_factory(config_for([(a.name, a.port, "weight 0") for a in apps]))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami"))
		r = read_response(c)
		assert r.status == 503, r
		assert r.body and len(r.body) < 4096
		ctype = (r.headers.get("Content-Type") or "").lower()
		assert ctype.startswith("text/"), r.headers
		# A 503 does not desynchronise anything: the connection may stay open;
		# if it does, it still answers.
		if "close" not in (r.headers.get("Connection") or "").lower():
			c.send(build_request("GET", "/whoami"))
			assert read_response(c).status == 503


def test_server_timeout_504(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"server": "500ms"}, retries=0))
	with Conn.connect(b.port, timeout=15) as c:
		c.send(build_request("GET", "/slow?ms=3000"))
		r = read_response(c)
		assert r.status == 504, r
	# Faster requests still pass.
	r = util.request(b.port, "GET", "/slow?ms=10")
	assert r.status == 200


def test_backend_status_codes_passed_through(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		for code in (200, 201, 302, 400, 404, 500, 502, 503):
			c.send(build_request("GET", "/status?code=%d" % code))
			r = read_response(c)
			assert r.status == code, r


def _send_ignoring_close(c, data):
	try:
		c.send(data)
	except OSError:
		pass  # bollard answered and closed before reading it all: allowed


def test_error_with_unread_request_body_still_delivered(demo_apps, bollard_factory, config_for):
	# bollard answers 503 before reading a large body; the client must still
	# receive the answer (close gracefully, not with a reset that would
	# destroy the response in the client's receive buffer).
	apps = demo_apps(1)
	b = bollard_factory(config_for([(apps[0].name, apps[0].port, "weight 0")]))
	body = b"x" * (2 * 1024 * 1024)
	with Conn.connect(b.port) as c:
		_send_ignoring_close(c, build_request("POST", "/echo", body=body))
		r = read_response(c)
		assert r.status == 503, r


def test_431_with_huge_head_still_delivered(proxy):
	b, _ = proxy
	raw = b"GET /echo HTTP/1.1\r\nHost: test\r\n"
	raw += b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(400))
	raw += b"\r\n"
	with Conn.connect(b.port) as c:
		_send_ignoring_close(c, raw)
		r = read_response(c)
		assert r.status == 431, r


def test_non_idempotent_request_not_retried(py_backend, bollard_factory, config_for):
	# SPEC §3.2: once its bytes were sent, a POST is never retried (the server
	# may have acted on it), even with retries left.
	def handler(conn, be):
		req = util.read_request(conn)
		if req is not None:
			with be.lock:
				be.requests.append(req)
		conn.close()

	closer = py_backend(handler=handler)
	good = py_backend(lambda req, be: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	b = bollard_factory(config_for([("closer", closer.port), ("good", good.port)], retries=2))
	posts = 0
	for i in range(4):
		r = util.request(b.port, "POST", "/order", body=b"item=%d" % i)
		assert r.status in (200, 502), r
		posts += 1
	seen = [q.target for q in closer.requests] + [q.target for q in good.requests]
	assert len(seen) == posts, "a POST was sent twice: %s" % seen

