"""TLS to servers (SPEC §11, issue 12 item 5): `server NAME ADDR tls [verify
none|required] [ca FILE] [sni NAME] [alpn http/1.1]`, through the real
binary, with servers that speak TLS (Python's ssl module, below) and
certificates made by each test with the openssl CLI in tmp_path: a verified
chain works and its connections are pooled, new connections resume the
server's session, expired / wrong-host / self-signed certificates are
refused (and counted, and logged with why), health checks go over TLS, a
reload changing `ca` takes effect, and a server that never answers the
handshake costs `timeout connect`."""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading

import pytest

import util
from conftest import simple_config
from test_tls import metric
from util import Conn, build_request, read_response


# ---------------------------------------------------------------- certificates

def _openssl(*args, cwd=None):
	r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
			   stderr=subprocess.PIPE, timeout=30)
	assert r.returncode == 0, r.stderr.decode(errors="replace")
	return r.stdout


class CA:
	"""A test CA in its own directory of tmp_path; leaf() writes a server
	certificate and key in one PEM file (what Python's load_cert_chain takes)."""

	def __init__(self, tmp_path, name):
		self.dir = tmp_path / name
		self.dir.mkdir()
		self.key = str(self.dir / "ca.key")
		self.crt = str(self.dir / "ca.crt")
		_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			 "-keyout", self.key, "-out", self.crt, "-days", "30", "-subj", "/CN=" + name)
		(self.dir / "index.txt").write_text("")
		(self.dir / "serial").write_text("1000\n")
		# `openssl ca` is what can set dates in the past (OpenSSL 3.0's x509
		# has no -not_before): an expired certificate whatever the clock says
		(self.dir / "ca.cnf").write_text(
			"[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
			"serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
			"[p]\ncommonName = supplied\n")

	def leaf(self, name, san, expired=False):
		"""san: a DNS name, or "IP:ADDR"."""
		k = str(self.dir / (name + ".key"))
		csr = str(self.dir / (name + ".csr"))
		crt = str(self.dir / (name + ".crt"))
		ext = self.dir / (name + ".ext")
		ext.write_text("subjectAltName=%s\n" % (san if san.startswith("IP:") else "DNS:" + san))
		_openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			 "-keyout", k, "-out", csr, "-subj", "/CN=" + san.replace("IP:", ""))
		dates = (["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] if expired
			 else ["-days", "30"])
		_openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", self.crt,
			 "-keyfile", self.key, "-in", csr, "-out", crt, "-extfile", str(ext), *dates,
			 cwd=str(self.dir))
		pem = self.dir / (name + ".pem")
		pem.write_text(open(crt).read() + open(k).read())
		return str(pem)


def self_signed(tmp_path, san):
	pem = tmp_path / ("self-" + san + ".pem")
	k, c = str(tmp_path / "self.key"), str(tmp_path / "self.crt")
	_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		 "-keyout", k, "-out", c, "-days", "30", "-subj", "/CN=" + san,
		 "-addext", "subjectAltName=DNS:" + san)
	pem.write_text(open(c).read() + open(k).read())
	return str(pem)


# ---------------------------------------------------------------- a TLS server

