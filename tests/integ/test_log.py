"""The access log of SPEC §7 (`log stdout`, `log-format
combined-bollard|combined|json`): one parseable entry per request, naming
the frontend, backend and server, with the status, timings, request id and
termination reason; bollard's own errors are logged with the reason.
`log-format combined` is the pure combined format that stock parsers read
(checked with their own regular expressions); JSON times carry
milliseconds."""

import re
import socket
import struct

import pytest

import util
from util import Conn, build_request, read_response

TIME_RE = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$")
JSON_KEYS = ("time", "client", "method", "target", "proto", "status", "bytes", "referer",
	     "user_agent", "frontend", "backend", "server", "connect_ms", "ttfb_ms", "total_ms",
	     "term", "request_id")


def _num(v):
	return float(v) >= 0


# Logstash's COMBINEDAPACHELOG grok pattern spelled as a Python regular
# expression (HTTPDUSER/USER as \S+, QS as a quoted string with backslash
# escapes), anchored at both ends as fluent-bit and GoAccess read a line.
COMBINEDAPACHELOG = re.compile(
	r'^(?P<clientip>\S+) (?P<ident>\S+) (?P<auth>\S+) '
	r'\[(?P<timestamp>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
	r'"(?:(?P<verb>\w+) (?P<request>\S+)(?: HTTP/(?P<httpversion>\d+(?:\.\d+)?))?'
	r'|(?P<rawrequest>[^"]*))" '
	r'(?P<response>\d{3}) (?:(?P<bytes>\d+)|-) '
	r'(?P<referrer>"(?:[^"\\]|\\.)*") (?P<agent>"(?:[^"\\]|\\.)*")$')
# fluent-bit's stock "apache2" parser (parsers.conf), in Python syntax.
FLUENTBIT_APACHE2 = re.compile(
	r'^(?P<host>[^ ]*) [^ ]* (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] '
	r'"(?P<method>\S+)(?: +(?P<path>[^\"]*?)(?: +\S*)?)?" (?P<code>[^ ]*) (?P<size>[^ ]*)'
	r'(?: "(?P<referer>[^\"]*)" "(?P<agent>[^\"]*)")?$')
JSON_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_combined_is_what_stock_parsers_read(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, log_format="combined",
				       backend_extra="    persist cookie BOLLARD insert\n"))
	with Conn.connect(b.port) as c:
		c.send(build_request("GET", "/whoami?a=1", headers=[
			("User-Agent", 'agent "quoted" 1.0'), ("Referer", "http://ref.example/x")]))
		assert read_response(c).status == 200
		c.send(build_request("GET", "/whoami?b=2"))
		assert read_response(c).status == 200
	b.wait_log(lambda e: e.get("target", "").startswith("/whoami"), n=2)
	lines = [ln for ln in b.log_lines() if "/whoami" in ln]
	assert len(lines) == 2, lines
	for ln in lines:
		m = COMBINEDAPACHELOG.match(ln)
		assert m, "COMBINEDAPACHELOG does not match %r" % ln
		assert m["clientip"] == "127.0.0.1" and m["verb"] == "GET" and m["response"] == "200"
		assert m["httpversion"] == "1.1" and int(m["bytes"]) > 0
		f = FLUENTBIT_APACHE2.match(ln)
		assert f and f["code"] == "200" and f["agent"] is not None, ln
		# none of bollard's own fields: they live in combined-bollard
		assert "persist=" not in ln and "server=" not in ln, ln
	m = COMBINEDAPACHELOG.match(lines[0])
	assert m["request"] == "/whoami?a=1" and m["referrer"] == '"http://ref.example/x"'
	assert "quoted" in m["agent"]


