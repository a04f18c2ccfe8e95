"""TLS termination (SPEC §11, issue 12): `bind ADDR tls crt ...`, driven
through the real binary with curl, openssl s_client and Python's ssl module.
Certificates are made by each test with the openssl CLI in tmp_path."""

import calendar
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


def metric(b, fam, **labels):
	key = fam + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}" if labels else "")
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


# ---------------------------------------------------------------- certificates by SNI

def test_sni_exact_wildcard_default(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	default = ca.leaf("default", ["default.test"])
	wild = ca.leaf("wild", ["*.example.test"])
	exact = ca.leaf("exact", ["www.example.test"], key="rsa")
	b = bollard_factory(tls_config(apps, [default, wild, exact]))
	cases = [("www.example.test", "www.example.test"), ("shop.example.test", "*.example.test"),
		 ("other.test", "default.test"), (None, "default.test")]
	for sni, want in cases:
		args = ["-servername", sni] if sni else ["-noservername"]
		out = s_client(b.port, *args)
		assert "CN = %s" % want in (subject_of(out) or ""), (sni, out[-2000:])


# ---------------------------------------------------------------- HTTPS conventions

def test_keepalive_cookie_persistence_secure_and_forwarded(demo_apps, bollard_factory, ca):
	apps = demo_apps(2)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       backend_extra="    persist cookie SRV insert",
				       frontend_extra="    forwarded x-forwarded-for x-forwarded-proto forwarded"))
	with tls_connect(b.port, client_ctx(cafile=ca.crt)) as c:
		c.send(build_request("GET", "/echo", [("Host", "t")]))
		r = read_response(c)
		assert r.status == 200, r
		sc = r.headers.get("Set-Cookie")
		assert sc and sc.startswith("SRV="), r.headers
		assert "; Secure" in sc, sc  # RFC 6265 4.1.2.5: only over a secure channel
		first = r.json()["server"]
		hdrs = {k.lower(): v for k, v in r.json()["headers"]} if isinstance(r.json()["headers"], list) \
			else {k.lower(): v for k, v in r.json()["headers"].items()}
		assert hdrs.get("x-forwarded-proto") == "https", hdrs
		assert "proto=https" in hdrs.get("forwarded", ""), hdrs
		cookie = sc.split(";")[0]
		for i in range(10):
			c.send(build_request("GET", "/echo", [("Host", "t"), ("Cookie", cookie)]))
			r = read_response(c)
			assert r.status == 200, (i, r)
			assert r.json()["server"] == first, i
	entries = b.wait_log(lambda e: e.get("tls") == "1.3", n=11)
	for e in entries:
		assert e["scheme"] == "https" and e["sni"] == "localhost" and e["resumed"] == "0", e
		assert e["alpn"] == "-", e
	assert sum(1 for e in entries if e.get("persist") == "hit") == 10, entries


def test_access_log_json_tls_fields(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]), extra_bind="alpn http/1.1",
				       global_extra="    log-format json"))
	with tls_connect(b.port, client_ctx(alpn=["http/1.1"])) as c:
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c).status == 200
	e = b.wait_log(lambda e: "tls" in e)[0]
	assert (e["tls"], e["alpn"], e["sni"], e["resumed"], e["scheme"]) == \
		("1.3", "http/1.1", "localhost", False, "https"), e


def test_plain_bind_has_no_tls_fields(proxy):
	b, _ = proxy
	assert util.request(b.port, "GET", "/whoami").status == 200
	e = b.wait_log()[0]
	assert e["scheme"] == "http" and "tls" not in e, e


# ---------------------------------------------------------------- resumption

def _secret(tmp_path, name="shared.key"):
	p = tmp_path / name
	p.write_text(os.urandom(32).hex() + "\n")
	os.chmod(p, 0o600)
	return str(p)