class TlsBackend:
	"""HTTP/1.1 over TLS on a free loopback port: answers every request with
	its name (keep-alive, or closing after each response with close_each),
	and counts what it saw: handshakes completed, how many resumed a
	session, handshakes that failed, the SNI of each, the request paths."""

	def __init__(self, name, certfile, close_each=False, alpn=None, version=None):
		self.name = name
		self.close_each = close_each
		self.lock = threading.Lock()
		self.handshakes = self.resumed = self.failed = 0
		self.snis, self.paths, self.socks, self.alpns, self.hosts = [], [], [], [], []
		self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
		self.ctx.load_cert_chain(certfile)
		if version:
			self.ctx.maximum_version = version
		self.versions = []
		self.ctx.sni_callback = self._sni
		if alpn:
			self.ctx.set_alpn_protocols(alpn)
		self.lsock = socket.socket()
		self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.lsock.bind(("127.0.0.1", 0))
		self.lsock.listen(64)
		self.port = self.lsock.getsockname()[1]
		self.stopped = False
		threading.Thread(target=self._accept, daemon=True).start()

	def _sni(self, sock, name, ctx):
		with self.lock:
			self.snis.append(name)

	def _accept(self):
		while not self.stopped:
			try:
				s, _ = self.lsock.accept()
			except OSError:
				return
			threading.Thread(target=self._serve, args=(s,), daemon=True).start()

	def _serve(self, raw):
		raw.settimeout(15)
		try:
			t = self.ctx.wrap_socket(raw, server_side=True)
		except (ssl.SSLError, OSError):
			with self.lock:
				self.failed += 1
			raw.close()
			return
		with self.lock:
			self.handshakes += 1
			self.resumed += t.session_reused
			self.alpns.append(t.selected_alpn_protocol())
			self.versions.append(t.version())
			self.socks.append(t)
		conn = Conn(t, timeout=15)
		try:
			while True:
				req = util.read_request(conn)
				if req is None:
					return
				with self.lock:
					self.paths.append(req.target)
					self.hosts.append(req.headers.get("Host"))
				if req.headers.get("Upgrade"):
					self._tunnel(conn)
					return
				body = self.name.encode()
				conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
					  % (len(body), b"Connection: close\r\n" if self.close_each else b"",
					     body))
				if self.close_each:
					return
		except (util.Closed, OSError, ssl.SSLError):
			pass
		finally:
			conn.close()

	def _tunnel(self, conn):
		"""After a 101: every byte back as it came."""
		conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
			  b"Connection: Upgrade\r\n\r\n")
		while True:
			data = conn.sock.recv(65536)
			if not data:
				return
			conn.send(data)

	def count(self, what):
		with self.lock:
			return getattr(self, what)

	def close(self):
		self.stopped = True
		self.lsock.close()
		with self.lock:
			for s in self.socks:
				try:
					s.close()
				except OSError:
					pass


@pytest.fixture
def tls_backend():
	made = []

	def make(name, certfile, close_each=False, alpn=None, version=None):
		b = TlsBackend(name, certfile, close_each, alpn, version)
		made.append(b)
		return b

	yield make
	for b in made:
		b.close()


# ---------------------------------------------------------------- helpers

def config(servers, backend_extra="", timeouts=None, retries=None):
	return simple_config(servers, global_extra="    stats-listen 127.0.0.1:{port_stats}",
			     backend_extra=backend_extra, timeouts=timeouts, retries=retries)


def hs_errors(b, server, reason):
	return metric(b, "bollard_server_tls_handshake_errors_total", backend="be", server=server,
		      reason=reason)


def get(port, path="/", conn=None):
	c = conn or Conn.connect(port)
	try:
		c.send(build_request("GET", path, [("Host", "t")]))
		return read_response(c)
	finally:
		if conn is None:
			c.close()


def stderr_line(b, needle):
	util.wait_until(lambda: needle in b.stderr_text(), what="%r in the log" % needle)
	return [ln for ln in b.stderr_text().splitlines() if needle in ln][0]


# ---------------------------------------------------------------- the transport