def test_combined_bollard_adds_fields_after_the_combined_part(demo_apps, bollard_factory,
							       config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, log_format="combined-bollard",
				       backend_extra="    persist cookie BOLLARD insert\n"))
	assert util.request(b.port, "GET", "/whoami").status == 200
	e, = b.wait_log(lambda e: e.get("target") == "/whoami")
	assert e["server"] == "app1" and e["persist"] == "new", e
	ln = [ln for ln in b.log_lines() if "/whoami" in ln][0]
	head, _, tail = ln.partition('" frontend=')
	assert tail and COMBINEDAPACHELOG.match(head + '"'), ln
	assert not FLUENTBIT_APACHE2.match(ln), "combined-bollard passes for pure combined"


def test_default_format_is_combined_bollard(proxy):
	b, _ = proxy
	assert util.request(b.port, "GET", "/whoami").status == 200
	e, = b.wait_log(lambda e: e.get("target") == "/whoami")
	assert e["server"] == "app1" and e["backend"] == "be", e


def test_json_time_has_milliseconds(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, log_format="json"))
	for i in range(3):
		assert util.request(b.port, "GET", "/whoami?j=%d" % i).status == 200
	entries = b.wait_log(lambda e: str(e.get("target", "")).startswith("/whoami"), n=3)
	for e in entries:
		assert JSON_TIME_RE.match(e["time"]), e["time"]
	times = [e["time"] for e in entries]
	assert times == sorted(times), times


def test_combined_one_line_per_request(demo_apps, bollard_factory, config_for):
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps))
	with Conn.connect(b.port) as c:
		for i in range(6):
			c.send(build_request("GET", "/whoami?i=%d" % i, headers=[
				("User-Agent", "pytest-agent/1"), ("Referer", "http://ref.example/")]))
			assert read_response(c).status == 200
	entries = b.wait_log(lambda e: e.get("target", "").startswith("/whoami"), n=6)
	assert len(entries) == 6
	for line in b.log_lines():
		assert util.parse_combined(line) is not None, "unparseable access-log line: %r" % line
	for i, e in enumerate(entries):
		assert e["client"] == "127.0.0.1"
		assert TIME_RE.match(e["time"]), e["time"]
		assert e["method"] == "GET" and e["proto"] == "HTTP/1.1"
		assert e["target"] == "/whoami?i=%d" % i, "log out of order or target rewritten"
		assert e["status"] == 200
		assert e["bytes"] != "-" and int(e["bytes"]) > 0
		assert e["user_agent"] == "pytest-agent/1" and e["referer"] == "http://ref.example/"
		assert e["frontend"] == "fe" and e["backend"] == "be"
		assert e["server"] in ("app1", "app2")
		assert e["term"] == "-", e
		assert e.get("req_id") and e["req_id"] != "-"
		for k in ("connect_ms", "ttfb_ms", "total_ms"):
			assert _num(e[k]), e
		assert float(e["total_ms"]) >= float(e["ttfb_ms"]) or abs(
			float(e["total_ms"]) - float(e["ttfb_ms"])) < 1
	assert {e["server"] for e in entries} == {"app1", "app2"}


def test_combined_request_id_matches_header(proxy):
	b, _ = proxy
	r = util.request(b.port, "GET", "/echo", headers=[("X-Request-Id", "trace-77")])
	assert r.status == 200
	e = b.wait_log(lambda e: e.get("target") == "/echo")[0]
	assert e["req_id"] == "trace-77"
	r = util.request(b.port, "GET", "/echo?second")
	rid = util.echo_headers(r).get("X-Request-Id")
	e = b.wait_log(lambda e: e.get("target") == "/echo?second")[0]
	assert e["req_id"] == rid, "log request id %s, server saw %s" % (e["req_id"], rid)


