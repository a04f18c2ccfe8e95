"""The TLS edge as an outside scanner sees it (testssl.sh, sslscan; doc/tls.md
"Other settings of a TLS bind"): each finding of such a scan is pinned here
with openssl s_client, so the suite does not need the scanners."""

import re
import subprocess

import pytest

import util
from test_tls import CA, _openssl, client_ctx, s_client, tls_config, tls_connect
from util import Conn, build_request, read_response


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


def chained_leaf(d, name, key):
	"""NAME.pem: a leaf signed by an intermediate CA (itself signed by
	root.crt), then the intermediate, then the key: the whole chain."""
	if not (d / "root.crt").exists():
		_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			 "-keyout", str(d / "root.key"), "-out", str(d / "root.crt"), "-days", "30",
			 "-subj", "/CN=edge test root", "-addext", "basicConstraints=critical,CA:TRUE",
			 "-addext", "keyUsage=critical,keyCertSign")
		(d / "int.ext").write_text("basicConstraints=critical,CA:TRUE\n"
					   "keyUsage=critical,keyCertSign\n")
		_openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			 "-keyout", str(d / "int.key"), "-out", str(d / "int.csr"), "-subj",
			 "/CN=edge test intermediate")
		_openssl("x509", "-req", "-in", str(d / "int.csr"), "-CA", str(d / "root.crt"), "-CAkey",
			 str(d / "root.key"), "-set_serial", "2", "-days", "30", "-out", str(d / "int.crt"),
			 "-extfile", str(d / "int.ext"))
	(d / "leaf.ext").write_text("subjectAltName=DNS:localhost\n")
	newkey = ["-newkey", "rsa:2048"] if key == "rsa" else \
		["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
	_openssl("req", *newkey, "-nodes", "-keyout", str(d / (name + ".key")), "-out",
		 str(d / (name + ".csr")), "-subj", "/CN=localhost")
	_openssl("x509", "-req", "-in", str(d / (name + ".csr")), "-CA", str(d / "int.crt"), "-CAkey",
		 str(d / "int.key"), "-set_serial", str(10 + len(name)), "-days", "30", "-out",
		 str(d / (name + ".crt")), "-extfile", str(d / "leaf.ext"))
	pem = d / (name + ".pem")
	pem.write_text((d / (name + ".crt")).read_text() + (d / "int.crt").read_text() +
		       (d / (name + ".key")).read_text())
	return str(pem)


def negotiated(out):
	"""The cipher the handshake chose, or None when it failed."""
	m = re.search(r"^(?:New|Reused), \S+, Cipher is (\S+)", out, re.M)
	return m.group(1) if m and m.group(1) != "(NONE)" else None


def test_default_tls12_suites_forward_secret_aead_in_server_order(demo_apps, bollard_factory, ca):
	"""Without `ciphers`, TLS 1.2 offers ECDHE with AEAD only (RFC 9325 4.1:
	no static RSA, which has no forward secrecy; no CBC, Lucky13), and the
	server's order decides, for RSA and ECDSA certificates alike; TLS 1.3
	too, except that a client putting ChaCha20 first gets it."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, [ca.leaf("ec", ["localhost"]),
					      ca.leaf("rsa", ["localhost"], key="rsa")]))
	for kx in ("ECDSA", "RSA"):
		for refused in ("AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA256",
				"ECDHE-%s-AES128-SHA" % kx, "ECDHE-%s-AES256-SHA384" % kx):
			out = s_client(b.port, "-servername", "localhost", "-tls1_2", "-cipher", refused)
			assert negotiated(out) is None, (refused, out)
		weak_first = "ECDHE-%s-AES128-SHA256:ECDHE-%s-AES256-GCM-SHA384:ECDHE-%s-AES128-GCM-SHA256" \
			% (kx, kx, kx)
		out = s_client(b.port, "-servername", "localhost", "-tls1_2", "-cipher", weak_first)
		assert negotiated(out) == "ECDHE-%s-AES128-GCM-SHA256" % kx, out
		out = s_client(b.port, "-servername", "localhost", "-tls1_2", "-cipher",
			       "ECDHE-%s-CHACHA20-POLY1305:ECDHE-%s-AES128-GCM-SHA256" % (kx, kx))
		assert negotiated(out) == "ECDHE-%s-CHACHA20-POLY1305" % kx, out
	out = s_client(b.port, "-servername", "localhost", "-tls1_3", "-ciphersuites",
		       "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")
	assert negotiated(out) == "TLS_AES_256_GCM_SHA384", out
	out = s_client(b.port, "-servername", "localhost", "-tls1_3", "-ciphersuites",
		       "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384")
	assert negotiated(out) == "TLS_CHACHA20_POLY1305_SHA256", out


def test_ciphers_option_replaces_the_default_in_its_order(demo_apps, bollard_factory, ca):
	"""An operator who lists CBC suites (old clients) gets them, in the
	order written."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(
		apps, ca.leaf("ec", ["localhost"]),
		extra_bind="ciphers ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384"))
	out = s_client(b.port, "-servername", "localhost", "-tls1_2", "-cipher",
		       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA")
	assert negotiated(out) == "ECDHE-ECDSA-AES128-SHA", out
	out = s_client(b.port, "-servername", "localhost", "-tls1_2", "-cipher",
		       "ECDHE-ECDSA-AES128-GCM-SHA256")
	assert negotiated(out) is None, out


def test_client_words_cannot_forge_log_fields(demo_apps, bollard_factory, ca):
	"""The SNI is the client's text (OpenSSL takes any bytes but NUL), and so
	is an X-Request-Id: a space in either would end the log's key=value
	word and forge the fields after it. It is written \\x20, as other bytes
	that would break the line are."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("ec", ["localhost"])))
	out = s_client(b.port, "-quiet", "-servername", "x server=forged term=forged",
		       input=b"GET /whoami?sni HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	assert "app1" in out, out
	out = s_client(b.port, "-quiet", "-servername", "localhost",
		       input=b"GET /whoami?rid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		       b"X-Request-Id: r1 server=forged term=forged\r\n\r\n")
	assert "app1" in out, out
	entries = b.wait_log(lambda e: e["target"].startswith("/whoami?"), n=2)
	for e in entries:
		assert e["server"] == "app1" and e["term"] == "-", e
	sni = [e for e in entries if e["target"] == "/whoami?sni"][0]
	assert sni["sni"] == r"x\x20server=forged\x20term=forged", sni
	rid = [e for e in entries if e["target"] == "/whoami?rid"][0]
	assert rid["req_id"] == r"r1\x20server=forged\x20term=forged", rid
	for ln in b.log_lines():
		if "/whoami?" in ln:
			assert len(re.findall(r" server=", ln)) == 1 and len(re.findall(r" term=", ln)) == 1, ln


def test_scanner_baseline_versions_renegotiation_chain(demo_apps, bollard_factory, tmp_path):
	"""What testssl.sh found right, pinned: no TLS 1.0 or 1.1 (RFC 8996),
	secure renegotiation signalled (RFC 5746) but a client's renegotiation
	refused, and the whole chain sent (the intermediate of the crt file)
	for the RSA and the ECDSA certificate, so a client that trusts only the
	root verifies either."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, [chained_leaf(tmp_path, "ec", "ec"),
					      chained_leaf(tmp_path, "rsa", "rsa")]))
	for old in ("-tls1", "-tls1_1"):
		out = s_client(b.port, "-servername", "localhost", old, "-cipher", "DEFAULT@SECLEVEL=0")
		assert negotiated(out) is None and "Protocol  : TLSv1" in out, (old, out)
	root = str(tmp_path / "root.crt")
	for sigalgs, want in (("ECDSA+SHA256", "ECDSA"), ("rsa_pss_rsae_sha256", "RSA-PSS")):
		out = s_client(b.port, "-servername", "localhost", "-CAfile", root, "-verify_return_error",
			       "-sigalgs", sigalgs, "-showcerts")
		assert "Verify return code: 0 (ok)" in out and "Peer signature type: " + want in out, out
		assert re.search(r"^ 1 s:CN = edge test intermediate$", out, re.M), out
	out = s_client(b.port, "-servername", "localhost", "-tls1_2", input=b"R\n")
	assert "Secure Renegotiation IS supported" in out, out
	assert "RENEGOTIATING" in out and "no renegotiation" in out, out
	assert b.alive()