REQ = b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def test_resumption_same_process_and_second_process(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	crt = ca.leaf("localhost", ["localhost"])
	key = _secret(tmp_path)
	conf = tls_config(apps, crt, global_extra="    secret-file %s" % key)
	b1 = bollard_factory(conf)
	b2 = bollard_factory(conf)  # other ports, same certificate and secret-file
	sess = str(tmp_path / "sess.pem")
	out = s_client(b1.port, "-servername", "localhost", "-sess_out", sess, "-ign_eof", input=REQ)
	assert "New, TLSv1.3" in out and "app1" in out, out[-2000:]
	for b in (b1, b2):
		out = s_client(b.port, "-servername", "localhost", "-sess_in", sess, "-ign_eof", input=REQ)
		assert "Reused, TLSv1.3" in out, out[-2000:]
		assert "app1" in out
		util.wait_until(lambda: metric(b, "bollard_tls_handshakes_total", frontend="fe",
					       version="1.3", resumed="1") == 1, what="the resumption counted")
	e = b2.wait_log(lambda e: e.get("tls"))[0]
	assert e["resumed"] == "1", e
	# TLS 1.2 tickets (RFC 5077) too
	out = s_client(b1.port, "-tls1_2", "-servername", "localhost", "-sess_out", sess, "-ign_eof",
		       input=REQ)
	assert "New, TLSv1.2" in out, out[-2000:]
	out = s_client(b2.port, "-tls1_2", "-servername", "localhost", "-sess_in", sess, "-ign_eof",
		       input=REQ)
	assert "Reused, TLSv1.2" in out, out[-2000:]


def test_no_resumption_across_different_secrets(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	crt = ca.leaf("localhost", ["localhost"])
	b1 = bollard_factory(tls_config(apps, crt, global_extra="    secret-file %s" % _secret(tmp_path, "a.key")))
	b2 = bollard_factory(tls_config(apps, crt, global_extra="    secret-file %s" % _secret(tmp_path, "b.key")))
	sess = str(tmp_path / "sess.pem")
	s_client(b1.port, "-servername", "localhost", "-sess_out", sess, "-ign_eof", input=REQ)
	out = s_client(b2.port, "-servername", "localhost", "-sess_in", sess, "-ign_eof", input=REQ)
	assert "New, TLSv1.3" in out and "Reused" not in out, out[-2000:]


def test_tls_tickets_off(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]),
				       global_extra="    tls-tickets off"))
	sess = str(tmp_path / "sess.pem")
	s_client(b.port, "-servername", "localhost", "-sess_out", sess, "-ign_eof", input=REQ)
	out = s_client(b.port, "-servername", "localhost", "-sess_in", sess, "-ign_eof", input=REQ)
	assert "Reused" not in out, out[-2000:]


# ---------------------------------------------------------------- reload and check

def _reloads(b):
	return metric(b, "bollard_reloads_total")


def test_reload_new_certificate_keeps_open_connection(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	crt = tmp_path / "site.pem"
	old = ca.leaf("old", ["localhost"])
	crt.write_text(open(old).read())
	b = bollard_factory(tls_config(apps, str(crt)))
	c = tls_connect(b.port, client_ctx())
	c.send(build_request("GET", "/whoami", [("Host", "t")]))
	assert read_response(c).status == 200
	old_serial = c.sock.getpeercert(binary_form=True)
	new = ca.leaf("new", ["localhost"])
	crt.write_text(open(new).read())
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: _reloads(b) == 1, what="the reload")
	# the open connection goes on with its own session
	for _ in range(3):
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c).status == 200
	c.close()
	with tls_connect(b.port, client_ctx()) as c2:
		assert c2.sock.getpeercert(binary_form=True) != old_serial
		c2.send(build_request("GET", "/whoami", [("Host", "t")]))
		assert read_response(c2).status == 200
	out = s_client(b.port, "-servername", "localhost", "-showcerts")
	assert "CN = localhost" in (subject_of(out) or ""), out
	assert _serial(out) == _serial_of_file(new)


def _serial(s_client_out):
	pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", s_client_out, re.S)
	return _openssl("x509", "-noout", "-serial", input=pem.group(0).encode()).decode().strip()


def _serial_of_file(path):
	return _openssl("x509", "-noout", "-serial", "-in", path).decode().strip()