def test_verified_chain_sni_and_pooled(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	srv = tls_backend("s1", ca.leaf("app", "app.test"))
	b = bollard_factory(config([("s1", srv.port, "tls verify required ca %s sni app.test" % ca.crt)]))
	# one keep-alive client, then a connection per request: every request
	# rides the one pooled server connection
	with Conn.connect(b.port) as c:
		for _ in range(20):
			r = get(b.port, conn=c)
			assert r.status == 200 and r.body == b"s1", r
	for _ in range(10):
		r = get(b.port)
		assert r.status == 200 and r.body == b"s1", r
	assert srv.count("handshakes") == 1
	assert len(srv.count("paths")) == 30
	assert srv.count("snis") == ["app.test"]
	assert metric(b, "bollard_server_tls_handshakes_total", backend="be", server="s1",
		      resumed="0") == 1
	assert metric(b, "bollard_server_tls_handshakes_total", backend="be", server="s1",
		      resumed="1") == 0


def test_upgrade_tunnel_over_tls(tmp_path, tls_backend, bollard_factory):
	# after a 101 the tunnel's bytes go through the TLS transport both
	# ways, more than a socket buffer holds at once
	ca = CA(tmp_path, "ca")
	srv = tls_backend("s1", ca.leaf("app", "app.test"))
	b = bollard_factory(simple_config([("s1", srv.port, "tls ca %s sni app.test" % ca.crt)],
					  frontend_extra="    allow-upgrade echo"))
	payload = util.pattern_bytes(1 << 20)
	with Conn.connect(b.port, timeout=30) as c:
		c.send(build_request("GET", "/t", [("Host", "t"), ("Upgrade", "echo"),
						   ("Connection", "Upgrade")]))
		r = read_response(c)
		assert r.status == 101, r
		sender = threading.Thread(target=c.send, args=(payload,))
		sender.start()
		got = c.read_exact(len(payload))
		sender.join(timeout=30)
		assert got == payload


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2],
			 ids=["tls1.3", "tls1.2"])
def test_new_connections_resume_the_session(tmp_path, tls_backend, bollard_factory, version):
	# a server closing after every response forces a new connection per
	# request: each after the first resumes the session the last one got
	# (a TLS 1.3 ticket, which comes after the handshake, or a TLS 1.2 one)
	ca = CA(tmp_path, "ca")
	srv = tls_backend("s1", ca.leaf("app", "app.test"), close_each=True, version=version)
	b = bollard_factory(config([("s1", srv.port, "tls ca %s sni app.test" % ca.crt)]))
	n = 6
	for _ in range(n):
		r = get(b.port)
		assert r.status == 200 and r.body == b"s1", r
	util.wait_until(lambda: srv.count("handshakes") == n, what="%d server handshakes" % n)
	assert srv.count("resumed") == n - 1
	assert set(srv.count("versions")) == {"TLSv1.3" if version == ssl.TLSVersion.TLSv1_3
					      else "TLSv1.2"}
	assert metric(b, "bollard_server_tls_handshakes_total", backend="be", server="s1",
		      resumed="1") == n - 1
	assert metric(b, "bollard_server_tls_handshakes_total", backend="be", server="s1",
		      resumed="0") == 1


def test_ip_address_checked_without_sni_and_alpn(tmp_path, tls_backend, bollard_factory):
	# no `sni`: nothing is sent (RFC 6066 3), and the certificate must hold
	# the server's IP address
	ca = CA(tmp_path, "ca")
	srv = tls_backend("s1", ca.leaf("ip", "IP:127.0.0.1"), alpn=["h2", "http/1.1"])
	b = bollard_factory(config([("s1", srv.port, "tls ca %s alpn http/1.1" % ca.crt)]))
	r = get(b.port)
	assert r.status == 200 and r.body == b"s1", r
	assert srv.count("snis") == [None]
	assert srv.count("alpns") == ["http/1.1"]
	srv2 = tls_backend("s2", ca.leaf("ip2", "IP:127.0.0.2"))
	b2 = bollard_factory(config([("s2", srv2.port, "tls ca %s" % ca.crt)], retries=0))
	assert get(b2.port).status == 502
	assert "certificate verify failed: IP address mismatch" in stderr_line(b2, "TLS handshake")


def test_default_is_verify_required_against_the_system_store(tmp_path, tls_backend,
							      bollard_factory):
	# `tls` alone: verified, against the system's CAs, which do not hold
	# the test CA
	ca = CA(tmp_path, "ca")
	srv = tls_backend("s1", ca.leaf("ip", "IP:127.0.0.1"))
	b = bollard_factory(config([("s1", srv.port, "tls")], retries=0))
	assert get(b.port).status == 502
	assert srv.count("paths") == []
	assert hs_errors(b, "s1", "certificate") == 1
	assert "certificate verify failed: unable to get local issuer certificate" in \
		stderr_line(b, "TLS handshake")