def test_hsts_on_bollards_own_answers_over_tls(bollard_factory, ca):
	"""`hsts`: every response over the TLS binds carries the policy
	(doc/config.md), the ones bollard writes itself too (here a 502: the
	server refuses connections), over HTTP/1.1 and HTTP/2; never in
	cleartext."""
	from conftest import simple_config
	crt = ca.leaf("localhost", ["localhost"])
	b = bollard_factory(simple_config([("dead", util.free_port())], frontend_extra=(
		"    bind 127.0.0.1:{port_tls} tls crt %s alpn h2,http/1.1\n"
		"    hsts max-age 1d\n" % crt)))
	with tls_connect(b.ports["port_tls"], client_ctx()) as c:
		c.send(build_request("GET", "/", [("Host", "localhost")]))
		r = read_response(c)
		assert r.status == 502 and r.headers.get("Strict-Transport-Security") == "max-age=86400", \
			(r.status, r.headers)
	out = subprocess.run(["curl", "-sk", "--http2", "-D", "-", "-o", "/dev/null",
			      "https://127.0.0.1:%d/" % b.ports["port_tls"]],
			     stdout=subprocess.PIPE, timeout=30).stdout.decode()
	assert out.startswith("HTTP/2 502") and "strict-transport-security: max-age=86400" in out, out
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/", [("Host", "localhost")]))
		r = read_response(c)
		assert r.status == 502 and r.headers.get("Strict-Transport-Security") is None, r.headers


def test_no_finite_field_key_exchange(demo_apps, bollard_factory, ca):
	"""A TLS 1.3 client picks the group of its key share, and an ffdhe8192
	one costs the server about 100 ms of CPU per handshake against a
	fraction of a millisecond for X25519 (the D(HE)at attack): bollard
	offers the elliptic-curve groups only. A client that offers both but
	sends an ffdhe key share is asked for another (HelloRetryRequest)."""
	apps = demo_apps(1)
	b = bollard_factory(tls_config(apps, ca.leaf("ec", ["localhost"])))
	for g in ("ffdhe2048", "ffdhe8192"):
		for v in ("-tls1_3", "-tls1_2"):
			out = s_client(b.port, "-servername", "localhost", v, "-groups", g)
			assert negotiated(out) is None, (g, v, out)
	for g, key in (("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1"),
		       ("ffdhe8192:X25519", "X25519")):
		out = s_client(b.port, "-servername", "localhost", "-groups", g)
		assert negotiated(out) and re.search(r"^Server Temp Key: .*%s" % key, out, re.M), (g, out)
