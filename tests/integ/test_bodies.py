"""Bodies of SPEC §4 (RFC 9112 6-7): Content-Length and chunked bodies
streamed both ways and delivered byte-exact, trailers preserved,
`Expect: 100-continue`, and the bodiless responses (HEAD, 204, 304) after
which the connection must stay usable."""

import socket
import time

import util
from util import Conn, build_request, read_response


def test_content_length_upload(proxy):
	b, _ = proxy
	body = bytes(range(256)) * 4096  # 1 MiB, every byte value
	with Conn.connect(b.port, timeout=30) as c:
		c.send(build_request("POST", "/echo", body=body))
		r = read_response(c)
	assert r.status == 200, r
	j = r.json()
	assert j["body_length"] == len(body)
	assert j["body_sha256"] == util.sha256_hex(body)


def test_chunked_upload_5mb(proxy):
	b, _ = proxy
	body = util.pattern_bytes(5 * 1024 * 1024 - 7)
	with Conn.connect(b.port, timeout=60) as c:
		c.send(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
				     body=util.chunked_encode(body, chunk=100000)))
		r = read_response(c)
	assert r.status == 200, r
	j = r.json()
	assert j["body_length"] == len(body)
	assert j["body_sha256"] == util.sha256_hex(body)


def test_chunked_upload_with_trailers_and_extensions(proxy):
	b, _ = proxy
	body = b"hello world" * 100
	raw = (b"%x;name=value\r\n" % 500) + body[:500] + b"\r\n"
	raw += (b"%x\r\n" % (len(body) - 500)) + body[500:] + b"\r\n"
	raw += b"0\r\nX-Checksum: abc\r\n\r\n"
	with Conn.connect(b.port) as c:
		c.send(build_request("PUT", "/echo", headers=[("Transfer-Encoding", "chunked")], body=raw))
		r = read_response(c)
		assert r.status == 200, r
		j = r.json()
		assert j["body_length"] == len(body)
		assert j["body_sha256"] == util.sha256_hex(body)
		# RFC 9110 6.5: the trailer field reaches the server.
		assert ["X-Checksum", "abc"] in [list(t) for t in j.get("trailers", [])], j
		# The trailer section was consumed: the next request parses cleanly.
		assert util.whoami(c) == "app1"


def test_content_length_download(proxy):
	b, _ = proxy
	n = 3 * 1024 * 1024 + 5
	with Conn.connect(b.port, timeout=60) as c:
		c.send(build_request("GET", "/bytes?n=%d" % n))
		r = read_response(c)
		assert r.status == 200, r
		assert len(r.body) == n
		assert r.body == util.pattern_bytes(n)
		assert util.whoami(c) == "app1"


def test_chunked_download_8mb(proxy):
	b, _ = proxy
	n = 8 * 1024 * 1024
	with Conn.connect(b.port, timeout=60) as c:
		c.send(build_request("GET", "/bytes?n=%d&chunked=1" % n))
		r = read_response(c)
		assert r.status == 200, r
		assert len(r.body) == n
		assert r.body == util.pattern_bytes(n)
		assert util.whoami(c) == "app1"


def test_slow_reader_download(proxy):
	# The client reads slowly: bollard must apply back-pressure (stream,
	# not buffer) and still deliver everything in order.
	b, _ = proxy
	n = 4 * 1024 * 1024
	with Conn.connect(b.port, timeout=60) as c:
		c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
		c.send(build_request("GET", "/bytes?n=%d" % n))
		time.sleep(1.0)
		r = read_response(c)
		assert r.body == util.pattern_bytes(n)


def test_response_trailers_preserved(py_backend, bollard_factory, config_for):
	body = b"x" * 3000

	def respond(req, be):
		return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
			+ util.chunked_encode(body, 1000, [("X-Checksum", "c0ffee")]))

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/", headers=[("TE", "trailers")]))
		r = read_response(c)
		assert r.status == 200, r
		assert r.chunked
		assert r.body == body
		assert r.trailers.get("X-Checksum") == "c0ffee", r.trailers
		c.send(build_request("GET", "/"))
		assert read_response(c).body == body


