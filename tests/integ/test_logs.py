"""Logs as an operator uses them (SPEC §2, §7; issue 5 item 5): `log file
PATH` reopened on SIGUSR1 so logrotate can rename it; an error log whose
every line carries a level; health state changes logged once per change,
not once per probe nor again at a reload; access-log entries, combined-bollard
and JSON, carrying the persistence result and method, the server, the
connect / first-byte / total timings and the termination reason.
test_log.py covers the access-log format line by line; this file covers
what lies around it."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import util

ERRLOG_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z (error|warning|info|debug): \S")


def _conf(apps, log="stdout", fmt="combined-bollard", extra_backend="", extra_global=""):
	servers = "".join("    server %s 127.0.0.1:%d\n" % (a.name, a.port) for a in apps)
	return ("global\n    threads 2\n    log %s\n    log-format %s\n"
		"    admin-socket {tmp}/adm.sock\n%s"
		"defaults\n    timeout connect 1s\n    timeout server 10s\n    retries 1\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    balance roundrobin\n%s%s"
		% (log, fmt, extra_global, extra_backend, servers))


def _lines(path):
	try:
		data = Path(path).read_text(errors="replace")
	except FileNotFoundError:
		return []
	return [ln for ln in data.split("\n")[:-1] if ln.strip()]


def _get(port, path, headers=None):
	r = util.request(port, "GET", path, headers=headers)
	assert r.status == 200, r
	return r


def _ctl(bollard_bin, b, *cmd):
	sock = str(Path(b.conf_path).parent / "adm.sock")
	return subprocess.run([bollard_bin, "ctl", "-s", sock] + list(cmd), capture_output=True,
			      text=True, timeout=15)


def _wait_stderr(b, needle, timeout=10):
	util.wait_until(lambda: needle in b.stderr_text(), timeout=timeout,
			what="%r in the error log" % needle)


# ---------------------------------------------------------------- log file + SIGUSR1

def _access(path):
	"""The access-log lines of a log file, without the error-log lines that
	share it (issue 10 item 7)."""
	return [ln for ln in _lines(path) if not ERRLOG_RE.match(ln)]


def test_log_file_reopened_on_sigusr1(demo_apps, bollard_factory, tmp_path):
	apps = demo_apps(1)
	log = tmp_path / "access.log"
	b = bollard_factory(_conf(apps, log="file %s" % log))
	for i in range(3):
		_get(b.port, "/whoami?before=%d" % i)
	util.wait_until(lambda: len(_access(log)) >= 3, timeout=10, what="3 lines in the log file")
	assert b.log_lines() == [], "access log also went to stdout"
	assert (os.stat(log).st_mode & 0o777) & 0o007 == 0, "log file readable by others"

	# what logrotate does: rename, then signal
	rotated = tmp_path / "access.log.1"
	os.rename(log, rotated)
	_get(b.port, "/whoami?between=1")  # still written to the renamed file: same fd
	util.wait_until(lambda: any("between=1" in ln for ln in _lines(rotated)), timeout=10,
			what="the line before SIGUSR1 in the renamed file")
	os.kill(b.pid, signal.SIGUSR1)
	_wait_stderr(b, "info: reopened log file")
	assert log.exists(), "SIGUSR1 did not create the log file again: %s %s" % (sorted(os.listdir(tmp_path)), b.stderr_text())
	for i in range(3):
		_get(b.port, "/whoami?after=%d" % i)
	util.wait_until(lambda: len([ln for ln in _lines(log) if "after=" in ln]) == 3,
			timeout=10, what="new lines in the new file")
	old = _lines(rotated)
	assert len([ln for ln in old if "before=" in ln]) == 3
	assert not [ln for ln in old if "after=" in ln], "lines after SIGUSR1 in the old file"
	assert not [ln for ln in _lines(log) if "before=" in ln or "between=" in ln]
	for ln in _access(log) + _access(rotated):
		assert util.parse_combined(ln) is not None, ln
	# the error log goes alongside the access log: the start in the old
	# file, the reopening in the new one
	assert any(re.search(r" info: bollard .* started", ln) for ln in old), old
	assert any(ERRLOG_RE.match(ln) and "reopened log file" in ln for ln in _lines(log))
	assert b.alive()


def test_log_file_unwritable_is_a_start_error(bollard_run, tmp_path):
	conf = ("global\n    log file %s/no/such/dir/access.log\n"
		"frontend fe\n    bind 127.0.0.1:%d\n    default-backend be\n"
		"backend be\n    server a 127.0.0.1:1\n" % (tmp_path, util.free_port()))
	cfg = tmp_path / "bad.conf"
	cfg.write_text(conf)
	r = bollard_run("-c", str(cfg), timeout=10)
	assert r.returncode != 0
	assert "access.log" in r.stderr and "error:" in r.stderr, r.stderr


# ---------------------------------------------------------------- error log

def test_error_log_lines_have_levels(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(_conf(apps, extra_backend="    health http GET /healthz interval 100ms "
							"timeout 500ms rise 1 fall 1\n"))
	_wait_stderr(b, "info: bollard")  # the start line
	assert util.request(apps[0].port, "POST", "/admin/fail").status == 200
	_wait_stderr(b, "warning: server be/app1 is DOWN")
	# a reload that fails is logged as errors, bollard keeps running
	good = Path(b.conf_path).read_text()
	Path(b.conf_path).write_text(good + "    bogus-directive 1\n")
	r = _ctl(bollard_bin, b, "reload")
	assert r.returncode != 0
	_wait_stderr(b, "error: ")
	Path(b.conf_path).write_text(good)
	assert _ctl(bollard_bin, b, "reload").returncode == 0
	_wait_stderr(b, "info: reloaded")
	os.kill(b.pid, signal.SIGUSR1)  # `log stdout`: nothing to reopen, still logged
	_wait_stderr(b, "info: SIGUSR1")
	assert b.stop() == 0
	levels = set()
	for ln in b.stderr_text().splitlines():
		if not ln.strip() or ln.startswith(("==", "    #", "SUMMARY")):
			continue  # sanitizer chatter, judged by the fixture
		m = ERRLOG_RE.match(ln)
		assert m, "error-log line without time and level: %r" % ln
		levels.add(m.group(1))
	assert {"error", "warning", "info"} <= levels, levels


def test_health_changes_logged_once_per_change(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(_conf(apps, extra_backend="    health http GET /healthz interval 100ms "
							"timeout 500ms rise 2 fall 2\n"))

	def changes():
		return re.findall(r"(?:warning|info): server be/app1 is (UP|DOWN)", b.stderr_text())

	util.wait_until(lambda: "ok" if util.request(apps[0].port, "GET", "/healthz").status == 200
			else None, what="app1 healthy")
	assert util.request(apps[0].port, "POST", "/admin/fail").status == 200
	util.wait_until(lambda: changes() == ["DOWN"], timeout=10, what="one DOWN line")
	time.sleep(1.0)  # ~10 more failed probes: none may log again
	# a reload keeps the state: no new line either
	assert _ctl(bollard_bin, b, "reload").returncode == 0
	_wait_stderr(b, "info: reloaded")
	time.sleep(0.5)
	assert changes() == ["DOWN"], b.stderr_text()
	assert util.request(apps[0].port, "POST", "/admin/recover").status == 200
	util.wait_until(lambda: changes() == ["DOWN", "UP"], timeout=10, what="one UP line")
	time.sleep(1.0)
	assert changes() == ["DOWN", "UP"], b.stderr_text()
	assert not re.search(r"server be/app2 is (UP|DOWN)", b.stderr_text())


# ---------------------------------------------------------------- access-log fields

PERSIST = "    persist cookie BOLLARD insert max-idle 30m\n    persist source expire 10m\n"


def _cookie_session(port, n=3):
	r = _get(port, "/whoami?s=0")
	sc = r.headers.get("Set-Cookie")
	assert sc and sc.startswith("BOLLARD="), r.headers
	cookie = sc.split(";")[0]
	for i in range(1, n):
		_get(port, "/whoami?s=%d" % i, headers=[("Cookie", cookie)])
	return cookie


@pytest.mark.parametrize("fmt", ["combined-bollard", "json"])
def test_access_log_persist_server_timings_term(demo_apps, bollard_factory, fmt):
	apps = demo_apps(2)
	b = bollard_factory(_conf(apps, fmt=fmt, extra_backend=PERSIST))
	_cookie_session(b.port, n=3)
	# a forged cookie: the cookie method finds it invalid (the source
	# fallback may still land it home, then the entry says hit)
	_get(b.port, "/whoami?s=forged", headers=[("Cookie", "BOLLARD=" + "x" * 40)])
	# two threads flush their log buffers independently: order by request
	order = lambda t: int(t.split("s=")[1]) if t.split("s=")[1].isdigit() else 99
	entries = sorted(b.wait_log(lambda e: "s=" in e.get("target", ""), n=4),
			 key=lambda e: order(e["target"]))
	key_persist = "persist"
	key_method = "method" if fmt == "combined-bollard" else "persist_method"
	# combined lines use method= for the persistence method after the
	# request line; util.parse_combined gives the HTTP method as "method"
	# and the later key=value pair overwrites it, so re-read it raw
	if fmt == "combined-bollard":
		raw = sorted([ln for ln in b.log_lines() if "s=" in ln],
			     key=lambda ln: order(ln.split('"')[1].split(" ")[1]))
		pm = [re.search(r" method=(\S+)", ln).group(1) for ln in raw]
		hm = [re.search(r'"(\w+) /', ln).group(1) for ln in raw]
	else:
		pm = [e[key_method] for e in entries]
		hm = [e["method"] for e in entries]
	assert hm == ["GET"] * 4
	assert [e[key_persist] for e in entries[:3]] == ["new", "hit", "hit"], entries
	assert pm[0] in ("cookie", "source") and pm[1] == "cookie" and pm[2] == "cookie", pm
	assert entries[3][key_persist] in ("hit", "invalid", "new"), entries[3]
	servers = {e["server"] for e in entries[:3]}
	assert len(servers) == 1 and servers <= {"app1", "app2"}, "session moved: %s" % servers
	for e in entries:
		for k in ("connect_ms", "ttfb_ms", "total_ms"):
			assert e[k] not in ("-", None), (k, e)
			assert float(e[k]) >= 0, (k, e)
		assert float(e["connect_ms"]) <= float(e["total_ms"]) + 0.001, e
		assert float(e["ttfb_ms"]) <= float(e["total_ms"]) + 0.001, e
		assert e["term"] == "-", e  # a normal end


@pytest.mark.parametrize("fmt", ["combined-bollard", "json"])
def test_access_log_termination_reason_no_server(bollard_factory, fmt):
	# the only server refuses connections: 503, the reason is logged
	dead = util.free_port()
	conf = ("global\n    threads 1\n    log stdout\n    log-format %s\n"
		"defaults\n    timeout connect 1s\n    retries 0\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert\n    server gone 127.0.0.1:%d\n"
		% (fmt, dead))
	b = bollard_factory(conf)
	r = util.request(b.port, "GET", "/x")
	assert r.status in (502, 503), r
	e, = b.wait_log(lambda e: e.get("target") == "/x")
	assert e["status"] == r.status
	assert e["term"] not in ("-", "", None), e
	assert e["persist"] in ("new", "moved"), e
