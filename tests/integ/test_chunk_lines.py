"""Chunk-size lines (RFC 9112 7.1.1, issue 9 item 4), both directions.

A line the grammar forbids (a bare `;`, an extension name that is not a
token, a size line ended by a bare CR...) never reaches the next hop: from a
client it is a 400 and none of the body reaches the server; from a server the
response is cut (a 502 when nothing was sent yet, else the client connection
is closed before the body ends) and that server connection is not reused.
Every line that does pass is re-encoded as `SIZE CRLF`: no chunk extension is
forwarded at all."""

import threading

import pytest

import util
from util import Conn, build_request, read_response

HEAD = b"POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"

BAD_BODIES = {
	"bare_semicolon": b"5;\r\nhello\r\n0\r\n\r\n",
	"name_not_token": b"5;a@b\r\nhello\r\n0\r\n\r\n",
	"empty_value": b"5;a=\r\nhello\r\n0\r\n\r\n",
	"quoted_bare_cr": b"5;a=\"b\rc\"\r\nhello\r\n0\r\n\r\n",
	"size_bare_cr": b"5;a\rhello\r\n0\r\n\r\n",
	"last_bare_semicolon": b"5\r\nhello\r\n0;\r\n\r\n",
}


class Recorder:
	"""A server that records every byte it receives on each connection
	until the peer closes it, answering 200 to each complete request."""

	def __init__(self, py_backend):
		self.raw = []
		self.partial = b""  # what the current connection got so far
		self.done = threading.Event()

		def handler(conn, backend):
			got = b""
			while True:
				try:
					conn._fill()
				except util.Closed:
					break
				got, conn.buf = got + conn.buf, b""
				self.partial = got
				if got.endswith(b"\r\n\r\n") and got.count(b"\r\n\r\n") >= 2:
					conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			self.raw.append(got)
			self.done.set()

		self.backend = py_backend(handler=handler)


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_chunk_line_from_client_is_400_and_nothing_reaches_the_server(
		name, py_backend, bollard_factory, config_for):
	rec = Recorder(py_backend)
	b = bollard_factory(config_for([rec.backend], retries=0))
	with Conn.connect(b.port) as c:
		c.send(HEAD + BAD_BODIES[name])
		r = read_response(c)
		assert r.status == 400, r
		assert c.is_closed(timeout=5)
	b.wait_log(lambda e: e["status"] == 400 and e.get("term") == "bad-request")
	b.stop()
	# every server connection it opened was closed without a body byte
	assert all(raw == b"" for raw in rec.raw), rec.raw


def test_bad_chunk_line_sent_in_pieces_is_never_relayed(py_backend, bollard_factory, config_for):
	# The head goes ahead (nothing is wrong with it), but not one byte of an
	# open size line: "5" then a bare CR must not reach the server.
	rec = Recorder(py_backend)
	b = bollard_factory(config_for([rec.backend], retries=0))
	with Conn.connect(b.port) as c:
		c.send(HEAD + b"5;a")
		util.wait_until(lambda: b"\r\n\r\n" in rec.partial, what="the head at the server")
		c.send(b"\rhello\r\n0\r\n\r\n")
		assert read_response(c).status == 400
	assert rec.done.wait(10)
	head, _, body = rec.raw[0].partition(b"\r\n\r\n")
	assert head.startswith(b"POST /up HTTP/1.1\r\n") and body == b"", rec.raw


def test_extensions_are_not_forwarded_to_the_server(py_backend, bollard_factory, config_for):
	rec = Recorder(py_backend)
	b = bollard_factory(config_for([rec.backend]))
	body = (b"5 ; a = b ;c=\"q\\\"s\" ;d\r\nhello\r\n0006;x=y\r\n world\r\n"
		b"000;last\r\nX-T: 1\r\n\r\n")
	with Conn.connect(b.port) as c:
		c.send(HEAD + body)
		r = read_response(c)
		assert r.status == 200 and r.body == b"ok", r
	b.stop()
	assert rec.done.wait(10)
	sent = rec.raw[0].partition(b"\r\n\r\n")[2]
	assert sent == b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", sent


class ChunkServer:
	"""Answers each request with a chunked 200 whose body is given as a list
	of pieces: the first in one send with the head, each other after the
	event of the same index is set (None: at once). Counts connections
	(backend.accepted)."""

	def __init__(self, py_backend, pieces, gates=None):
		self.gates = gates or [None] * len(pieces)

		def handler(conn, backend):
			while util.read_request(conn) is not None:
				conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + pieces[0])
				for piece, gate in zip(pieces[1:], self.gates[1:]):
					if gate is not None and not gate.wait(10):
						return
					conn.send(piece)

		self.backend = py_backend(handler=handler)


def test_bad_chunk_line_from_server_is_502_before_anything_is_sent(py_backend, bollard_factory,
								     config_for):
	srv = ChunkServer(py_backend, [b"5;\r\nhello\r\n0\r\n\r\n"])
	b = bollard_factory(config_for([srv.backend], retries=0))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		r = read_response(c)
		assert r.status == 502, r
	b.wait_log(lambda e: e["status"] == 502 and e.get("term") == "bad-response")
	# the next request gets a server connection of its own
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		assert read_response(c).status == 502
	assert srv.backend.accepted == 2


def test_bad_chunk_line_from_server_mid_body_cuts_the_client(py_backend, bollard_factory,
							      config_for):
	gate = threading.Event()
	srv = ChunkServer(py_backend, [b"5\r\nhello\r\n", b"5;@\r\nworld\r\n0\r\n\r\n"],
			  [None, gate])
	b = bollard_factory(config_for([srv.backend], retries=0))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		status = c.read_line()
		assert status.startswith(b"HTTP/1.1 200"), status
		while c.read_line() != b"\r\n":
			pass
		assert c.read_line() == b"5\r\n" and c.read_exact(7) == b"hello\r\n"
		gate.set()
		rest = c.read_until_close()
		assert b"world" not in rest and not rest.endswith(b"0\r\n\r\n"), rest
	b.wait_log(lambda e: e.get("term") == "bad-response")
	gate2 = threading.Event()
	gate2.set()
	srv.gates = [None, gate2]
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		c.read_until_close()
	assert srv.backend.accepted == 2, "the server connection that sent the bad line was reused"


def test_extensions_are_not_forwarded_to_the_client(py_backend, bollard_factory, config_for):
	srv = ChunkServer(py_backend, [b"05;a=b\r\nhello\r\n", b"6 ;x\r\n world\r\n0;z=\"1\"\r\n\r\n"])
	b = bollard_factory(config_for([srv.backend]))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/"))
		while c.read_line() != b"\r\n":
			pass
		want = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		assert c.read_exact(len(want)) == want
		# the response ended where it should: the connection is reusable
		c.send(build_request("GET", "/"))
		r = read_response(c)
		assert r.status == 200 and r.body == b"hello world", r
	assert srv.backend.accepted == 1
