"""Helpers for bollard's black-box integration tests (stdlib only).

Everything here talks to real processes over loopback sockets, so every
wait is bounded: sockets carry a timeout, loops carry a deadline, and a
helper that gives up raises AssertionError with what it saw, never hangs.

- Ports: free_port(), wait_port(), port_closed().
- Processes: start_process() / stop_process() (by PID, SIGKILL fallback).
- Raw HTTP/1.x: Conn (a buffered socket reader), read_response() and
  read_request() parse heads, Content-Length, chunked (with trailers) and
  close-delimited bodies; request() is a one-shot convenience.
- WebSocket: ws_handshake(), ws_send(), ws_recv() (RFC 6455, just enough
  for an echo test).
- Logs: parse_combined() / parse_json_line() for the access-log formats of
  SPEC §7.
"""

import base64
import errno
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time

DEFAULT_TIMEOUT = 10.0
PATTERN = b"0123456789abcdef"


# ---------------------------------------------------------------- ports

_ports_given = set()


def free_port(host="127.0.0.1", family=socket.AF_INET):
	"""A TCP port nobody listens on right now (the kernel's choice), and one
	this test run was not given before. The kernel may hand the same free
	port to two calls in a row (each socket is closed before the next
	asks), so a test that picks several ports before it starts anything
	(scripts/demo.sh's apps, bollard's binds) could start two servers on
	one port: a fresh-clone run lost the demo test to exactly that."""
	for _ in range(1000):
		s = socket.socket(family, socket.SOCK_STREAM)
		try:
			s.bind((host, 0))
			port = s.getsockname()[1]
		finally:
			s.close()
		if port not in _ports_given:
			_ports_given.add(port)
			return port
	raise AssertionError("no free port left that this run has not used already")


def can_connect(port, host="127.0.0.1", timeout=0.5):
	family = socket.AF_INET6 if ":" in host else socket.AF_INET
	s = socket.socket(family, socket.SOCK_STREAM)
	s.settimeout(timeout)
	try:
		s.connect((host, port))
		return True
	except OSError:
		return False
	finally:
		s.close()


def wait_port(port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, proc=None,
	      what="process"):
	"""Wait until something accepts on host:port. If proc (a Popen) exits
	first, fail at once instead of waiting out the deadline."""
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if proc is not None and proc.poll() is not None:
			raise AssertionError("%s exited with %s before listening on %s:%d"
					     % (what, proc.returncode, host, port))
		if can_connect(port, host):
			return
		time.sleep(0.05)
	raise AssertionError("%s did not listen on %s:%d within %.0fs"
			     % (what, host, port, timeout))


def wait_until(pred, timeout=DEFAULT_TIMEOUT, interval=0.05, what="condition"):
	"""Poll pred() until it returns a true value (returned) or time runs out."""
	deadline = time.monotonic() + timeout
	while True:
		v = pred()
		if v:
			return v
		if time.monotonic() >= deadline:
			raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
		time.sleep(interval)


def recv_datagrams(sock, want, timeout=DEFAULT_TIMEOUT, what="datagrams"):
	"""Datagrams (decoded) from sock until want(list of all so far) is
	true or time runs out; returns the list."""
	got = []
	sock.settimeout(0.2)

	def more():
		try:
			while True:
				got.append(sock.recv(65536).decode("utf-8", "replace"))
		except socket.timeout:
			pass
		return want(got)
	wait_until(more, timeout=timeout, what=what)
	return got


def ipv6_loopback_available():
	"""True when the kernel lets us bind ::1 (a legitimate reason to skip)."""
	if not socket.has_ipv6:
		return False
	try:
		s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
	except OSError:
		return False
	try:
		s.bind(("::1", 0))
		return True
	except OSError:
		return False
	finally:
		s.close()


# ---------------------------------------------------------------- processes

# The prefix of a command that a test stops as a terminal's Ctrl-C does
# (SIGINT): there SIGINT has its default disposition. A test runner started
# as a background job of a non-interactive shell ignores SIGINT, an ignored
# signal stays ignored across fork and exec, and neither bash nor Python can
# catch a signal ignored when it started: the script would never see the
# Ctrl-C. env (coreutils) gives the command the disposition a terminal gives.
CTRL_C_ABLE = ["/usr/bin/env", "--default-signal=INT"]


def start_process(args, stdout_path, stderr_path, env=None, cwd=None):
	"""Start args with stdout/stderr going to files (never pipes: a chatty
	process must not block on a full pipe nobody reads)."""
	out = open(stdout_path, "wb")
	err = open(stderr_path, "wb")
	try:
		return subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
					env=env, cwd=cwd)
	finally:
		out.close()
		err.close()


