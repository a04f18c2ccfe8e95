"""The TLS edge as an outside scanner sees it (testssl.sh, sslscan; doc/tls.md
"Other settings of a TLS bind"): each finding of such a scan is pinned here
with openssl s_client, so the suite does not need the scanners."""

import re

import pytest

from test_tls import CA, s_client, tls_config


@pytest.fixture
def ca(tmp_path):
	return CA(tmp_path)


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