def _refused(tmp_path, tls_backend, bollard_factory, certfile, opts, why):
	srv = tls_backend("bad", certfile)
	b = bollard_factory(config([("bad", srv.port, opts)], retries=0))
	r = get(b.port)
	assert r.status == 502, r
	assert srv.count("paths") == []
	assert hs_errors(b, "bad", "certificate") == 1
	line = stderr_line(b, "TLS handshake failed")
	assert re.search(r"server be/bad: TLS handshake failed: certificate verify failed: %s "
			 r"\(certificate\)" % why, line), line
	assert metric(b, "bollard_server_connect_errors_total", backend="be", server="bad") == 1
	return b


def test_expired_certificate_refused(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	_refused(tmp_path, tls_backend, bollard_factory, ca.leaf("old", "app.test", expired=True),
		 "tls verify required ca %s sni app.test" % ca.crt, "certificate has expired")


def test_wrong_host_refused(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	_refused(tmp_path, tls_backend, bollard_factory, ca.leaf("other", "other.test"),
		 "tls ca %s sni app.test" % ca.crt, "hostname mismatch")


def test_self_signed_refused_and_accepted_with_verify_none(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	pem = self_signed(tmp_path, "app.test")
	_refused(tmp_path, tls_backend, bollard_factory, pem, "tls ca %s sni app.test" % ca.crt,
		 "self.signed certificate")
	srv = tls_backend("s2", pem)
	b = bollard_factory(config([("s2", srv.port, "tls verify none sni app.test")]))
	r = get(b.port)
	assert r.status == 200 and r.body == b"s2", r
	assert srv.count("snis") == ["app.test"]


def test_refused_server_retries_another(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	good = tls_backend("good", ca.leaf("good", "app.test"))
	bad = tls_backend("bad", ca.leaf("bad", "app.test", expired=True))
	opts = "tls ca %s sni app.test" % ca.crt
	b = bollard_factory(config([("bad", bad.port, opts), ("good", good.port, opts)], retries=1))
	for _ in range(4):
		r = get(b.port)
		assert r.status == 200 and r.body == b"good", r
	assert hs_errors(b, "bad", "certificate") >= 1


def test_refused_connect_is_no_handshake_error(bollard_factory):
	port = util.free_port()  # nothing listens there
	b = bollard_factory(config([("gone", port, "tls verify none")], retries=0))
	r = get(b.port)
	assert r.status == 502, r
	assert metric(b, "bollard_server_connect_errors_total", backend="be", server="gone") == 1
	for reason in ("protocol", "server-closed", "incomplete", "other"):
		assert hs_errors(b, "gone", reason) == 0, reason
	assert "TLS handshake" not in b.stderr_text()


def test_unanswered_handshake_bounded_by_timeout_connect(tmp_path, bollard_factory):
	# the kernel completes the TCP handshake of a listening socket nobody
	# accepts on: the TLS handshake never gets an answer
	mute = socket.socket()
	mute.bind(("127.0.0.1", 0))
	mute.listen(8)
	try:
		b = bollard_factory(config([("mute", mute.getsockname()[1], "tls verify none")],
					   timeouts={"connect": "300ms"}, retries=0))
		r = get(b.port)
		assert r.status == 504, r
		util.wait_until(lambda: hs_errors(b, "mute", "incomplete") == 1,
				what="the unfinished handshake counted")
		assert "server be/mute: TLS handshake failed: handshake not finished" in b.stderr_text()
	finally:
		mute.close()


# ---------------------------------------------------------------- health checks

def _state(b, server, state):
	return metric(b, "bollard_server_state", backend="be", server=server, state=state)


def test_health_checks_over_tls(tmp_path, tls_backend, bollard_factory):
	ca = CA(tmp_path, "ca")
	good = tls_backend("good", ca.leaf("good", "app.test"))
	bad = tls_backend("bad", ca.leaf("bad", "app.test", expired=True))
	opts = "tls ca %s sni app.test" % ca.crt
	b = bollard_factory(config([("good", good.port, opts), ("bad", bad.port, opts)],
				   backend_extra="    health http GET /healthz interval 100ms rise 1 fall 1"))
	util.wait_until(lambda: _state(b, "bad", "down") == 1, what="the expired server down")
	line = stderr_line(b, "server be/bad is DOWN")
	assert "health check: TLS handshake: certificate verify failed: certificate has expired" in line
	# the good one: its checks are HTTP requests over verified TLS
	util.wait_until(lambda: good.count("paths").count("/healthz") >= 2, what="checks of good")
	# whose Host is the name the server was reached by (its SNI)
	assert set(good.count("hosts")) == {"app.test"}
	assert _state(b, "good", "ready") == 1
	assert bad.count("paths") == []
	for _ in range(4):
		r = get(b.port)
		assert r.status == 200 and r.body == b"good", r


# ---------------------------------------------------------------- reload

def _reloads(b):
	return metric(b, "bollard_reloads_total")


def test_reload_changing_ca_takes_effect_and_bad_ca_keeps_old(tmp_path, tls_backend,
							       bollard_factory):
	ca_a, ca_b = CA(tmp_path, "ca-a"), CA(tmp_path, "ca-b")
	srv = tls_backend("s1", ca_b.leaf("app", "app.test"))
	ca = tmp_path / "servers-ca.pem"
	ca.write_text(open(ca_a.crt).read())
	b = bollard_factory(config([("s1", srv.port, "tls ca %s sni app.test" % ca)], retries=0))
	assert get(b.port).status == 502  # not under CA a
	ca.write_text(open(ca_b.crt).read())
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: _reloads(b) == 1, what="the reload")
	r = get(b.port)
	assert r.status == 200 and r.body == b"s1", r
	# a CA file that holds no certificate: the reload is refused with
	# FILE:LINE, and the running configuration goes on serving
	ca.write_text("not a certificate\n")
	os.kill(b.pid, signal.SIGHUP)
	line = stderr_line(b, "no CA certificate in the file")
	assert re.search(r"bollard\.conf:\d+: server 's1': .*servers-ca\.pem", line), line
	assert "still running the previous configuration" in b.stderr_text()
	assert _reloads(b) == 1
	r = get(b.port)
	assert r.status == 200 and r.body == b"s1", r


# ---------------------------------------------------------------- configuration

def test_server_tls_option_errors(bollard_run, tmp_path):
	ca = CA(tmp_path, "ca")
	cases = [("verify required", "'verify' needs 'tls' before it"),
		 ("tls verify optional", "unknown verify mode 'optional'"),
		 ("tls ca %s/nope.pem" % tmp_path, "nope.pem: No such file"),
		 ("tls verify none ca %s" % ca.crt, "the CAs would not be used"),
		 ("tls sni 10.0.0.1", "sni '10.0.0.1'"),
		 ("tls alpn h2", "alpn 'h2': http/1.1 or http/1.0"),
		 ("tls ca", "needs a value"),
		 ("ssl verify required", "HAProxy's 'server ... ssl' is 'tls' in bollard")]
	for opts, want in cases:
		r = bollard_run("check", "-c", "{conf}", config="listen web\n    bind 127.0.0.1:1\n"
				"    server a 127.0.0.1:9 %s\n" % opts)
		out = r.stdout + r.stderr
		assert r.returncode != 0, opts
		assert "check.conf:3: " in out, (opts, out)
		assert want in out, (opts, out)
	r = bollard_run("check", "-c", "{conf}", config="listen web\n    bind 127.0.0.1:1\n"
			"    server a 127.0.0.1:9 tls ca %s sni app.test alpn http/1.1 weight 5\n" % ca.crt)
	assert r.returncode == 0, r.stdout + r.stderr
