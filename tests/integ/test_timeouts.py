"""Who stalled (issue 9 item 16). While bollard waits for the client to take
the response, `timeout client` applies, not `timeout server`, and a timeout
names the side that stalled; a server that trickles its response head one
byte at a time is bounded: the whole head must come within `timeout server`
of the request (partial head bytes do not restart it)."""

import socket
import threading
import time

import util
from util import Conn, build_request, read_response

BODY = 48 << 20  # far more than the socket buffers on the way can hold


class BigServer:
	"""Answers every request with BODY bytes (Content-Length), from a small
	send buffer; `finished` is set once the whole body was handed over."""

	def __init__(self, py_backend):
		self.finished = threading.Event()
		chunk = b"x" * (1 << 20)

		def handler(conn, backend):
			conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
			if util.read_request(conn) is None:
				return
			conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BODY)
			for _ in range(BODY // len(chunk)):
				conn.send(chunk)
			self.finished.set()

		self.backend = py_backend(handler=handler)


def small_reader(port):
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
	s.settimeout(30)
	s.connect(("127.0.0.1", port))
	return Conn(s, timeout=30)


def test_stalled_reader_is_timed_by_timeout_client(py_backend, bollard_factory, config_for):
	srv = BigServer(py_backend)
	b = bollard_factory(config_for([srv.backend], timeouts={"server": "1s", "client": "30s"}))
	with small_reader(b.port) as c:
		c.send(build_request("GET", "/big"))
		assert c.read_line().startswith(b"HTTP/1.1 200")
		# the client stops reading for three times `timeout server`
		time.sleep(3)
		assert not srv.finished.is_set(), "the stall did not reach the server"
		r_len = 0
		while c.read_line() != b"\r\n":
			pass
		while r_len < BODY:
			r_len += len(c.read_exact(min(1 << 20, BODY - r_len)))
	e = b.wait_log(lambda e: e["status"] == 200)[0]
	assert e.get("term") == "-" and int(e["bytes"]) > BODY, e


def test_stalled_reader_past_timeout_client_is_blamed(py_backend, bollard_factory, config_for):
	srv = BigServer(py_backend)
	b = bollard_factory(config_for([srv.backend], timeouts={"server": "30s", "client": "1s"}))
	with small_reader(b.port) as c:
		c.send(build_request("GET", "/big"))
		e = b.wait_log(lambda e: e["status"] == 200, timeout=15)[0]
		assert e.get("term") == "client-timeout", e
		assert c.read_until_close(limit=BODY) and c.eof


def test_trickled_response_head_is_bounded(py_backend, bollard_factory, config_for):
	stop = threading.Event()

	def handler(conn, backend):
		if util.read_request(conn) is None:
			return
		conn.send(b"HTTP/1.1 200 OK\r\n")
		# one byte every 0.2 s: each one is activity, none ends the head
		for ch in b"X-Slow: " + b"a" * 200:
			if stop.wait(0.2):
				return
			conn.send(bytes([ch]))

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], timeouts={"server": "1s"}))
	try:
		with Conn.connect(b.port, timeout=15) as c:
			c.send(build_request("GET", "/"))
			r = read_response(c)
			assert r.status == 504, r
		e = b.wait_log(lambda e: e["status"] == 504)[0]
		assert e.get("term") == "server-timeout", e
	finally:
		stop.set()


def test_slow_but_steady_server_head_and_body_still_pass(py_backend, bollard_factory, config_for):
	# The head bound is the whole head within `timeout server`: a head that
	# comes in a few pieces within it passes, and so does a body that takes
	# longer in all, as long as each pause is shorter than `timeout server`.
	def handler(conn, backend):
		if util.read_request(conn) is None:
			return
		for piece in (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 6\r\n", b"\r\n",
			      b"ab", b"cd", b"ef"):
			conn.send(piece)
			time.sleep(0.4)

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], timeouts={"server": "2s"}))
	r = util.request(b.port, "GET", "/", timeout=15)
	assert r.status == 200 and r.body == b"abcdef", r


def test_client_pausing_its_upload_is_not_a_server_timeout(demo_apps, bollard_factory, config_for):
	# The server waits for the body too: a pause of the client shorter than
	# `timeout client` is no one's fault, however short `timeout server` is.
	app = demo_apps(1)[0]
	b = bollard_factory(config_for([app], timeouts={"server": "1s", "client": "30s"}))
	body = b"x" * 2000
	with Conn.connect(b.port, timeout=30) as c:
		c.send(build_request("POST", "/echo", [("Content-Length", str(len(body)))]) + body[:1000])
		time.sleep(3)
		c.send(body[1000:])
		r = read_response(c)
		assert r.status == 200 and r.json()["body_length"] == len(body), r
