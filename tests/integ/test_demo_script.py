"""`make demo` (scripts/demo.sh, the quick start of README.md):
Ctrl-C stops everything gracefully. A terminal's Ctrl-C sends SIGINT to the
whole foreground process group; the script then stops each process it
started with one SIGTERM. bollard must see one signal, not two (a second
one means "close every connection now"), and every process it started must
be gone (issue 10 item 16). The script runs here with free ports and a
configuration of its own (DEMO_PORTS, DEMO_FRONT, DEMO_TLS_FRONT,
DEMO_TLS_DIR, DEMO_CONF).

The demo also serves HTTPS (issue 12 item 7) with a certificate for
localhost signed by a local test CA it makes (scripts/demo-tls.sh); it
prints how to trust that CA, and the CA may sign for localhost alone."""

import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess

import util

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _demo_conf(path, stats, front, tls_front, apps):
	# the TLS bind as examples/demo.conf writes it: the certificate comes
	# from the script (BOLLARD_TLS_CRT)
	path.write_text(
		"global\n    threads 1\n    stats-listen 127.0.0.1:%d\n    log stdout\n    grace 5s\n"
		"defaults\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
		"frontend web\n    bind 127.0.0.1:%d\n"
		"    bind 127.0.0.1:%d tls crt ${BOLLARD_TLS_CRT} alpn h2,http/1.1\n"
		"    default-backend demo\n"
		"backend demo\n    persist cookie BOLLARD insert\n%s"
		% (stats, front, tls_front, "".join("    server app%d 127.0.0.1:%d\n" % (i + 1, p)
						    for i, p in enumerate(apps))))