def test_reload_with_mismatched_key_refused_old_served(demo_apps, bollard_factory, ca, tmp_path):
	apps = demo_apps(1)
	good = ca.leaf("good", ["localhost"])
	other = ca.leaf("other", ["localhost"])
	crt = tmp_path / "site.pem"
	crt.write_text(open(good).read())
	b = bollard_factory(tls_config(apps, str(crt)))
	# the certificate of `good` with the key of `other`
	bad = open(tmp_path / "good.crt").read() + open(tmp_path / "other.key").read()
	crt.write_text(bad)
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: "does not match the certificate" in b.stderr_text(),
			what="the refused reload")
	err = b.stderr_text()
	line = [ln for ln in err.splitlines() if "does not match" in ln][0]
	assert re.search(r"bollard\.conf:\d+: .*site\.pem", line), line
	assert "still running the previous configuration" in err, err
	assert _reloads(b) == 0
	out = s_client(b.port, "-servername", "localhost", "-ign_eof", input=REQ)
	assert _serial(out) == _serial_of_file(good)
	assert "app1" in out


def test_check_warns_about_expiring_certificate(bollard_run, ca, tmp_path):
	soon = ca.leaf("soon", ["soon.test"], days=10)
	later = ca.leaf("later", ["later.test"], days=90)
	conf = ("listen web\n    bind 127.0.0.1:1 tls crt %s crt %s\n    server a 127.0.0.1:9\n"
		% (soon, later))
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 0, r.stderr
	warn = [ln for ln in r.stderr.splitlines() if "warning: certificate" in ln]
	assert len(warn) == 1, r.stderr
	assert re.search(r"check\.conf:2: warning: certificate .*soon\.pem \(soon\.test\) expires in "
			 r"(9|10) days", warn[0]), warn


def test_check_refuses_bad_certificate(bollard_run, tmp_path):
	p = tmp_path / "junk.pem"
	p.write_text("not a certificate\n")
	r = bollard_run("check", "-c", "{conf}", config="listen web\n    bind 127.0.0.1:1 tls crt %s\n"
			"    server a 127.0.0.1:9\n" % p)
	assert r.returncode != 0
	assert re.search(r"check\.conf:2: .*junk\.pem", r.stdout + r.stderr), r.stdout + r.stderr


def test_expiry_metric(demo_apps, bollard_factory, ca):
	apps = demo_apps(1)
	crt = ca.leaf("localhost", ["localhost"], days=20)
	b = bollard_factory(tls_config(apps, crt))
	want = _openssl("x509", "-noout", "-enddate", "-in", crt).decode().strip().split("=", 1)[1]
	t = calendar.timegm(time.strptime(want.replace(" GMT", ""), "%b %d %H:%M:%S %Y"))
	got = metric(b, "bollard_tls_cert_expiry_seconds", frontend="fe", name="localhost")
	assert got == t, (got, t, want)


def test_tls_option_errors(bollard_run, ca):
	crt = ca.leaf("localhost", ["localhost"])
	cases = [("tls", "needs at least one 'crt"),
		 ("tls crt %s min-version 1.1" % crt, "min-version '1.1'"),
		 ("tls crt %s verify required" % crt, "needs client-ca"),
		 ("tls crt %s alpm h2" % crt, "did you mean 'alpn'"),
		 ("tls crt %s ciphersuites NOPE" % crt, ""),
		 ("tls crt %s alpn spdy/3" % crt, "unknown protocol 'spdy/3'")]
	for opts, want in cases:
		r = bollard_run("check", "-c", "{conf}", config="listen web\n    bind 127.0.0.1:1 %s\n"
				"    server a 127.0.0.1:9\n" % opts)
		assert r.returncode != 0, opts
		assert "check.conf:2: " in r.stdout + r.stderr, (opts, r.stdout + r.stderr)
		assert want in r.stdout + r.stderr, (opts, r.stdout + r.stderr)


# ---------------------------------------------------------------- allocations

def ossl_counts(path, pid):
	"""allocs, frees, and the allocations libcrypto made (the shim's
	third count), after SIGUSR2."""
	if path.exists():
		path.unlink()
	os.kill(pid, signal.SIGUSR2)
	util.wait_until(lambda: path.exists() and path.read_text().endswith("\n"), what="the counts")
	f = path.read_text().split()
	return int(f[1]), int(f[3]), int(f[5])