def test_json_format(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, log_format="json"))
	with Conn.connect(b.port) as c:
		for i in range(3):
			c.send(build_request("POST", "/echo?i=%d" % i, body=b"abc",
					     headers=[("User-Agent", 'quote"and\\back')]))
			assert read_response(c).status == 200
	entries = b.wait_log(lambda e: str(e.get("target", "")).startswith("/echo"), n=3)
	for line in b.log_lines():
		assert util.parse_json_line(line) is not None, "not one JSON object: %r" % line
	for i, e in enumerate(entries):
		missing = [k for k in JSON_KEYS if k not in e]
		assert not missing, "keys missing: %s in %s" % (missing, e)
		assert e["method"] == "POST" and e["target"] == "/echo?i=%d" % i
		assert e["status"] == 200 or e["status"] == "200"
		assert e["server"] == "app1" and e["backend"] == "be" and e["frontend"] == "fe"
		assert e["user_agent"] == 'quote"and\\back'
		assert e["client"] == "127.0.0.1"
		assert e["term"] in ("-", "", None)


@pytest.mark.parametrize("fmt", ["combined-bollard", "json"])
def test_bad_request_logged(demo_apps, bollard_factory, config_for, fmt):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, log_format=fmt))
	with Conn.connect(b.port) as c:
		c.send(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
		assert read_response(c).status == 400
	e = b.wait_log(lambda e: str(e.get("status")) == "400")[0]
	assert e["term"] == "bad-request", e
	assert e["server"] in ("-", None, ""), e
	if fmt == "json":
		missing = [k for k in JSON_KEYS if k not in e]
		assert not missing, "keys missing: %s in %s" % (missing, e)


def test_no_server_logged(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for([(apps[0].name, apps[0].port, "weight 0")]))
	assert util.request(b.port, "GET", "/whoami").status == 503
	e = b.wait_log(lambda e: e.get("status") == 503)[0]
	assert e["term"] == "no-server", e
	assert e["server"] == "-"
	assert e["backend"] == "be"


def test_connect_failed_logged(bollard_factory, config_for):
	b = bollard_factory(config_for([("dead", util.free_port())], retries=0))
	assert util.request(b.port, "GET", "/").status == 502
	e = b.wait_log(lambda e: e.get("status") == 502)[0]
	assert e["term"] == "connect-failed", e


def test_server_timeout_logged(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"server": "500ms"}, retries=0))
	assert util.request(b.port, "GET", "/slow?ms=3000", timeout=15).status == 504
	e = b.wait_log(lambda e: e.get("status") == 504)[0]
	assert e["term"] == "server-timeout", e
	assert e["server"] == "app1"


def test_request_timeout_logged(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, timeouts={"http-request": "500ms"}))
	with Conn.connect(b.port) as c:
		c.send(b"GET /partial HTTP/1.1\r\nHost: test\r\n")
		assert read_response(c).status == 408
	e = b.wait_log(lambda e: e.get("status") == 408)[0]
	assert e["term"] == "request-timeout", e


def test_bad_response_logged(py_backend, bollard_factory, config_for):
	pb = py_backend(lambda req, be: (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", True))
	b = bollard_factory(config_for([pb], retries=0))
	assert util.request(b.port, "GET", "/").status == 502
	e = b.wait_log(lambda e: e.get("status") == 502)[0]
	assert e["term"] == "bad-response", e


def test_server_closed_logged(py_backend, bollard_factory, config_for):
	def handler(conn, be):
		util.read_request(conn)
		conn.close()

	pb = py_backend(handler=handler)
	b = bollard_factory(config_for([pb], retries=0))
	assert util.request(b.port, "GET", "/").status == 502
	e = b.wait_log(lambda e: e.get("status") == 502)[0]
	assert e["term"] == "server-closed", e


def test_client_closed_logged(demo_apps, bollard_factory, config_for):
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps))
	act = util.AppActivity(apps)
	c = Conn.connect(b.port)
	c.send(build_request("GET", "/slow?ms=1500"))
	# at the server (a fixed pause could end before, on a slow machine)
	util.wait_until(lambda: act.requests()[0] == 1, what="the request at app1")
	# Gone before the answer, with a reset (SO_LINGER 0) so that the write of
	# the response fails: a half-close alone may legitimately be answered.
	c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
	c.close()
	e = b.wait_log(lambda e: str(e.get("target", "")).startswith("/slow"), timeout=10)[0]
	assert e["term"] == "client-closed", e
	assert e["server"] == "app1"