def stop_process(proc, sig=signal.SIGTERM, timeout=5.0):
	"""Send sig to proc (by PID), wait up to timeout, then SIGKILL.
	Returns the exit code (negative for a signal, as Popen reports it)."""
	if proc.poll() is not None:
		return proc.returncode
	try:
		os.kill(proc.pid, sig)
	except ProcessLookupError:
		pass
	try:
		return proc.wait(timeout=timeout)
	except subprocess.TimeoutExpired:
		try:
			os.kill(proc.pid, signal.SIGKILL)
		except ProcessLookupError:
			pass
		proc.wait(timeout=5)
		return proc.returncode


# ---------------------------------------------------------------- raw HTTP

class Closed(Exception):
	"""The peer closed (or reset) the connection before the expected bytes."""


class Conn:
	"""A client (or server-side) socket with a receive buffer, so that heads,
	bodies and pipelined messages can be read byte-exactly."""

	def __init__(self, sock, timeout=DEFAULT_TIMEOUT):
		self.sock = sock
		self.sock.settimeout(timeout)
		self.buf = b""
		self.eof = False

	@classmethod
	def connect(cls, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
		family = socket.AF_INET6 if ":" in host else socket.AF_INET
		s = socket.socket(family, socket.SOCK_STREAM)
		s.settimeout(timeout)
		s.connect((host, port))
		return cls(s, timeout)

	def settimeout(self, t):
		self.sock.settimeout(t)

	def send(self, data):
		if isinstance(data, str):
			data = data.encode("latin-1")
		self.sock.sendall(data)

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.close()

	def _fill(self):
		"""Read more bytes into buf; raise Closed on EOF/reset."""
		if self.eof:
			raise Closed("connection closed")
		try:
			data = self.sock.recv(65536)
		except ConnectionResetError:
			self.eof = True
			raise Closed("connection reset")
		if not data:
			self.eof = True
			raise Closed("connection closed")
		self.buf += data

	def read_line(self, limit=1 << 20):
		"""One line including its CRLF (or bare LF)."""
		while True:
			i = self.buf.find(b"\n")
			if i >= 0:
				line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
				return line
			if len(self.buf) > limit:
				raise AssertionError("line longer than %d bytes" % limit)
			self._fill()

	def read_exact(self, n):
		while len(self.buf) < n:
			self._fill()
		data, self.buf = self.buf[:n], self.buf[n:]
		return data

	def read_until_close(self, limit=64 << 20):
		try:
			while len(self.buf) <= limit:
				self._fill()
		except Closed:
			pass
		data, self.buf = self.buf, b""
		return data

	def read_some(self, timeout=1.0):
		"""Whatever arrives within timeout (b'' if nothing or EOF)."""
		if self.buf:
			data, self.buf = self.buf, b""
			return data
		old = self.sock.gettimeout()
		self.sock.settimeout(timeout)
		try:
			self._fill()
		except (socket.timeout, Closed):
			pass
		finally:
			self.sock.settimeout(old)
		data, self.buf = self.buf, b""
		return data

	def is_closed(self, timeout=3.0):
		"""True if the peer closes the connection within timeout with no more
		data; False if data arrives or it stays open."""
		if self.buf:
			return False
		old = self.sock.gettimeout()
		self.sock.settimeout(timeout)
		try:
			data = self.sock.recv(65536)
		except (ConnectionResetError, BrokenPipeError):
			return True
		except socket.timeout:
			return False
		finally:
			try:
				self.sock.settimeout(old)
			except OSError:
				pass
		if data:
			self.buf += data
			return False
		self.eof = True
		return True


class Headers(list):
	"""A list of (name, value) pairs in wire order, with case-insensitive
	lookups."""

	def get(self, name, default=None):
		n = name.lower()
		for k, v in self:
			if k.lower() == n:
				return v
		return default

	def get_all(self, name):
		n = name.lower()
		return [v for k, v in self if k.lower() == n]

	def has(self, name):
		return self.get(name) is not None

	def names(self):
		return [k.lower() for k, _ in self]


class Response:
	def __init__(self):
		self.version = ""
		self.status = 0
		self.reason = ""
		self.headers = Headers()
		self.body = b""
		self.trailers = Headers()
		self.chunked = False
		self.raw_head = b""

	def text(self):
		return self.body.decode("utf-8", "replace")

	def json(self):
		return json.loads(self.body)

	def __repr__(self):
		return "<Response %s %d %s, %d body bytes>" % (self.version, self.status, self.reason,
								 len(self.body))


class Request:
	def __init__(self):
		self.method = ""
		self.target = ""
		self.version = ""
		self.headers = Headers()
		self.body = b""
		self.trailers = Headers()
		self.raw_head = b""


def _read_head_lines(conn):
	lines = []
	raw = b""
	while True:
		line = conn.read_line()
		raw += line
		if line in (b"\r\n", b"\n"):
			break
		lines.append(line.rstrip(b"\r\n").decode("latin-1"))
		if len(raw) > (1 << 20):
			raise AssertionError("head longer than 1 MiB")
	return lines, raw


def _parse_fields(lines):
	h = Headers()
	for line in lines:
		name, sep, value = line.partition(":")
		if not sep:
			raise AssertionError("malformed header line %r" % line)
		h.append((name, value.strip(" \t")))
	return h


def read_chunked(conn, max_bytes=1 << 30):
	"""Read a chunked body (RFC 9112 7.1). Returns (body, trailers)."""
	parts = []
	total = 0
	while True:
		line = conn.read_line().rstrip(b"\r\n")
		size = int(line.split(b";", 1)[0].strip(), 16)
		if size == 0:
			break
		parts.append(conn.read_exact(size))
		total += size
		if total > max_bytes:
			raise AssertionError("chunked body over %d bytes" % max_bytes)
		if conn.read_exact(2) != b"\r\n":
			raise AssertionError("chunk data not followed by CRLF")
	lines, _ = _read_head_lines(conn)
	return b"".join(parts), _parse_fields(lines)


def read_response(conn, method="GET", skip_1xx=True):
	"""Read one response. HEAD, 1xx, 204 and 304 have no body (RFC 9112 6.3).
	With skip_1xx, interim 1xx responses (but not 101) are read and dropped."""
	while True:
		r = Response()
		status_line = conn.read_line()
		m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", status_line)
		if not m:
			raise AssertionError("bad status line %r" % status_line)
		r.version = m.group(1).decode()
		r.status = int(m.group(2))
		r.reason = (m.group(3) or b"").decode("latin-1")
		lines, raw = _read_head_lines(conn)
		r.raw_head = status_line + raw
		r.headers = _parse_fields(lines)
		if 100 <= r.status < 200 and r.status != 101:
			if skip_1xx:
				continue
			return r
		break
	if method == "HEAD" or r.status in (101, 204, 304):
		return r
	te = r.headers.get("Transfer-Encoding")
	cl = r.headers.get("Content-Length")
	if te is not None:
		if te.lower().split(",")[-1].strip() != "chunked":
			raise AssertionError("unexpected Transfer-Encoding %r" % te)
		r.chunked = True
		r.body, r.trailers = read_chunked(conn)
	elif cl is not None:
		r.body = conn.read_exact(int(cl))
	else:
		r.body = conn.read_until_close()
	return r


def read_request(conn):
	"""Read one request (server side of a scripted backend). Returns None if
	the peer closed before sending anything."""
	try:
		line = conn.read_line()
	except Closed:
		return None
	q = Request()
	parts = line.rstrip(b"\r\n").decode("latin-1").split(" ")
	if len(parts) != 3:
		raise AssertionError("bad request line %r" % line)
	q.method, q.target, q.version = parts
	lines, raw = _read_head_lines(conn)
	q.raw_head = line + raw
	q.headers = _parse_fields(lines)
	te = q.headers.get("Transfer-Encoding")
	cl = q.headers.get("Content-Length")
	if te is not None:
		q.body, q.trailers = read_chunked(conn)
	elif cl is not None:
		q.body = conn.read_exact(int(cl))
	return q


def build_request(method="GET", path="/", headers=None, body=None, version="HTTP/1.1",
		  host="test"):
	"""Serialise a request. headers: list of (name, value); a Host header is
	added for HTTP/1.1 unless given (pass host=None to omit it); a
	Content-Length is added for a bytes body unless framing is given."""
	headers = list(headers or [])
	names = [k.lower() for k, _ in headers]
	if host is not None and "host" not in names and version == "HTTP/1.1":
		headers.insert(0, ("Host", host))
	if body is not None and "content-length" not in names and "transfer-encoding" not in names:
		headers.append(("Content-Length", str(len(body))))
	out = "%s %s %s\r\n" % (method, path, version)
	for k, v in headers:
		out += "%s: %s\r\n" % (k, v)
	out += "\r\n"
	data = out.encode("latin-1")
	if body is not None:
		data += body if isinstance(body, bytes) else body.encode()
	return data


def request(port, method="GET", path="/", headers=None, body=None, host="127.0.0.1",
	    timeout=DEFAULT_TIMEOUT, version="HTTP/1.1"):
	"""One request on a fresh connection (closed afterwards)."""
	with Conn.connect(port, host, timeout) as c:
		c.send(build_request(method, path, headers, body, version))
		return read_response(c, method)


def chunked_encode(data, chunk=65536, trailers=None):
	out = []
	for i in range(0, len(data), chunk):
		piece = data[i:i + chunk]
		out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
	out.append(b"0\r\n")
	for k, v in (trailers or []):
		out.append(("%s: %s\r\n" % (k, v)).encode("latin-1"))
	out.append(b"\r\n")
	return b"".join(out)


def pattern_bytes(n):
	"""The demo app's /bytes body: "0123456789abcdef" repeated, n bytes."""
	return (PATTERN * (n // len(PATTERN) + 1))[:n]


def sha256_hex(data):
	return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- WebSocket (RFC 6455)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_handshake(conn, path="/ws", host="test", extra_headers=None):
	"""Send the opening handshake; return the 101 response (asserted)."""
	key = base64.b64encode(os.urandom(16)).decode()
	hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
		("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
	hdrs += list(extra_headers or [])
	conn.send(build_request("GET", path, hdrs, host=host))
	r = read_response(conn)
	assert r.status == 101, r
	want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
	assert r.headers.get("Sec-WebSocket-Accept") == want, r.headers
	return r


def ws_send(conn, payload, opcode=1):
	"""One masked frame (clients must mask, RFC 6455 5.3)."""
	if isinstance(payload, str):
		payload = payload.encode()
	mask = os.urandom(4)
	n = len(payload)
	head = bytes([0x80 | opcode])
	if n < 126:
		head += bytes([0x80 | n])
	elif n < 65536:
		head += bytes([0x80 | 126]) + struct.pack("!H", n)
	else:
		head += bytes([0x80 | 127]) + struct.pack("!Q", n)
	masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
	conn.send(head + mask + masked)


def ws_recv(conn):
	"""One frame; returns (opcode, payload)."""
	b0, b1 = conn.read_exact(2)
	n = b1 & 0x7F
	if n == 126:
		n = struct.unpack("!H", conn.read_exact(2))[0]
	elif n == 127:
		n = struct.unpack("!Q", conn.read_exact(8))[0]
	mask = conn.read_exact(4) if b1 & 0x80 else None
	data = conn.read_exact(n)
	if mask:
		data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
	return b0 & 0x0F, data


# ---------------------------------------------------------------- access log (SPEC §7)

COMBINED_RE = re.compile(
	r'^(?P<client>\S+) - - \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
	r'(?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"(?P<rest>.*)$')


def parse_combined(line):
	"""Parse one combined access-log line into a dict (None if it does not
	match). key=value fields after the user agent become entries too."""
	m = COMBINED_RE.match(line)
	if not m:
		return None
	d = m.groupdict()
	rest = d.pop("rest")
	d["status"] = int(d["status"])
	parts = d["request"].split(" ")
	d["method"] = parts[0] if parts else ""
	d["target"] = parts[1] if len(parts) > 1 else ""
	d["proto"] = parts[2] if len(parts) > 2 else ""
	for kv in rest.split():
		k, sep, v = kv.partition("=")
		if sep:
			d[k] = v
	return d


def parse_json_line(line):
	try:
		d = json.loads(line)
	except ValueError:
		return None
	return d if isinstance(d, dict) else None


def errno_refused(e):
	return isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED


def echo_headers(resp):
	"""The request headers the demo app's /echo saw, as Headers."""
	d = resp.json()
	return Headers((k, v) for k, v in d["headers"])


def whoami(conn, host="test"):
	"""GET /whoami on an open connection; returns the server name."""
	conn.send(build_request("GET", "/whoami", host=host))
	r = read_response(conn)
	assert r.status == 200, r
	return r.text().strip()


class AppActivity:
	"""What demo apps received since this object was made, from their own
	/stats counters (which count the /stats requests themselves: those are
	subtracted). apps: objects with .stats()."""

	def __init__(self, apps):
		self.apps = list(apps)
		self.base = [a.stats() for a in self.apps]
		self.asked = [0] * len(self.apps)

	def _new(self, key):
		out = []
		for i, a in enumerate(self.apps):
			self.asked[i] += 1
			out.append(a.stats()[key] - self.base[i][key] - self.asked[i])
		return out

	def requests(self):
		"""New requests per app (a request counts when it arrives)."""
		return self._new("requests")

	def connections(self):
		"""New connections accepted per app."""
		return self._new("connections_accepted")
