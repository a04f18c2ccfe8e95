"""Connection management of SPEC §4: HTTP/1.1 and 1.0 keep-alive on the
client side, pipelined requests answered in order, and idle server
connections pooled and reused across client connections (counted by the
demo app's own /stats, asked directly)."""

import threading

import util
from util import Conn, build_request, read_response


def test_http11_keepalive_many_requests(proxy):
	b, apps = proxy
	with Conn.connect(b.port) as c:
		for i in range(30):
			c.send(build_request("GET", "/whoami"))
			r = read_response(c)
			assert r.status == 200, (i, r)
			assert r.text().strip() == "app1"


def test_http11_connection_close(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami", headers=[("Connection", "close")]))
		r = read_response(c)
		assert r.status == 200
		assert "close" in (r.headers.get("Connection") or "").lower(), r.headers
		assert c.is_closed(), "connection stays open after Connection: close"


def test_http10_closes_by_default(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami", version="HTTP/1.0", host="test"))
		r = read_response(c)
		assert r.status == 200, r
		assert r.text().strip() == "app1"
		assert c.is_closed(), "HTTP/1.0 connection without keep-alive stays open"


def test_http10_keepalive(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		for i in range(5):
			c.send(build_request("GET", "/whoami", version="HTTP/1.0",
					     headers=[("Host", "test"), ("Connection", "keep-alive")]))
			r = read_response(c)
			assert r.status == 200, (i, r)
			assert r.text().strip() == "app1"
			# RFC 9112 9.3: a 1.0 client only keeps the connection when told so.
			assert "keep-alive" in (r.headers.get("Connection") or "").lower(), r.headers
			# The body must be delimited, or the client could not reuse the connection.
			assert r.headers.get("Content-Length") is not None, r.headers


def test_http10_large_body_keepalive(proxy):
	# A body the server may send chunked must reach a 1.0 client delimited
	# by Content-Length or by closing, never chunked (RFC 9112 7.1).
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/bytes?n=100000&chunked=1", version="HTTP/1.0",
				     headers=[("Host", "test"), ("Connection", "keep-alive")]))
		r = read_response(c)
		assert r.status == 200
		assert not r.chunked, "chunked sent to an HTTP/1.0 client"
		assert r.body == util.pattern_bytes(100000)


def test_pipelined_requests_answered_in_order(proxy):
	b, _ = proxy
	n = 10
	data = b"".join(build_request("GET", "/echo?i=%d" % i, headers=[("X-Seq", str(i))])
			for i in range(n))
	with Conn.connect(b.port) as c:
		c.send(data)  # one write: all ten requests at once
		for i in range(n):
			r = read_response(c)
			assert r.status == 200, (i, r)
			seen = util.echo_headers(r).get("X-Seq")
			assert seen == str(i), "response %d answers request %s" % (i, seen)
			assert r.json()["path"] == "/echo?i=%d" % i
		# And the connection is still usable.
		assert util.whoami(c) == "app1"


def test_pipelined_with_bodies(proxy):
	b, _ = proxy
	bodies = [b"a" * 10, b"b" * 5000, b"", b"c" * 70000]
	data = b""
	for i, body in enumerate(bodies):
		data += build_request("POST", "/echo", headers=[("X-Seq", str(i))], body=body)
	with Conn.connect(b.port) as c:
		c.send(data)
		for i, body in enumerate(bodies):
			r = read_response(c)
			assert r.status == 200, (i, r)
			j = r.json()
			assert util.echo_headers(r).get("X-Seq") == str(i)
			assert j["body_length"] == len(body)
			assert j["body_sha256"] == util.sha256_hex(body)


def test_server_connections_pooled_across_clients(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps))
	act = util.AppActivity(apps)
	clients = 20
	for k in range(clients):
		with Conn.connect(b.port) as c:
			for _ in range(10):
				c.send(build_request("GET", "/whoami"))
				r = read_response(c)
				assert r.status == 200
	accepted = act.connections()[0]
	assert act.requests()[0] == 200
	assert accepted >= 1
	assert accepted <= 5, ("backend accepted %d connections for %d sequential client "
			       "connections: idle server connections are not reused" % (accepted, clients))


