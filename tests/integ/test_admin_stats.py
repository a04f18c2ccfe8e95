"""The runtime API (SPEC §5) through `bollard ctl` and the raw admin socket,
and the stats endpoints (SPEC §7): /metrics in the Prometheus text format,
/api/info and /api/servers. Black-box, through the real binary."""

import json
import os
import re
import socket
import stat
import subprocess

import util

STATS_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    stats-listen 127.0.0.1:{port_stats}
"""

HEADER = "backend server address state health weight conns sessions requests origin"


def _start(demo_apps, bollard_factory, config_for, n=2):
	apps = demo_apps(n)
	b = bollard_factory(config_for(apps, global_extra=STATS_GLOBAL, threads=2))
	sock = os.path.join(os.path.dirname(str(b.conf_path)), "bollard.sock")
	return b, apps, sock


def _ctl(bollard_bin, *args, timeout=15):
	return subprocess.run([bollard_bin, "ctl"] + list(args), capture_output=True, text=True,
			      timeout=timeout)


def _raw(sock, data, timeout=10):
	"""Send bytes on the admin socket, half-close, read everything."""
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.settimeout(timeout)
	try:
		s.connect(sock)
		s.sendall(data)
		s.shutdown(socket.SHUT_WR)
		out = b""
		while True:
			d = s.recv(65536)
			if not d:
				return out
			out += d
	finally:
		s.close()


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _metrics(port):
	"""Parse /metrics: checks the format rules on the way, returns
	{(name, frozenset(labels)): value} and the TYPE of each family."""
	r = util.request(port, "GET", "/metrics")
	assert r.status == 200
	assert r.headers.get("content-type").startswith("text/plain; version=0.0.4")
	samples, types, helped = {}, {}, set()
	for line in r.text().splitlines():
		if line.startswith("# HELP "):
			name = line.split(" ")[2]
			assert name not in helped, "family announced twice: " + name
			helped.add(name)
			continue
		if line.startswith("# TYPE "):
			_, _, name, typ = line.split(" ")
			assert name in helped, "TYPE before HELP: " + name
			assert typ in ("counter", "gauge", "histogram", "summary", "untyped")
			types[name] = typ
			continue
		assert line, "empty line in the exposition"
		m = SAMPLE_RE.match(line)
		assert m, "bad sample line: %r" % line
		name = m.group(1)
		family = re.sub(r"_(bucket|sum|count)$", "", name)
		assert name in types or family in types, "sample before its TYPE: %r" % line
		labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
		samples[(name, labels)] = float(m.group(4))
	return samples, types


def _value(samples, name, **labels):
	return samples[(name, frozenset(labels.items()))]


def test_admin_socket_mode_and_cleanup(demo_apps, bollard_factory, config_for):
	b, _apps, sock = _start(demo_apps, bollard_factory, config_for, n=1)
	util.wait_until(lambda: os.path.exists(sock), timeout=10, what="admin socket")
	st = os.stat(sock)
	assert stat.S_ISSOCK(st.st_mode)
	assert stat.S_IMODE(st.st_mode) == 0o600
	assert b.stop() == 0
	assert not os.path.exists(sock), "admin socket left behind after stop"


def test_help_and_show_info(bollard_bin, demo_apps, bollard_factory, config_for):
	b, _apps, sock = _start(demo_apps, bollard_factory, config_for)
	r = _ctl(bollard_bin, "-s", sock, "help")
	assert r.returncode == 0, r.stderr
	assert "show servers" in r.stdout and "show info" in r.stdout
	assert not r.stdout.endswith("\n\n"), "ctl must not print the end-of-answer line"

	r = _ctl(bollard_bin, "-s", sock, "show", "info")
	assert r.returncode == 0, r.stderr
	info = dict(line.split(" ", 1) for line in r.stdout.splitlines())
	for key in ("version", "uptime_s", "threads", "conns", "conns_total", "requests", "reloads"):
		assert key in info, r.stdout
	assert info["threads"] == "2"
	assert info["reloads"] == "0"

	r = _ctl(bollard_bin, "-s", sock, "json", "show", "info")
	assert r.returncode == 0, r.stderr
	doc = json.loads(r.stdout)
	assert doc["threads"] == 2 and doc["reloads"] == 0
	assert isinstance(doc["version"], str) and isinstance(doc["uptime_s"], int)
	assert isinstance(doc["conns"], int)

	# -c FILE finds the socket in the configuration
	r = _ctl(bollard_bin, "-c", str(b.conf_path), "show", "info")
	assert r.returncode == 0, r.stderr
	assert r.stdout.startswith("version ")


def test_show_servers(bollard_bin, demo_apps, bollard_factory, config_for):
	b, apps, sock = _start(demo_apps, bollard_factory, config_for)
	for _ in range(4):
		assert util.request(b.port, "GET", "/whoami").status == 200
	r = _ctl(bollard_bin, "-s", sock, "show", "servers")
	assert r.returncode == 0, r.stderr
	lines = r.stdout.splitlines()
	assert lines[0] == HEADER
	assert len(lines) == 1 + len(apps)
	for line, app in zip(lines[1:], apps):
		cols = line.split(" ")
		assert len(cols) == 10, line
		assert cols[:6] == ["be", app.name, "127.0.0.1:%d" % app.port, "ready", "unchecked",
				    "100"], line
		assert all(c.isdigit() for c in cols[6:9]) and cols[9] == "config", line

	r = _ctl(bollard_bin, "-s", sock, "show", "servers", "be")
	assert r.returncode == 0 and r.stdout.splitlines()[0] == HEADER

	r = _ctl(bollard_bin, "-s", sock, "json", "show", "servers")
	assert r.returncode == 0, r.stderr
	doc = json.loads(r.stdout)
	assert [s["server"] for s in doc["servers"]] == [a.name for a in apps]
	for s in doc["servers"]:
		for key in ("backend", "server", "address", "state", "health"):
			assert isinstance(s[key], str)
		for key in ("weight", "conns", "sessions", "requests"):
			assert isinstance(s[key], int)
		assert s["state"] == "ready" and s["health"] == "unchecked"

	r = _ctl(bollard_bin, "-s", sock, "show", "servers", "nope")
	assert r.returncode == 1
	assert r.stdout.strip() == "error: no backend 'nope'"


def test_errors_exit_nonzero(bollard_bin, demo_apps, bollard_factory, config_for, tmp_path):
	_b, _apps, sock = _start(demo_apps, bollard_factory, config_for, n=1)
	r = _ctl(bollard_bin, "-s", sock, "xyz")
	assert r.returncode == 1
	assert r.stdout.strip() == "error: unknown command 'xyz'; try 'help'"

	r = _ctl(bollard_bin, "-s", sock, "set", "server", "be/app1", "state", "sideways")
	assert r.returncode == 1
	assert r.stdout.startswith("error: ")

	missing = str(tmp_path / "missing.sock")
	r = _ctl(bollard_bin, "-s", missing, "help")
	assert r.returncode == 1
	assert "bollard ctl: cannot connect to %s: No such file or directory" % missing in r.stderr


def test_raw_protocol_several_commands(demo_apps, bollard_factory, config_for):
	_b, _apps, sock = _start(demo_apps, bollard_factory, config_for, n=1)
	out = _raw(sock, b"show info\nxyz\njson show servers\nhelp").decode()
	answers = out.split("\n\n")
	# four answers, each ended by an empty line, nothing after the last
	assert answers[-1] == "" and len(answers) == 5, out
	assert answers[0].startswith("version ")
	assert answers[1].startswith("error: unknown command")
	assert json.loads(answers[2])["servers"][0]["server"] == "app1"
	assert "show servers" in answers[3]


def test_metrics_and_api(demo_apps, bollard_factory, config_for):
	b, apps, _sock = _start(demo_apps, bollard_factory, config_for)
	port = b.ports["port_stats"]
	before, types = _metrics(port)
	assert types["bollard_requests_total"] == "counter"
	assert types["bollard_server_active_connections"] == "gauge"
	assert types["bollard_server_state"] == "gauge"
	for app in apps:
		assert _value(before, "bollard_server_state", backend="be", server=app.name,
			      state="ready") == 1
		assert _value(before, "bollard_server_state", backend="be", server=app.name,
			      state="down") == 0

	n = 6
	for _ in range(n):
		assert util.request(b.port, "GET", "/whoami").status == 200

	def grown():
		after, _ = _metrics(port)
		ok2xx = sum(_value(after, "bollard_requests_total", frontend="fe", backend="be", server=a.name,
				   code="2xx") for a in apps)
		old2xx = sum(_value(before, "bollard_requests_total", frontend="fe", backend="be", server=a.name,
				    code="2xx") for a in apps)
		fe = (_value(after, "bollard_frontend_requests_total", frontend="fe")
		      - _value(before, "bollard_frontend_requests_total", frontend="fe"))
		return after if ok2xx - old2xx >= n and fe >= n else None
	after = util.wait_until(grown, timeout=10, what="request counters to grow")
	assert (_value(after, "bollard_backend_requests_total", backend="be")
		- _value(before, "bollard_backend_requests_total", backend="be")) >= n
	assert _value(after, "bollard_uptime_seconds") >= 0

	r = util.request(port, "GET", "/api/servers")
	assert r.status == 200
	assert r.headers.get("content-type").startswith("application/json")
	doc = r.json()
	assert sorted(s["server"] for s in doc["servers"]) == sorted(a.name for a in apps)
	assert all(s["backend"] == "be" for s in doc["servers"])

	r = util.request(port, "GET", "/api/info")
	assert r.status == 200
	assert r.headers.get("content-type").startswith("application/json")
	info = r.json()
	assert info["threads"] == 2 and "version" in info and "reloads" in info

	assert util.request(port, "GET", "/nope").status == 404
	assert util.request(port, "POST", "/metrics", body=b"x").status == 405
