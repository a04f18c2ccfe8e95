"""Who the client is, behind another proxy: `bind ... accept-proxy` (PROXY
protocol v1 and v2) and `trust-forwarded CIDR...` (X-Forwarded-For from a
trusted peer: the rightmost untrusted address). The client address is what
the access log shows and what `persist source` keys on."""

import json
import subprocess
from pathlib import Path
import socket
import struct

import util


def conf(apps, frontend_extra="", bind_extra="", persist="    persist source\n"):
	servers = "".join("    server %s 127.0.0.1:%d\n" % (a.name, a.port) for a in apps)
	return ("global\n    threads 1\n    log stdout\n    log-format json\n"
		"    admin-socket {tmp}/adm.sock\n"
		"frontend fe\n    bind 127.0.0.1:{port}%s\n%s    default-backend be\n"
		"backend be\n%s%s" % (bind_extra, frontend_extra, persist, servers))


def send_raw(port, data, timeout=5):
	s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
	try:
		s.sendall(data)
		out = b""
		while True:
			try:
				d = s.recv(65536)
			except socket.timeout:
				break
			if not d:
				break
			out += d
			if b"\r\n\r\n" in out:
				head, _, body = out.partition(b"\r\n\r\n")
				for line in head.split(b"\r\n"):
					if line.lower().startswith(b"content-length:"):
						if len(body) >= int(line.split(b":")[1]):
							return out
		return out
	finally:
		s.close()


def echo_via(port, prefix, extra_headers=""):
	req = ("GET /echo HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n" % extra_headers).encode()
	out = send_raw(port, prefix + req)
	assert out.startswith(b"HTTP/1.1 200"), out[:200]
	body = out.partition(b"\r\n\r\n")[2]
	return {k: v for k, v in json.loads(body)["headers"]}


def last_log(b, n=1):
	util.wait_until(lambda: len(b.access_log()) >= n, what="%d log lines" % n)
	return b.access_log()[n - 1]


def v2_header(src, dst, sport, dport):
	sig = b"\r\n\r\n\x00\r\nQUIT\n"
	addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
	return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def test_proxy_protocol_v1_and_v2(demo_apps, bollard_factory):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps, bind_extra=" accept-proxy"))
	h = echo_via(b.port, b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
	assert h["X-Forwarded-For"] == "203.0.113.7"
	e = last_log(b, 1)
	assert e["client"] == "203.0.113.7" and e["persist"] == "new", e
	h = echo_via(b.port, v2_header("203.0.113.7", "127.0.0.1", 40001, 80))
	assert h["X-Forwarded-For"] == "203.0.113.7"
	e2 = last_log(b, 2)
	# the same client by source: the same server, a persistence hit
	assert e2["client"] == "203.0.113.7" and e2["persist"] == "hit", e2
	assert e2["server"] == e["server"]
	# a LOCAL v2 header (health check of the proxy in front) keeps the peer
	local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0])
	h = echo_via(b.port, local)
	assert h["X-Forwarded-For"] == "127.0.0.1"


def test_proxy_protocol_required_on_accept_proxy_binds(demo_apps, bollard_factory):
	apps = demo_apps(1)
	b = bollard_factory(conf(apps, bind_extra=" accept-proxy"))
	out = send_raw(b.port, b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
	assert out == b""  # not a PROXY header: closed, nothing answered
	out = send_raw(b.port, b"PROXY TCP4 1.2.3.4 nonsense\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
	assert out == b""
	# the listener still serves well-formed connections afterwards
	h = echo_via(b.port, b"PROXY TCP4 198.51.100.1 127.0.0.1 1 80\r\n")
	assert h["X-Forwarded-For"] == "198.51.100.1"


def test_trust_forwarded_takes_rightmost_untrusted(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps, frontend_extra="    trust-forwarded 127.0.0.0/8 10.0.0.0/8\n"))
	echo_via(b.port, b"", "X-Forwarded-For: 192.0.2.1, 198.51.100.9, 10.1.2.3\r\n")
	e = last_log(b, 1)
	assert e["client"] == "198.51.100.9", e
	# persistence keys on that client: the same server, whoever relays it
	echo_via(b.port, b"", "X-Forwarded-For: 198.51.100.9\r\n")
	e2 = last_log(b, 2)
	assert e2["client"] == "198.51.100.9" and e2["persist"] == "hit", e2
	assert e2["server"] == e["server"]
	sock = str(Path(b.conf_path).parent / "adm.sock")
	out = subprocess.run([bollard_bin, "ctl", "-s", sock, "show sessions be"],
			     capture_output=True, text=True, timeout=10).stdout
	assert "be source 198.51.100.9 %s" % e["server"] in out, out


def test_untrusted_peer_cannot_claim_an_address(demo_apps, bollard_factory):
	apps = demo_apps(1)
	b = bollard_factory(conf(apps, frontend_extra="    trust-forwarded 10.0.0.0/8\n"))
	h = echo_via(b.port, b"", "X-Forwarded-For: 192.0.2.1\r\n")
	# forwarded as a list with the real peer appended, but not believed
	assert h["X-Forwarded-For"] == "192.0.2.1, 127.0.0.1"
	e = last_log(b, 1)
	assert e["client"] == "127.0.0.1", e


def test_every_forwarded_for_line_counts(demo_apps, bollard_factory):
	# Issue 9 item 2: a client sends 16 X-Forwarded-For lines of its own and
	# the trusted proxy in front appends the address it saw on a line below.
	# The walk from the last line must find that address, however many lines
	# come before it (only tune.maxhdr bounds them, with a 431).
	apps = demo_apps(2)
	b = bollard_factory(conf(apps, frontend_extra="    trust-forwarded 127.0.0.0/8\n"))
	for n, forged in ((16, "6.6.6.6"), (40, "6.6.6.7")):
		lines = "".join("X-Forwarded-For: %s\r\n" % forged for _ in range(n))
		echo_via(b.port, b"", lines + "X-Forwarded-For: 203.0.113.5\r\n")
	first, second = last_log(b, 1), last_log(b, 2)
	assert first["client"] == "203.0.113.5", first
	# persist source keys on that address, not on the forged one
	assert second["client"] == "203.0.113.5" and second["persist"] == "hit", second
	# the proxy's address after a list of forged ones on the same line too
	echo_via(b.port, b"", "X-Forwarded-For: 6.6.6.6\r\n" * 20 + "X-Forwarded-For: 6.6.6.6, 203.0.113.6\r\n")
	assert last_log(b, 3)["client"] == "203.0.113.6"


def test_more_fields_than_maxhdr_is_refused_not_cut(demo_apps, bollard_factory):
	apps = demo_apps(1)
	text = conf(apps, frontend_extra="    trust-forwarded 127.0.0.0/8\n").replace(
		"global\n", "global\n    tune.maxhdr 20\n")
	b = bollard_factory(text)
	req = ("GET /echo HTTP/1.1\r\nHost: t\r\n%sX-Forwarded-For: 203.0.113.5\r\n"
	       "Connection: close\r\n\r\n" % ("X-Forwarded-For: 6.6.6.6\r\n" * 20)).encode()
	out = send_raw(b.port, req)
	assert out.startswith(b"HTTP/1.1 431 "), out[:200]
	e = last_log(b, 1)
	assert e["status"] == 431 and e["client"] == "127.0.0.1", e
