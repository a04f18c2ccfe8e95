"""Helpers to run and talk to bollard-demo-app from tests (stdlib only).

Reusable by any integration test:

free_port()                      util.free_port: a free loopback TCP port, never one
                                 given twice in a run
wait_port(port, proc=None)       wait (bounded) until 127.0.0.1:port accepts
start_demo_app(name, ...)        start the demo app on a free port -> DemoProc
DemoProc.stop()                  stop it by PID (SIGTERM, then SIGKILL)
http_request(port, method, path, headers=(), body=None) -> Response
                                 one request on a fresh connection (closes it)
Conn(port)                       a raw client connection: .send(bytes),
                                 .read_response(head=False) -> Response
                                 (Content-Length, chunked with trailers, or
                                 close-delimited framing; 1xx skipped)
chunked(body, sizes, trailers)   encode a chunked request body
ws_connect(port, path="/ws")     hand-written RFC 6455 client -> WebSocket
                                 with .send(payload, opcode, fin), .recv()
                                 -> (fin, opcode, payload), .close()
pattern(n)                       the body of /bytes?n=N
"""

import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from util import free_port  # one picker for every test: see its docstring

ROOT = Path(__file__).resolve().parents[2]
DEMO_BIN = os.environ.get("BOLLARD_DEMO_BIN", str(ROOT / "build" / "bollard-demo-app"))
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN = b"0123456789abcdef"
TIMEOUT = 10.0


