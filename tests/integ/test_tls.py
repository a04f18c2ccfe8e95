"""TLS termination (SPEC §11, issue 12): `bind ADDR tls crt ...`, driven
through the real binary with curl, openssl s_client and Python's ssl module.
Certificates are made by each test with the openssl CLI in tmp_path."""

import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

import util
from util import Conn, build_request, read_response


# ---------------------------------------------------------------- certificates

def _openssl(*args, cwd=None, input=None):
	r = subprocess.run(["openssl"] + list(args), cwd=cwd, input=input,
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
	assert r.returncode == 0, r.stderr.decode(errors="replace")
	return r.stdout


class CA:
	"""A test CA in tmp_path signing leaf certificates (key + chain in one
	PEM file, the form `crt` takes)."""

	def __init__(self, tmp_path):
		self.dir = tmp_path
		self.key = str(tmp_path / "ca.key")
		self.crt = str(tmp_path / "ca.crt")
		_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
			 "-nodes", "-keyout", self.key, "-out", self.crt, "-days", "30",
			 "-subj", "/CN=bollard test CA")
		self.n = 0

	def leaf(self, name, sans, days=30, key="ec"):
		"""Writes NAME.pem (certificate, then key) and returns its path."""
		self.n += 1
		k = str(self.dir / (name + ".key"))
		csr = str(self.dir / (name + ".csr"))
		crt = str(self.dir / (name + ".crt"))
		ext = self.dir / (name + ".ext")
		ext.write_text("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
		if key == "ec":
			_openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
				 "-keyout", k, "-out", csr, "-subj", "/CN=" + sans[0])
		else:
			_openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", k, "-out", csr,
				 "-subj", "/CN=" + sans[0])
		_openssl("x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key,
			 "-set_serial", str(1000 + self.n), "-days", str(days), "-out", crt,
			 "-extfile", str(ext))
		pem = self.dir / (name + ".pem")
		pem.write_text(open(crt).read() + open(k).read())
		return str(pem)


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


def tls_config(apps, crt, extra_bind="", global_extra="", frontend_extra="", backend_extra="",
	       timeouts=None, stats=True):
	crts = " ".join("crt " + c for c in ([crt] if isinstance(crt, str) else crt))
	g = global_extra + ("\n    stats-listen 127.0.0.1:{port_stats}" if stats else "")
	return util_config(apps, "127.0.0.1:{port} tls %s %s" % (crts, extra_bind), g,
			   frontend_extra, backend_extra, timeouts)


def util_config(apps, bind, global_extra, frontend_extra, backend_extra, timeouts):
	from conftest import simple_config
	return simple_config(apps, bind=bind, global_extra=global_extra,
			     frontend_extra=frontend_extra, backend_extra=backend_extra,
			     timeouts=timeouts)


def client_ctx(cafile=None, alpn=None):
	ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
	if alpn:
		ctx.set_alpn_protocols(alpn)
	return ctx


def tls_connect(port, ctx, sni="localhost", session=None):
	s = socket.create_connection(("127.0.0.1", port), timeout=util.DEFAULT_TIMEOUT)
	t = ctx.wrap_socket(s, server_hostname=sni, session=session)
	return Conn(t)


def metrics(port):
	r = util.request(port, "GET", "/metrics")
	assert r.status == 200
	out = {}
	for ln in r.text().splitlines():
		if ln and not ln.startswith("#"):
			k, _, v = ln.rpartition(" ")
			out[k] = float(v)
	return out


def metric(b, name, **labels):
	key = name + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}" if labels else "")
	return metrics(b.ports["port_stats"]).get(key)


def s_client(port, *args, input=b"", timeout=10):
	"""openssl s_client output (stdout + stderr)."""
	r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
			   input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
	return r.stdout.decode(errors="replace")


def subject_of(out):
	m = re.search(r"^subject=(.*)$", out, re.M)
	return m.group(1) if m else None


# ---------------------------------------------------------------- the transport

def test_curl_http11_insecure_and_cacert(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	crt = ca.leaf("localhost", ["localhost"])
	b = bollard_factory(tls_config(apps, crt))
	for extra in (["-k"], ["--cacert", ca.crt]):
		r = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "10"] + extra +
				   ["-o", "-", "-w", "\n%{http_code} %{http_version}",
				    "https://localhost:%d/whoami" % b.port,
				    "--resolve", "localhost:%d:127.0.0.1" % b.port],
				   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
		assert r.returncode == 0, r.stderr
		body, _, tail = r.stdout.decode().rpartition("\n")
		assert tail == "200 1.1", r.stdout
		assert body.strip() == "app1"
	e = b.wait_log(lambda e: e.get("scheme") == "https", n=2)
	assert len(e) == 2


def test_large_bodies_both_ways(demo_apps, bollard_factory, ca):
	# Records of 16 KB, partial writes and WANT_WRITE on a full socket: a
	# body much bigger than the socket buffers goes through intact.
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"])))
	body = util.pattern_bytes(6 << 20)
	with tls_connect(b.port, client_ctx()) as c:
		c.send(build_request("POST", "/echo", [("Host", "t"), ("Content-Length", str(len(body)))]) + body)
		r = read_response(c)
		assert r.status == 200, r
		assert r.json()["body_sha256"] == util.sha256_hex(body)
		c.send(build_request("GET", "/bytes?n=%d" % len(body), [("Host", "t")]))
		r = read_response(c)
		assert r.status == 200, r
		assert r.body == body
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c).text().strip() == "app1"


def test_garbage_instead_of_client_hello_counted_and_closed(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"])))
	with Conn.connect(b.port) as c:
		c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		assert c.is_closed(), "a plaintext request on a TLS bind was answered"
	util.wait_until(lambda: metric(b, "bollard_tls_handshake_errors_total", frontend="fe",
				       reason="protocol") == 1, what="the failure counted")
	assert "TLS handshake from 127.0.0.1 failed: http request (protocol)" in b.stderr_text()
	assert b.stderr_text().count("TLS handshake from") == 1
	# and the bind still serves
	with tls_connect(b.port, client_ctx()) as c:
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c).status == 200
	assert metric(b, "bollard_tls_handshakes_total", frontend="fe", version="1.3", resumed="0") == 1


def test_stalled_handshake_closed_by_http_request_timeout(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       timeouts={"http-request": "1s", "client": "30s",
						 "http-keep-alive": "30s"}))
	# the first bytes of a ClientHello record, then nothing
	with Conn.connect(b.port, timeout=10) as c:
		t0 = time.monotonic()
		c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
		assert c.is_closed(timeout=8), "a stalled handshake was kept"
		took = time.monotonic() - t0
	assert 0.9 <= took < 6, took
	util.wait_until(lambda: metric(b, "bollard_tls_handshake_errors_total", frontend="fe",
				       reason="incomplete") == 1, what="the stalled handshake counted")


def test_alpn_h2_offered_negotiates_http11(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       extra_bind="alpn http/1.1"))
	with tls_connect(b.port, client_ctx(alpn=["h2", "http/1.1"])) as c:
		assert c.sock.selected_alpn_protocol() == "http/1.1"
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c).status == 200
	# a client offering only h2 is refused (RFC 7301 3.2), and counted
	with pytest.raises(ssl.SSLError):
		tls_connect(b.port, client_ctx(alpn=["h2"])).close()
	util.wait_until(lambda: metric(b, "bollard_tls_handshake_errors_total", frontend="fe",
				       reason="alpn") == 1, what="the refused ALPN counted")