def _start_demo(tmp_path, demo_bin):
	"""scripts/demo.sh on free ports; (process, output file, ports)."""
	apps = [util.free_port() for _ in range(3)]
	front, tls_front, stats = util.free_port(), util.free_port(), util.free_port()
	conf = tmp_path / "demo.conf"
	_demo_conf(conf, stats, front, tls_front, apps)
	out = tmp_path / "demo.out"
	# the release build is what make demo runs (the sanitizer build has no
	# demo app beside it)
	env = dict(os.environ, DEMO_PORTS=" ".join(map(str, apps)), DEMO_FRONT=str(front),
		   DEMO_TLS_FRONT=str(tls_front), DEMO_TLS_DIR=str(tmp_path / "tls"),
		   DEMO_CONF=str(conf), BUILD=str(pathlib.Path(demo_bin).parent))
	env.pop("BOLLARD_TLS_CRT", None)
	with open(out, "wb") as f:
		# a session of its own: its process group stands for the
		# terminal's foreground group
		p = subprocess.Popen(util.CTRL_C_ABLE + [str(ROOT / "scripts/demo.sh")], stdout=f,
				     stderr=subprocess.STDOUT,
				     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
	try:
		util.wait_until(lambda: "open http://127.0.0.1:%d/" % front in out.read_text()
				or p.poll() is not None, timeout=30, what="the demo to start")
	except BaseException:
		_kill(p)
		raise
	assert p.poll() is None, out.read_text()
	return p, out, {"apps": apps, "front": front, "tls": tls_front, "stats": stats}


def _kill(p):
	"""Stop the demo as a user does. The script starts its children in
	sessions of their own (setsid), so only the script can stop them: a
	SIGKILL of its group would leave bollard and the apps running. SIGTERM
	runs its cleanup, which stops each child by PID; SIGKILL only if that
	cleanup hangs (and the test then fails on what it left)."""
	if p.poll() is None:
		p.send_signal(signal.SIGTERM)
		try:
			p.wait(timeout=30)
		except subprocess.TimeoutExpired:
			os.killpg(p.pid, signal.SIGKILL)
			p.wait(timeout=5)
			raise


def _https_get(port, cafile, host="localhost"):
	"""GET / over TLS verified against CAFILE: (status line, response head)."""
	ctx = ssl.create_default_context(cafile=cafile)
	ctx.set_alpn_protocols(["http/1.1"])
	with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
		with ctx.wrap_socket(raw, server_hostname=host) as s:
			s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
			data = b""
			while b"\r\n\r\n" not in data:
				chunk = s.recv(4096)
				if not chunk:
					break
				data += chunk
			return data.split(b"\r\n", 1)[0].decode(), data.decode(errors="replace"), \
				s.version(), s.selected_alpn_protocol()


def test_ctrl_c_stops_demo_gracefully(tmp_path, demo_bin):
	p, out, ports = _start_demo(tmp_path, demo_bin)
	apps, front, stats = ports["apps"], ports["front"], ports["stats"]
	try:
		assert util.request(front, "GET", "/").status == 200
		os.killpg(p.pid, signal.SIGINT)           # Ctrl-C
		assert p.wait(timeout=30) == 0, out.read_text()
	finally:
		_kill(p)
	text = out.read_text()
	assert text.count("info: stopping (grace") == 1, text
	assert "second signal" not in text, text
	assert "info: stopped" in text, text
	_assert_stopped(ports)


def _assert_stopped(ports):
	for port in ports["apps"] + [ports["front"], ports["tls"], ports["stats"]]:
		assert not util.can_connect(port), "port %d still open after the demo stopped" % port


def test_demo_serves_https_with_its_local_ca(tmp_path, demo_bin):
	"""HTTPS with the generated certificate, verified against the CA the
	demo names in its output; the instructions to trust it are printed;
	a second start keeps the CA (a browser that trusts it goes on doing so)."""
	p, out, ports = _start_demo(tmp_path, demo_bin)
	try:
		text = out.read_text()
		ca = str((tmp_path / "tls" / "ca.pem").resolve())
		assert "https://localhost:%d/" % ports["tls"] in text, text
		assert "curl --cacert %s https://localhost:%d/" % (ca, ports["tls"]) in text, text
		assert "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n bollard-demo -i %s" % ca in text, text
		status, head, version, alpn = _https_get(ports["tls"], ca)
		assert status == "HTTP/1.1 200 OK", head
		assert version == "TLSv1.3" and alpn == "http/1.1"
		# a client that offers HTTP/2 (a browser) is given it
		ctx = ssl.create_default_context(cafile=ca)
		ctx.set_alpn_protocols(["h2", "http/1.1"])
		with socket.create_connection(("127.0.0.1", ports["tls"]), timeout=10) as raw:
			with ctx.wrap_socket(raw, server_hostname="localhost") as s:
				assert s.selected_alpn_protocol() == "h2"
		# the insert cookie is Secure on the TLS bind
		assert re.search(r"(?im)^set-cookie: BOLLARD=[^\r\n]*;\s*secure", head), head
		# by address too (the certificate names 127.0.0.1)
		assert _https_get(ports["tls"], ca, host="127.0.0.1")[0] == "HTTP/1.1 200 OK"
		# plain HTTP still served beside it
		assert util.request(ports["front"], "GET", "/").status == 200
	finally:
		_kill(p)
	_assert_stopped(ports)
	# ECDSA P-256, and the CA may sign for localhost and 127.0.0.1 only
	crt = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "tls" / "localhost.pem"),
			      "-noout", "-text"], capture_output=True, text=True, check=True).stdout
	assert "ASN1 OID: prime256v1" in crt and "DNS:localhost, IP Address:127.0.0.1" in crt, crt
	cat = subprocess.run(["openssl", "x509", "-in", ca, "-noout", "-text"], capture_output=True,
			     text=True, check=True).stdout
	nc = cat[cat.index("Name Constraints: critical"):]
	assert re.match(r"Name Constraints: critical\s+Permitted:\s+DNS:localhost\s+"
			r"IP:127\.0\.0\.1/255\.255\.255\.255\s", nc), cat
	assert oct(os.stat(tmp_path / "tls" / "ca.key").st_mode & 0o777) == "0o600"
	first = pathlib.Path(ca).read_bytes()
	p, out, ports = _start_demo(tmp_path, demo_bin)
	try:
		assert pathlib.Path(ca).read_bytes() == first
		assert "made a local test CA" not in out.read_text()
		assert _https_get(ports["tls"], ca)[0] == "HTTP/1.1 200 OK"
	finally:
		_kill(p)
	_assert_stopped(ports)