def test_keepalive_tls_requests_do_not_allocate(demo_apps, ca, tmp_path):
	"""test_no_alloc.py over TLS. The shim counts every malloc, calloc and
	realloc of the process, OpenSSL's included (it allocates through libc):
	handshakes are made during the warm-up, then 8,000 requests on the same
	4 connections (persistence on) must not grow the count with them."""
	import test_no_alloc as na
	if not na.SHIM.exists() or not na.RELEASE.exists():
		pytest.fail("build/alloccount.so and build/bollard are built by `make test`")
	apps = demo_apps(2)
	crt = ca.leaf("localhost", ["localhost"])
	port = util.free_port()
	conf = tmp_path / "b.conf"
	conf.write_text(
		"global\n    threads 2\n    log file %s/access.log\n    secret-file %s/key\n"
		"frontend fe\n    bind 127.0.0.1:%d tls crt %s\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert max-idle 30m\n    persist source\n"
		"    server app1 127.0.0.1:%d\n    server app2 127.0.0.1:%d\n"
		% (tmp_path, tmp_path, port, crt, apps[0].port, apps[1].port))
	counts_file = tmp_path / "allocs"
	env = dict(os.environ, LD_PRELOAD=str(na.SHIM), ALLOC_COUNT_FILE=str(counts_file))
	proc = util.start_process([str(na.RELEASE), "-c", str(conf)], tmp_path / "out",
				  tmp_path / "err", env=env)
	conns = []
	try:
		util.wait_port(port, proc=proc, what="bollard")
		ctx = client_ctx()
		conns = [tls_connect(port, ctx) for _ in range(4)]
		cookie = None

		def run(n):
			# the connections take turns: one left idle while the others
			# ran their share would meet timeout http-keep-alive (5 s) on
			# a slow machine, and be closed under the test
			nonlocal cookie
			for _ in range(n):
				for c in conns:
					h = [("Host", "t")] + ([("Cookie", cookie)] if cookie else [])
					c.send(build_request("GET", "/?format=json", headers=h))
					r = read_response(c)
					assert r.status == 200, r
					if not cookie:
						cookie = r.headers.get("Set-Cookie").split(";")[0]
		run(500)  # warm-up: handshakes, pools, buffers, tables
		time.sleep(0.3)
		a0, f0, o0 = ossl_counts(counts_file, proc.pid)
		run(2000)
		time.sleep(0.3)
		a1, f1, o1 = ossl_counts(counts_file, proc.pid)
	finally:
		for c in conns:
			c.close()
		util.stop_process(proc)
	print("allocations before/after 8000 TLS requests:", a0, a1, "frees:", f0, f1,
	      "of which OpenSSL's:", o0, o1, "(%.1f a request)" % ((o1 - o0) / 8000))
	# what bollard allocates itself: nothing proportional to the requests
	assert (a1 - a0) - (o1 - o0) < 50, (a0, a1, o0, o1)
	# OpenSSL 3.0 allocates (and frees) a few small blocks per record; all
	# of them freed again: the process does not grow with the requests
	assert (a1 - a0) - (f1 - f0) < 50, (a0, a1, f0, f1)
	assert a0 > 0 and o0 > 0  # the shim did count, and did find libcrypto


def _reads(pid):
	"""read()-family system calls the process has made (proc(5), syscr):
	OpenSSL reads the client socket with read(); xprt_tcp's recv() toward
	the servers is not counted."""
	with open("/proc/%d/io" % pid) as f:
		return int(re.search(r"^syscr: (\d+)$", f.read(), re.M).group(1))


