"""`Upgrade: websocket` of SPEC §4: after the 101 the connection is a byte
tunnel to the demo app's /ws echo (RFC 6455 frames go through untouched, in
both directions, for as long as either side keeps it open)."""

import util
from util import Conn


def test_websocket_echo(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		util.ws_handshake(c, "/ws")
		for msg in ("hello", "x" * 200, "é" * 1000):
			util.ws_send(c, msg)
			op, data = util.ws_recv(c)
			assert op == 1 and data.decode() == msg


def test_websocket_binary_large(proxy):
	b, _ = proxy
	payload = bytes(range(256)) * 400  # 100 kB: several reads each way
	with Conn.connect(b.port, timeout=30) as c:
		util.ws_handshake(c, "/ws")
		util.ws_send(c, payload, opcode=2)
		op, data = util.ws_recv(c)
		assert op == 2 and data == payload


def test_websocket_many_messages_and_close(proxy):
	b, _ = proxy
	with Conn.connect(b.port) as c:
		util.ws_handshake(c, "/ws")
		for i in range(50):
			util.ws_send(c, "m%d" % i)
		for i in range(50):
			op, data = util.ws_recv(c)
			assert data == b"m%d" % i
		util.ws_send(c, b"\x03\xe8", opcode=8)  # close, 1000
		op, _ = util.ws_recv(c)
		assert op == 8
		assert c.is_closed(timeout=5)


def test_websocket_tunnel_survives_idle_shorter_than_timeouts(proxy):
	import time
	b, _ = proxy
	with Conn.connect(b.port) as c:
		util.ws_handshake(c, "/ws")
		time.sleep(1.0)
		util.ws_send(c, "after idle")
		assert util.ws_recv(c)[1] == b"after idle"


def test_plain_request_after_failed_upgrade(proxy):
	# A websocket handshake to a path that is not a websocket endpoint gets
	# the server's ordinary answer and the connection stays HTTP.
	b, _ = proxy
	with Conn.connect(b.port) as c:
		c.send(util.build_request("GET", "/whoami", [
			("Upgrade", "websocket"), ("Connection", "Upgrade"),
			("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
			("Sec-WebSocket-Version", "13")]))
		r = util.read_response(c)
		assert r.status != 101, r
		if "close" not in (r.headers.get("Connection") or "").lower():
			assert util.whoami(c) == "app1"


def test_concurrent_websockets_two_threads(demo_apps, bollard_factory, config_for):
	import threading
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, threads=2))
	errors = []

	def session(k):
		try:
			with Conn.connect(b.port) as c:
				util.ws_handshake(c, "/ws")
				for i in range(20):
					msg = "s%d-m%d" % (k, i)
					util.ws_send(c, msg)
					assert util.ws_recv(c)[1] == msg.encode()
		except Exception as e:
			errors.append("session %d: %r" % (k, e))

	ts = [threading.Thread(target=session, args=(k,)) for k in range(16)]
	for t in ts:
		t.start()
	for t in ts:
		t.join(60)
	assert not errors, errors[:5]
	# Plain HTTP still works alongside.
	assert util.request(b.port, "GET", "/whoami").status == 200
