"""A small HTTP/2 client speaking raw frames (RFC 9113) over Python's ssl
module with ALPN h2, for the tests that must send what no well-behaved
client sends (floods, resets, windows never opened). Stdlib only.

HPACK (RFC 7541): requests are encoded as literal fields without indexing
and raw (non-Huffman) strings, which every decoder must accept. Responses
are decoded only as far as the tests need: indexed fields of the static
table, literals with raw strings, and the dynamic table they fill; a
Huffman-coded string decodes to None."""

import socket
import ssl
import struct
import time

import util

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
	CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 7, 8, 0xb
S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, S_MAX_HEADER_LIST_SIZE = 3, 4, 6

STATIC = [None, (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
	  (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
	  (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
	  (":status", "404"), (":status", "500")] + [("?", "")] * 47
STATIC[54] = ("server", "")
STATIC[55] = ("set-cookie", "")
STATIC[28] = ("content-length", "")
STATIC[31] = ("content-type", "")
STATIC[24] = ("cache-control", "")
STATIC[56] = ("strict-transport-security", "")


def frame(ftype, flags, sid, payload=b""):
	return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
		struct.pack(">I", sid & 0x7fffffff) + payload


def _int(v, bits, first=0):
	top = (1 << bits) - 1
	if v < top:
		return bytes([first | v])
	out = [first | top]
	v -= top
	while v >= 128:
		out.append((v & 127) | 128)
		v >>= 7
	out.append(v)
	return bytes(out)


def _str(s):
	b = s.encode() if isinstance(s, str) else s
	return _int(len(b), 7) + b


def hpack(pairs):
	"""Literal header fields without indexing, new names, raw strings."""
	return b"".join(b"\x00" + _str(n) + _str(v) for n, v in pairs)


def request_fields(method="GET", path="/", authority="localhost", extra=()):
	return [(":method", method), (":scheme", "https"), (":path", path),
		(":authority", authority)] + list(extra)


def settings(**kv):
	ids = {"max_concurrent_streams": 3, "initial_window_size": 4, "max_frame_size": 5,
	       "max_header_list_size": 6, "enable_push": 2}
	return b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items())


class Decoder:
	def __init__(self):
		self.dyn = []

	def _get(self, i):
		if i < len(STATIC):
			return STATIC[i]
		return self.dyn[i - len(STATIC)]

	@staticmethod
	def _rint(b, i, bits):
		top = (1 << bits) - 1
		v = b[i] & top
		i += 1
		if v < top:
			return v, i
		m = 0
		while True:
			c = b[i]
			i += 1
			v += (c & 127) << m
			m += 7
			if not c & 128:
				return v, i

	def _rstr(self, b, i):
		huff = b[i] & 0x80
		n, i = self._rint(b, i, 7)
		s = b[i:i + n]
		return (None if huff else s.decode(errors="replace")), i + n

	def decode(self, b):
		out, i = [], 0
		while i < len(b):
			c = b[i]
			if c & 0x80:
				idx, i = self._rint(b, i, 7)
				out.append(self._get(idx))
			elif c & 0xe0 == 0x20:
				_, i = self._rint(b, i, 5)  # dynamic table size update
			else:
				bits = 6 if c & 0x40 else 4
				idx, i = self._rint(b, i, bits)
				if idx:
					name = self._get(idx)[0]
				else:
					name, i = self._rstr(b, i)
				value, i = self._rstr(b, i)
				out.append((name, value))
				if c & 0x40:
					self.dyn.insert(0, (name, value))
		return out


class Response:
	def __init__(self):
		self.headers = []
		self.body = bytearray()
		self.ended = False
		self.reset = None  # RST_STREAM error code

	@property
	def status(self):
		"""The last :status (the final one, after any interim)."""
		st = [v for n, v in self.headers if n == ":status"]
		return st[-1] if st else None


class H2Conn:
	"""One TLS connection with ALPN h2: preface and SETTINGS sent at once."""

	def __init__(self, port, local_settings=b"", timeout=None, sni="localhost"):
		ctx = ssl._create_unverified_context()
		ctx.set_alpn_protocols(["h2"])
		raw = socket.create_connection(("127.0.0.1", port), timeout=timeout or util.DEFAULT_TIMEOUT)
		raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames go out as written
		self.sock = ctx.wrap_socket(raw, server_hostname=sni)
		assert self.sock.selected_alpn_protocol() == "h2"
		self.buf = bytearray()
		self.dec = Decoder()
		self.peer = {}
		self.conn_window = 65535
		self.stream_windows = {}
		self.initial_window = 65535
		self.responses = {}
		self.goaway = None  # (last stream id, error code)
		self.closed = False
		self.auto_window = True
		self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, local_settings))

	def send(self, data):
		self.sock.sendall(data)

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass

	def __enter__(self):
		return self

	def __exit__(self, *a):
		self.close()

	def _fill(self, deadline):
		self.sock.settimeout(max(0.01, deadline - time.monotonic()))
		try:
			d = self.sock.recv(65536)
		except (socket.timeout, ssl.SSLWantReadError):
			return False
		except (ConnectionError, ssl.SSLError, OSError):
			d = b""
		if not d:
			self.closed = True
			return False
		self.buf += d
		return True

	def read_frame(self, timeout=None):
		"""The next frame (type, flags, stream id, payload), handled as a
		client must (SETTINGS and PING acknowledged, windows tracked), or
		None at the end of the connection or of the timeout."""
		deadline = time.monotonic() + (timeout or util.DEFAULT_TIMEOUT)
		while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
			if self.closed or time.monotonic() >= deadline or not self._fill(deadline):
				return None
		n = int.from_bytes(self.buf[:3], "big")
		t, fl = self.buf[3], self.buf[4]
		sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
		p = bytes(self.buf[9:9 + n])
		del self.buf[:9 + n]
		self._handle(t, fl, sid, p)
		return t, fl, sid, p

	def _handle(self, t, fl, sid, p):
		r = self.responses.get(sid)
		if t == SETTINGS and not fl & ACK:
			for k in range(0, len(p), 6):
				ident, val = struct.unpack(">HI", p[k:k + 6])
				self.peer[ident] = val
				if ident == S_INITIAL_WINDOW_SIZE:
					delta = val - self.initial_window
					self.initial_window = val
					for s in self.stream_windows:
						self.stream_windows[s] += delta
			self.send_quiet(frame(SETTINGS, ACK, 0))
		elif t == PING and not fl & ACK:
			self.send_quiet(frame(PING, ACK, 0, p))
		elif t == WINDOW_UPDATE:
			inc = struct.unpack(">I", p)[0] & 0x7fffffff
			if sid == 0:
				self.conn_window += inc
			else:
				self.stream_windows[sid] = self.stream_windows.get(sid, self.initial_window) + inc
		elif t == GOAWAY:
			self.goaway = struct.unpack(">II", p[:8])
			self.goaway = (self.goaway[0] & 0x7fffffff, self.goaway[1])
		elif t == HEADERS and r is not None:
			blk = p
			if fl & 0x8:
				blk = blk[1:len(blk) - blk[0]]
			if fl & 0x20:
				blk = blk[5:]
			r.headers += self.dec.decode(blk)
			if fl & END_STREAM:
				r.ended = True
		elif t == DATA:
			if r is not None:
				r.body += p
				if fl & END_STREAM:
					r.ended = True
			if p and self.auto_window:
				upd = struct.pack(">I", len(p))
				self.send_quiet(frame(WINDOW_UPDATE, 0, 0, upd) +
						(frame(WINDOW_UPDATE, 0, sid, upd) if not fl & END_STREAM else b""))
		elif t == RST_STREAM and r is not None:
			r.reset = struct.unpack(">I", p)[0]

	def send_quiet(self, data):
		try:
			self.sock.sendall(data)
		except OSError:
			self.closed = True

	def open(self, sid, fields, end_stream=True):
		self.responses[sid] = Response()
		self.stream_windows.setdefault(sid, self.initial_window)
		self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, hpack(fields)))
		return self.responses[sid]

	def send_data(self, sid, data, end_stream=True, timeout=None):
		"""DATA as the windows allow, reading frames while they are shut."""
		deadline = time.monotonic() + (timeout or util.DEFAULT_TIMEOUT)
		maxf = self.peer.get(5, 16384)
		off = 0
		while off < len(data) or (end_stream and off == len(data)):
			room = min(self.conn_window, self.stream_windows.get(sid, self.initial_window), maxf,
				   len(data) - off)
			if room <= 0 and off < len(data):
				assert time.monotonic() < deadline, "the window stayed shut"
				if self.read_frame(timeout=max(0.01, deadline - time.monotonic())) is None:
					assert not self.closed, "connection closed during the upload"
				r = self.responses.get(sid)
				if r is not None and (r.reset is not None or r.ended):
					return off
				continue
			last = off + room >= len(data)
			self.send(frame(DATA, END_STREAM if (last and end_stream) else 0, sid,
					data[off:off + room]))
			self.conn_window -= room
			self.stream_windows[sid] = self.stream_windows.get(sid, self.initial_window) - room
			off += room
			if last:
				break
		return off

	def wait(self, pred, timeout=None, what="frames"):
		deadline = time.monotonic() + (timeout or util.DEFAULT_TIMEOUT)
		while not pred():
			left = deadline - time.monotonic()
			assert left > 0, "timed out waiting for " + what
			if self.read_frame(timeout=left) is None and self.closed:
				assert pred(), "connection closed while waiting for " + what
				return

	def response(self, sid, timeout=None):
		r = self.responses[sid]
		self.wait(lambda: r.ended or r.reset is not None, timeout, "stream %d" % sid)
		return r

	def wait_closed(self, timeout=None):
		"""Read until the server closes; returns the GOAWAY seen, if any."""
		deadline = time.monotonic() + (timeout or util.DEFAULT_TIMEOUT)
		while not self.closed:
			assert time.monotonic() < deadline, "the connection stayed open"
			self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
		return self.goaway