def test_keepalive_tls_request_costs_one_socket_read(demo_apps, bollard_factory, ca):
	"""A keep-alive request in one TLS record costs bollard one read() of
	the client socket: OpenSSL reads the record whole (read ahead) rather
	than its 5-byte header and its body apart, and a read that got less
	than it asked drained the socket, so no read() is made only to see
	EAGAIN. 1,000 requests on each of 4 connections, one in flight each."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"]), stats=False))
	conns = [tls_connect(b.port, client_ctx()) for _ in range(4)]
	try:
		def run(n):
			# in turns, so that none idles into timeout http-keep-alive
			for _ in range(n):
				for c in conns:
					c.send(build_request("GET", "/", [("Host", "t")]))
					assert read_response(c).status == 200
		run(20)   # handshakes and pools out of the way
		r0 = _reads(b.pid)
		run(1000)
		per = (_reads(b.pid) - r0) / 4000.0
	finally:
		for c in conns:
			c.close()
	print("read() calls per TLS keep-alive request: %.3f" % per)
	assert per < 1.5, per


# ---------------------------------------------------------------- redirect https, hsts

def test_redirect_https_and_hsts(demo_apps, bollard_factory, ca):
	from conftest import simple_config
	apps = demo_apps(1)
	crt = ca.leaf("localhost", ["localhost"])
	b = bollard_factory(simple_config(apps, frontend_extra=(
		"    bind 127.0.0.1:{port_tls} tls crt %s\n    redirect https\n"
		"    hsts max-age 180d include-subdomains preload\n" % crt)))
	tls_port = b.ports["port_tls"]
	cases = [("/cart?id=1", "shop.test:%d" % b.port, "https://shop.test/cart?id=1"),
		 ("/", "[::1]:80", "https://[::1]/"),
		 ("http://ignored.test/x/y", "shop.test", "https://shop.test/x/y")]
	for target, host, want in cases:
		with Conn.connect(b.port) as c:
			c.send(build_request("POST", target, [("Host", host), ("Content-Length", "3")], b"abc"))
			r = read_response(c)
			assert r.status == 308, r  # RFC 9110 15.4.9: method and body kept
			assert r.headers.get("Location") == want, r.headers
			assert r.headers.get("Strict-Transport-Security") is None  # RFC 6797 7.2
			assert c.is_closed()
	e = b.wait_log(lambda e: e["status"] == 308, n=3)
	assert all(x["term"] == "redirect" for x in e), e
	# on the TLS bind: served, with HSTS
	with tls_connect(tls_port, client_ctx()) as c:
		c.send(build_request("GET", "/whoami", [("Host", "t")]))
		r = read_response(c)
		assert r.status == 200 and r.text().strip() == "app1"
		assert r.headers.get("Strict-Transport-Security") == \
			"max-age=15552000; includeSubDomains; preload", r.headers


def test_hsts_and_redirect_errors(bollard_run):
	for line, want in [("hsts max-age soon", "hsts max-age 'soon'"),
			   ("hsts max-age 1d forever", "unknown hsts option 'forever'"),
			   ("hsts maxage 1d", "usage: hsts max-age"),
			   ("redirect http", "unknown redirect 'http'")]:
		r = bollard_run("check", "-c", "{conf}", config="listen web\n    bind 127.0.0.1:1\n"
				"    %s\n    server a 127.0.0.1:9\n" % line)
		assert r.returncode != 0, line
		assert "check.conf:3: " in r.stdout + r.stderr and want in r.stdout + r.stderr, \
			(line, r.stdout + r.stderr)


def test_reload_during_a_handshake(demo_apps, bollard_factory, ca):
	"""The SSL of a connection reads its bind's contexts (SNI, ticket keys)
	until the handshake ends: a reload in the middle must not free them
	under it (the sanitizer build reports a use after free)."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("localhost", ["localhost"])))
	ctx = client_ctx()
	inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
	obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
	with Conn.connect(b.port) as c:
		with pytest.raises(ssl.SSLWantReadError):
			obj.do_handshake()
		c.send(out.read())  # ClientHello
		# the server's flight, up to its Finished
		deadline = time.monotonic() + 10
		while True:
			assert time.monotonic() < deadline, "no ServerHello"
			inc.write(c.sock.recv(65536))
			try:
				obj.do_handshake()
				break  # the client is done; the server waits for its Finished
			except ssl.SSLWantReadError:
				continue
		os.kill(b.pid, signal.SIGHUP)
		util.wait_until(lambda: _reloads(b) == 1, what="the reload")
		# Finished, then a request, in the new generation's worker loop
		obj.write(build_request("GET", "/whoami", [("Host", "t")]))
		c.send(out.read())
		data = b""
		while b"app1" not in data:
			assert time.monotonic() < deadline, data
			inc.write(c.sock.recv(65536))
			try:
				data += obj.read(65536)
			except ssl.SSLWantReadError:
				continue
		assert data.startswith(b"HTTP/1.1 200"), data
	util.wait_until(lambda: metric(b, "bollard_tls_handshakes_total", frontend="fe", version="1.3",
				       resumed="0") == 1, what="the handshake counted")
	assert b.alive()