def test_server_keepalive_single_client(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps))
	act = util.AppActivity(apps)
	with Conn.connect(b.port) as c:
		for _ in range(50):
			assert util.whoami(c) == "app1"
	accepted = act.connections()[0]
	assert 1 <= accepted <= 2, "backend accepted %d connections for 50 keep-alive requests" % accepted


def test_idle_client_connection_closed_after_keepalive_timeout(demo_apps, bollard_factory,
								 config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"http-keep-alive": "500ms"}))
	with Conn.connect(b.port) as c:
		assert util.whoami(c) == "app1"
		assert c.is_closed(timeout=8), "idle keep-alive connection not closed"


def test_server_connection_close_not_reused(py_backend, bollard_factory, config_for):
	# A server that says `Connection: close` gets a fresh connection for the
	# next request, and the client connection is not closed because of it.
	def respond(req, be):
		return (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", True)

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port) as c:
		for i in range(3):
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 200 and r.body == b"ok", (i, r)
	assert pb.accepted == 3


def test_server_closes_idle_pooled_connection(py_backend, bollard_factory, config_for):
	# The server keeps connections alive for a short while only and closes
	# them silently (its keep-alive timeout is shorter than bollard's): a
	# later request must not fail because the pooled connection died.
	import time

	def respond(req, be):
		return (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True)

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb]))
	for i in range(4):
		r = util.request(b.port, "GET", "/")
		assert r.status == 200 and r.body == b"ok", (i, r)
		time.sleep(0.3)
	# And immediately, with no time for bollard to notice the close.
	with Conn.connect(b.port) as c:
		for i in range(4):
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 200 and r.body == b"ok", (i, r)


def test_concurrent_clients_two_threads(demo_apps, bollard_factory, config_for):
	apps = demo_apps(2, threads=2)
	b = bollard_factory(config_for(apps, threads=2))
	errors = []
	counts = []

	def client(k):
		try:
			n = 0
			with Conn.connect(b.port, timeout=30) as c:
				for i in range(20):
					body = util.pattern_bytes(k * 100 + i)
					c.send(build_request("POST", "/echo", headers=[("X-Seq", "%d-%d" % (k, i))],
							     body=body))
					r = read_response(c)
					j = r.json()
					assert r.status == 200
					assert util.echo_headers(r).get("X-Seq") == "%d-%d" % (k, i)
					assert j["body_sha256"] == util.sha256_hex(body)
					n += 1
			counts.append(n)
		except Exception as e:
			errors.append("client %d: %r" % (k, e))

	threads = [threading.Thread(target=client, args=(k,)) for k in range(30)]
	for t in threads:
		t.start()
	for t in threads:
		t.join(60)
	assert not errors, errors[:5]
	assert sum(counts) == 30 * 20


def test_pipelined_slow_then_fast(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/slow?ms=400") + build_request("GET", "/whoami")
		       + build_request("GET", "/slow?ms=100") + build_request("GET", "/whoami"))
		assert read_response(c).body.startswith(b"slept 400")
		assert read_response(c).text().strip() == "app1"
		assert read_response(c).body.startswith(b"slept 100")
		assert read_response(c).text().strip() == "app1"


def test_pipelined_after_connection_close_not_served(proxy):
	# RFC 9112 9.6: after a request with `Connection: close` the server
	# sends no further responses on that connection.
	b, apps = proxy
	act = util.AppActivity(apps)
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami", headers=[("Connection", "close")])
		       + build_request("GET", "/echo?never"))
		r = read_response(c)
		assert r.status == 200 and r.text().strip() == "app1"
		assert c.is_closed(timeout=5), "a response followed the Connection: close one"
	assert act.requests()[0] == 1, "the request after Connection: close reached the server"
