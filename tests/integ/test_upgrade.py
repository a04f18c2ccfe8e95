"""The Upgrade filter of SPEC §4 (issue 9 item 1): only `websocket` (on a GET)
and the tokens a frontend allows (`allow-upgrade`) reach the server, whatever
else the request lists and however many Upgrade lines it has; and a
`101 Switching Protocols` opens a tunnel only to a protocol that was sent and
allowed. Any other 101 is a 502 and the server connection is closed, so an
`h2c` tunnel can never bypass the rules that apply to requests."""

import threading

import util
from util import Conn


class UpgradeServer:
	"""A scripted server: records each request head it receives, answers
	with the 101 head given (Upgrade value, None for no Upgrade field), then
	writes b"tunnel-open" and reports whether bollard closed the connection."""

	def __init__(self, py_backend, upgrade_answer):
		self.heads = []
		self.closed_by_proxy = threading.Event()
		self.answer = upgrade_answer

		def handler(conn, backend):
			req = util.read_request(conn)
			if req is None:
				return
			self.heads.append(req)
			up = "" if self.answer is None else "Upgrade: %s\r\n" % self.answer
			conn.send("HTTP/1.1 101 Switching Protocols\r\n%sConnection: Upgrade\r\n\r\n" % up)
			conn.send(b"tunnel-open")
			if conn.is_closed(timeout=5):
				self.closed_by_proxy.set()

		self.backend = py_backend(handler=handler)


def upgrade_request(c, *upgrade_lines, method="GET"):
	hdrs = [("Connection", "Upgrade")] + [("Upgrade", v) for v in upgrade_lines]
	c.send(util.build_request(method, "/", hdrs))
	return util.read_response(c)


def forwarded_upgrade(req):
	"""The Upgrade tokens the server saw, as one lowercase list."""
	toks = []
	for v in req.headers.get_all("Upgrade"):
		toks += [t.strip().lower() for t in v.split(",") if t.strip()]
	return toks


def start(py_backend, bollard_factory, config_for, answer, frontend_extra=""):
	srv = UpgradeServer(py_backend, answer)
	b = bollard_factory(config_for([srv.backend], frontend_extra=frontend_extra))
	return srv, b


def test_h2c_beside_websocket_is_removed_and_its_101_refused(py_backend, bollard_factory, config_for):
	for lines in (["websocket, h2c"], ["h2c, websocket"], ["h2c", "websocket"],
		      ["websocket", "h2c"]):
		srv, b = start(py_backend, bollard_factory, config_for, "h2c")
		with Conn.connect(b.port) as c:
			r = upgrade_request(c, *lines)
			assert r.status == 502, (lines, r)
			assert c.is_closed(timeout=5)
		assert len(srv.heads) == 1
		assert forwarded_upgrade(srv.heads[0]) == ["websocket"], (lines, srv.heads[0].raw_head)
		assert srv.closed_by_proxy.wait(5), "the server connection stayed open"
		b.wait_log(lambda e: e["status"] == 502 and e.get("term") == "bad-response")
		b.stop()


def test_h2c_alone_is_never_a_tunnel(py_backend, bollard_factory, config_for):
	srv, b = start(py_backend, bollard_factory, config_for, "h2c")
	with Conn.connect(b.port) as c:
		r = upgrade_request(c, "h2c")
		assert r.status == 502, r
		assert b"tunnel-open" not in c.read_until_close()
	assert forwarded_upgrade(srv.heads[0]) == [], srv.heads[0].raw_head
	assert "upgrade" not in (srv.heads[0].headers.get("Connection") or "").lower()


def test_websocket_101_still_tunnels(py_backend, bollard_factory, config_for):
	srv, b = start(py_backend, bollard_factory, config_for, "websocket")
	with Conn.connect(b.port) as c:
		r = upgrade_request(c, "h2c, websocket")
		assert r.status == 101, r
		assert r.headers.get("Upgrade") == "websocket"
		assert c.read_exact(len(b"tunnel-open")) == b"tunnel-open"
	assert forwarded_upgrade(srv.heads[0]) == ["websocket"]


def test_101_without_upgrade_or_to_another_token_is_502(py_backend, bollard_factory, config_for):
	for answer in (None, "websocket, h2c", "foo"):
		srv, b = start(py_backend, bollard_factory, config_for, answer)
		with Conn.connect(b.port) as c:
			r = upgrade_request(c, "websocket")
			assert r.status == 502, (answer, r)
		assert srv.closed_by_proxy.wait(5), answer
		b.stop()


def test_allowed_token_passes_alone_and_tunnels(py_backend, bollard_factory, config_for):
	srv, b = start(py_backend, bollard_factory, config_for, "h2c",
		       frontend_extra="    allow-upgrade h2c")
	with Conn.connect(b.port) as c:
		r = upgrade_request(c, "h2c, foo/2", "bar")
		assert r.status == 101, r
		assert c.read_exact(len(b"tunnel-open")) == b"tunnel-open"
	assert forwarded_upgrade(srv.heads[0]) == ["h2c"], srv.heads[0].raw_head


def test_websocket_needs_get(py_backend, bollard_factory, config_for):
	srv, b = start(py_backend, bollard_factory, config_for, "websocket")
	with Conn.connect(b.port) as c:
		r = upgrade_request(c, "websocket", method="POST")
		assert r.status == 502, r
	assert forwarded_upgrade(srv.heads[0]) == []


def test_no_upgrade_from_http10(py_backend, bollard_factory, config_for):
	# RFC 9110 7.8: an HTTP/1.0 request's Upgrade is to be ignored
	srv, b = start(py_backend, bollard_factory, config_for, "websocket")
	with Conn.connect(b.port) as c:
		c.send(util.build_request("GET", "/", [("Host", "t"), ("Connection", "Upgrade"),
						       ("Upgrade", "websocket")], version="HTTP/1.0"))
		assert util.read_response(c).status == 502
	assert forwarded_upgrade(srv.heads[0]) == []