def test_request_trailers_reach_server(py_backend, bollard_factory, config_for):
	def respond(req, be):
		return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port) as c:
		c.send(build_request("POST", "/up", headers=[("Transfer-Encoding", "chunked")],
				     body=util.chunked_encode(b"abc" * 10, 7, [("X-Sum", "42")])))
		r = read_response(c)
		assert r.status == 200 and r.body == b"ok"
	req = pb.requests[-1]
	assert req.body == b"abc" * 10
	assert req.trailers.get("X-Sum") == "42", req.trailers


def test_expect_100_continue(proxy):
	b, _ = proxy
	body = b"z" * 20000
	with Conn.connect(b.port) as c:
		c.send(build_request("POST", "/echo", headers=[
			("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
		# Wait for the interim response before sending the body.
		r1 = read_response(c, skip_1xx=False)
		assert r1.status == 100, r1
		c.send(body)
		r = read_response(c)
		assert r.status == 200, r
		j = r.json()
		assert j["body_length"] == len(body)
		assert j["body_sha256"] == util.sha256_hex(body)
		assert util.whoami(c) == "app1"


def test_head_has_no_body_and_connection_reusable(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("HEAD", "/bytes?n=1000"))
		r = read_response(c, "HEAD")
		assert r.status == 200, r
		assert r.body == b""
		# If bollard sent a body after the HEAD response, it would show up
		# as garbage in front of the next status line.
		assert util.whoami(c) == "app1"
		c.send(build_request("HEAD", "/bytes?n=1000&chunked=1"))
		r = read_response(c, "HEAD")
		assert r.status == 200, r
		assert util.whoami(c) == "app1"


def test_204_and_304_have_no_body(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		for code in (204, 304):
			c.send(build_request("GET", "/status?code=%d" % code))
			r = read_response(c)
			assert r.status == code, r
			assert "transfer-encoding" not in r.headers.names(), r.headers
			assert util.whoami(c) == "app1"


def test_upload_and_download_interleaved_keepalive(proxy):
	b, _ = proxy
	with Conn.connect(b.port, timeout=30) as c:
		for n in (0, 1, 16383, 16384, 16385, 200000):
			body = util.pattern_bytes(n)
			c.send(build_request("POST", "/echo", body=body))
			r = read_response(c)
			assert r.json()["body_length"] == n
			c.send(build_request("GET", "/bytes?n=%d" % n))
			r = read_response(c)
			assert r.body == body


def test_close_delimited_response(py_backend, bollard_factory, config_for):
	# RFC 9112 6.3 (8): a response with neither Content-Length nor chunked
	# ends when the server closes; bollard must still delimit it for the
	# client (chunked, or by closing) and deliver every byte.
	body = util.pattern_bytes(300000)

	def handler(conn, be):
		util.read_request(conn)
		conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
		conn.close()

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb]))
	with Conn.connect(b.port, timeout=30) as c:
		c.send(build_request("GET", "/"))
		r = read_response(c)
		assert r.status == 200, r
		assert r.body == body
		if r.chunked or r.headers.get("Content-Length"):
			# Delimited: the connection may carry another request.
			c.send(build_request("GET", "/"))
			assert read_response(c).body == body


def test_get_with_body(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/echo", body=b"0123456789"))
		r = read_response(c)
		assert r.json()["body_length"] == 10
		assert util.whoami(c) == "app1"


def test_bodiless_responses_with_length_headers(py_backend, bollard_factory, config_for):
	# RFC 9110 15.4.5 / 9.3.2: a 304, or the answer to HEAD, may carry the
	# Content-Length (or Transfer-Encoding) the full response would have had,
	# but no body follows: bollard must not wait for one.
	def respond(req, be):
		if req.target == "/304":
			return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\n"
		if req.method == "HEAD":
			return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	pb = py_backend(respond)
	b = bollard_factory(config_for([pb], timeouts={"server": "3s"}))
	with Conn.connect(b.port, timeout=5) as c:
		c.send(build_request("GET", "/304", headers=[("If-None-Match", '"x"')]))
		r = read_response(c)
		assert r.status == 304, r
		c.send(build_request("HEAD", "/"))
		r = read_response(c, "HEAD")
		assert r.status == 200, r
		c.send(build_request("GET", "/"))
		r = read_response(c)
		assert r.status == 200 and r.body == b"ok", r
	assert pb.accepted == 1, "server connection not reused after bodiless responses"
