"""Graceful stop of SPEC §2: on SIGTERM/SIGINT bollard stops accepting,
lets in-flight requests finish within `grace`, closes idle connections, and
exits 0."""

import signal
import socket
import threading
import time

import util
from util import Conn, build_request, read_response


def _slow(port, ms, out):
	try:
		with Conn.connect(port, timeout=20) as c:
			c.send(build_request("GET", "/slow?ms=%d" % ms))
			r = read_response(c)
			out["status"] = r.status
			out["closed_after"] = c.is_closed(timeout=5)
	except Exception as e:
		out["error"] = repr(e)


def in_flight(act):
	"""Until the slow request reached the app: a fixed pause could end
	before it did on a slow machine, and the stop would refuse it."""
	util.wait_until(lambda: act.requests()[0] == 1, what="the request in flight")


def test_sigterm_finishes_in_flight_request(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, grace="5s"))
	act = util.AppActivity(apps)
	out = {}
	t = threading.Thread(target=_slow, args=(b.port, 3000, out))
	t.start()
	in_flight(act)
	t0 = time.monotonic()
	b.proc.send_signal(signal.SIGTERM)
	# New connections are refused once the listeners are closed; the polling
	# connections themselves are harmless (accepted then closed).
	try:
		util.wait_until(lambda: not util.can_connect(b.port), timeout=2.0, interval=0.1,
				what="listener closed after SIGTERM")
		refused = True
	except AssertionError:
		refused = False
	t.join(20)
	rc = b.proc.wait(timeout=15)
	elapsed = time.monotonic() - t0
	assert out.get("status") == 200, out
	assert refused, "bollard still accepts connections 2 s after SIGTERM"
	assert rc == 0, "exit status %s; stderr:\n%s" % (rc, b.stderr_text())
	assert elapsed < 5 + 5, "took %.1fs to stop with grace 5s" % elapsed


def test_sigterm_closes_idle_keepalive_connections(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		assert util.whoami(c) == "app1"
		b.proc.send_signal(signal.SIGTERM)
		assert c.is_closed(timeout=8), "idle client connection kept open during stop"
	assert b.proc.wait(timeout=10) == 0


def test_grace_expires_exit(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps))  # grace 2s
	act = util.AppActivity(apps)
	out = {}
	t = threading.Thread(target=_slow, args=(b.port, 8000, out))
	t.start()
	in_flight(act)
	t0 = time.monotonic()
	b.proc.send_signal(signal.SIGTERM)
	rc = b.proc.wait(timeout=15)
	elapsed = time.monotonic() - t0
	t.join(20)
	assert elapsed < 8, "grace 2s, but the stop waited %.1fs for an 8s request" % elapsed
	assert rc == 0, b.stderr_text()
	assert out.get("status") != 200, out


def test_sigint_idle_exit_zero(proxy):
	b, _ = proxy
	assert util.request(b.port, "GET", "/whoami").status == 200
	assert b.stop(signal.SIGINT, timeout=10) == 0, b.stderr_text()
	s = socket.socket()
	s.settimeout(2)
	try:
		assert s.connect_ex(("127.0.0.1", b.port)) != 0, "still listening after exit"
	finally:
		s.close()