def pattern(n):
	"""The demo app's /bytes?n=N body: "0123456789abcdef" repeated, cut at n."""
	return (PATTERN * (n // 16 + 1))[:n]


def wait_port(port, host="127.0.0.1", proc=None, timeout=TIMEOUT):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if proc is not None and proc.poll() is not None:
			raise AssertionError("process exited with %s before listening" % proc.returncode)
		try:
			with socket.create_connection((host, port), timeout=1):
				return
		except OSError:
			time.sleep(0.05)
	raise AssertionError("nothing listens on %s:%d after %.0fs" % (host, port, timeout))


class DemoProc:
	def __init__(self, name, port, proc):
		self.name = name
		self.port = port
		self.proc = proc
		self.pid = proc.pid

	def stop(self, timeout=5.0):
		"""Stop the process this helper started, by its PID."""
		if self.proc.poll() is not None:
			return self.proc.returncode
		os.kill(self.pid, signal.SIGTERM)
		try:
			return self.proc.wait(timeout)
		except subprocess.TimeoutExpired:
			os.kill(self.pid, signal.SIGKILL)
			return self.proc.wait(timeout)

	def alive(self):
		return self.proc.poll() is None

	def stats(self):
		return http_request(self.port, "GET", "/stats").json()


def start_demo_app(name="app1", port=None, threads=None, cookie=None, binary=DEMO_BIN,
		   stdout=None, stderr=None):
	"""Start bollard-demo-app on port (default: a free one) and wait until it
	listens. Retries with another port if the chosen one was taken."""
	for _attempt in range(3):
		p = port or free_port()
		args = [binary, "--name", name, "--port", str(p)]
		if threads:
			args += ["--threads", str(threads)]
		if cookie:
			args += ["--session-cookie", cookie]
		proc = subprocess.Popen(args, stdout=stdout or subprocess.DEVNULL,
					stderr=stderr or subprocess.DEVNULL)
		try:
			wait_port(p, proc=proc)
			return DemoProc(name, p, proc)
		except AssertionError:
			if proc.poll() is None:
				os.kill(proc.pid, signal.SIGKILL)
				proc.wait(5)
			if port:
				raise
	raise AssertionError("demo app %s did not start" % name)


class Closed(Exception):
	"""The peer closed the connection before the expected bytes arrived."""


class Response:
	def __init__(self, version, status, reason, headers, body, trailers):
		self.version = version
		self.status = status
		self.reason = reason
		self.headers = headers          # [(name, value)] in received order
		self.body = body
		self.trailers = trailers

	def header(self, name, default=None):
		for k, v in self.headers:
			if k.lower() == name.lower():
				return v
		return default

	def header_all(self, name):
		return [v for k, v in self.headers if k.lower() == name.lower()]

	def text(self):
		return self.body.decode("utf-8", "replace")

	def json(self):
		return json.loads(self.body)

	def __repr__(self):
		return "<Response %d %s %r>" % (self.status, self.reason, self.body[:200])


class Conn:
	"""A raw HTTP/1.1 client connection with its own read buffer."""

	def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT):
		self.sock = socket.create_connection((host, port), timeout=timeout)
		self.buf = b""

	def __enter__(self):
		return self

	def __exit__(self, *a):
		self.close()

	def close(self):
		self.sock.close()

	def send(self, data):
		self.sock.sendall(data)

	def _more(self):
		d = self.sock.recv(65536)
		if not d:
			raise Closed("connection closed; %d bytes unread" % len(self.buf))
		self.buf += d

	def read_exact(self, n):
		while len(self.buf) < n:
			self._more()
		out, self.buf = self.buf[:n], self.buf[n:]
		return out

	def read_line(self, limit=65536):
		while b"\r\n" not in self.buf:
			if len(self.buf) > limit:
				raise AssertionError("line too long")
			self._more()
		line, _, self.buf = self.buf.partition(b"\r\n")
		return line

	def read_until_close(self):
		try:
			while True:
				self._more()
		except Closed:
			pass
		out, self.buf = self.buf, b""
		return out

	def at_eof(self, timeout=2.0):
		"""True when the peer closes (EOF or reset) with no further bytes."""
		if self.buf:
			return False
		self.sock.settimeout(timeout)
		try:
			return self.sock.recv(1) == b""
		except ConnectionResetError:
			return True
		except socket.timeout:
			return False
		finally:
			self.sock.settimeout(TIMEOUT)

	def _fields(self):
		fields = []
		while True:
			line = self.read_line()
			if not line:
				return fields
			k, sep, v = line.decode("latin-1").partition(":")
			assert sep, "bad field line %r" % line
			fields.append((k, v.strip()))

	def read_response(self, head=False):
		"""One response (1xx interim answers skipped). head=True: the
		request was HEAD, no body follows."""
		while True:
			line = self.read_line().decode("latin-1")
			version, status, reason = (line.split(" ", 2) + [""])[:3]
			status = int(status)
			headers = self._fields()
			if 100 <= status < 200 and status != 101:
				continue
			break
		r = Response(version, status, reason, headers, b"", [])
		te = r.header("Transfer-Encoding")
		cl = r.header("Content-Length")
		if head or status in (101, 204, 304):
			return r
		if te is not None:
			assert te.lower() == "chunked", te
			body = []
			while True:
				size = int(self.read_line().split(b";")[0], 16)
				if size == 0:
					break
				body.append(self.read_exact(size))
				assert self.read_exact(2) == b"\r\n"
			r.body = b"".join(body)
			r.trailers = self._fields()
		elif cl is not None:
			r.body = self.read_exact(int(cl))
		else:
			r.body = self.read_until_close()
		return r


def build_request(method, path, headers=(), body=None, host="test", version="HTTP/1.1"):
	"""Raw request bytes; Content-Length added for a body unless the headers
	already frame it."""
	lines = ["%s %s %s" % (method, path, version)]
	if host is not None:
		lines.append("Host: %s" % host)
	names = set()
	for k, v in headers:
		lines.append("%s: %s" % (k, v))
		names.add(k.lower())
	if body is not None and "content-length" not in names and "transfer-encoding" not in names:
		lines.append("Content-Length: %d" % len(body))
	data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
	if body is not None:
		data += body
	return data


def http_request(port, method, path, headers=(), body=None, host="test"):
	"""One request on a fresh connection, which is then closed."""
	with Conn(port) as c:
		c.send(build_request(method, path, headers, body, host))
		return c.read_response(head=(method == "HEAD"))


def chunked(body, sizes=(1000,), trailers=()):
	"""body encoded as chunks whose sizes cycle through sizes, then the last
	chunk and the trailer fields."""
	out, i, k = [], 0, 0
	while i < len(body):
		n = max(1, sizes[k % len(sizes)])
		piece = body[i:i + n]
		out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
		i += n
		k += 1
	out.append(b"0\r\n")
	for name, value in trailers:
		out.append(("%s: %s\r\n" % (name, value)).encode("latin-1"))
	out.append(b"\r\n")
	return b"".join(out)


class WebSocket:
	"""A hand-written RFC 6455 client over a Conn."""

	def __init__(self, conn, response):
		self.conn = conn
		self.response = response

	def send(self, payload, opcode=1, fin=True, mask=True):
		if isinstance(payload, str):
			payload = payload.encode()
		n = len(payload)
		head = bytes([(0x80 if fin else 0) | opcode])
		mbit = 0x80 if mask else 0
		if n < 126:
			head += bytes([mbit | n])
		elif n < 65536:
			head += bytes([mbit | 126]) + struct.pack("!H", n)
		else:
			head += bytes([mbit | 127]) + struct.pack("!Q", n)
		if mask:
			key = os.urandom(4)
			rep = (key * (n // 4 + 1))[:n]
			payload = (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big") if n else b""
			head += key
		self.conn.send(head + payload)

	def recv(self):
		"""One frame: (fin, opcode, payload); server frames are unmasked."""
		b0, b1 = self.conn.read_exact(2)
		n = b1 & 0x7F
		if n == 126:
			n = struct.unpack("!H", self.conn.read_exact(2))[0]
		elif n == 127:
			n = struct.unpack("!Q", self.conn.read_exact(8))[0]
		assert not b1 & 0x80, "server frames must not be masked"
		return bool(b0 & 0x80), b0 & 0x0F, self.conn.read_exact(n)

	def close(self, code=1000):
		self.send(struct.pack("!H", code), opcode=8)

	def close_socket(self):
		self.conn.close()


def ws_accept(key):
	return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def ws_connect(port, path="/ws", host="test"):
	"""Open a WebSocket; asserts the 101 and Sec-WebSocket-Accept."""
	conn = Conn(port)
	key = base64.b64encode(os.urandom(16)).decode()
	conn.send(build_request("GET", path, [("Upgrade", "websocket"), ("Connection", "Upgrade"),
					      ("Sec-WebSocket-Key", key),
					      ("Sec-WebSocket-Version", "13")], host=host))
	r = conn.read_response()
	assert r.status == 101, r
	assert r.header("Sec-WebSocket-Accept") == ws_accept(key), r.headers
	return WebSocket(conn, r)
