"""Reload (SIGHUP and the runtime API's `reload`, SPEC §6) through the real
binary: validated first, the old configuration kept on any error; no
request fails while reloading under load; unchanged listeners keep serving;
persistence tables and counters carry over by name."""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import util


def conf_text(apps, extra_bind="", order=None, weights=None, persist="    persist source\n"):
	order = order or range(len(apps))
	weights = weights or {}
	servers = "".join("    server %s 127.0.0.1:%d weight %d\n"
			  % (apps[i].name, apps[i].port, weights.get(apps[i].name, 100)) for i in order)
	return ("global\n    threads 2\n    log stdout\n    admin-socket {tmp}/adm.sock\n"
		"    stats-listen 127.0.0.1:{port_stats}\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n%s    default-backend be\n"
		"backend be\n    retries 2\n%s%s" % (extra_bind, persist, servers))


def ctl(bin_, b, *cmd):
	sock = str(Path(b.conf_path).parent / "adm.sock")
	return subprocess.run([bin_, "ctl", "-s", sock] + list(cmd), capture_output=True, text=True,
			      timeout=15)


def rewrite(b, text, **values):
	vals = dict(b.ports)
	vals["tmp"] = str(Path(b.conf_path).parent)
	vals.update(values)
	Path(b.conf_path).write_text(text.format(**vals))


def reloads(bin_, b):
	out = ctl(bin_, b, "show info").stdout
	return int(re.search(r"reloads (\d+)", out).group(1))


def test_reload_under_load_loses_no_request(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(3)
	b = bollard_factory(conf_text(apps[:2]))
	stop = threading.Event()
	results = {"ok": 0, "bad": []}

	def load(keepalive):
		while not stop.is_set():
			try:
				if keepalive:
					with util.Conn.connect(b.port) as c:
						for _ in range(20):
							c.send(util.build_request("GET", "/whoami"))
							r = util.read_response(c)
							if r.status != 200:
								results["bad"].append(r.status)
							else:
								results["ok"] += 1
				else:
					r = util.request(b.port, "GET", "/whoami")
					if r.status != 200:
						results["bad"].append(r.status)
					else:
						results["ok"] += 1
			except Exception as e:  # a refused or reset connection is a failure
				results["bad"].append(repr(e))

	threads = [threading.Thread(target=load, args=(k,)) for k in (True, True, False)]
	for t in threads:
		t.start()
	try:
		for i in range(10):
			time.sleep(0.25)  # load between two reloads
			if i % 2:
				rewrite(b, conf_text(apps[:2]))
			else:
				rewrite(b, conf_text(apps, order=[2, 0, 1], weights={"app3": 50}))
			os.kill(b.pid, signal.SIGHUP)
			# each reload done before the file changes again: a SIGHUP sent
			# while one is still pending is merged with it (a signal is
			# pending once), and a rewrite could meet the previous
			# reload reading the file
			util.wait_until(lambda: reloads(bollard_bin, b) == i + 1,
					what="reload %d" % (i + 1))
		time.sleep(0.3)
	finally:
		stop.set()
		for t in threads:
			t.join(10)
	assert results["bad"] == [], results["bad"][:5]
	assert results["ok"] > 100
	assert "reloaded" in b.stderr_text()


def test_invalid_reload_keeps_the_running_configuration(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(2)
	b = bollard_factory(conf_text(apps))
	good = Path(b.conf_path).read_text()
	Path(b.conf_path).write_text(good + "    blance roundrobin\n    server x 1.2.3.4\n")
	os.kill(b.pid, signal.SIGHUP)
	util.wait_until(lambda: "still running the previous configuration" in b.stderr_text(),
			what="the reload error")
	err = b.stderr_text()
	assert re.search(r"reload: .*bollard\.conf:\d+: unknown keyword 'blance'", err), err
	# serving as before
	for _ in range(5):
		assert util.request(b.port, "GET", "/whoami").status == 200
	r = ctl(bollard_bin, b, "reload")
	assert r.returncode == 1 and r.stdout.startswith("error: reload failed"), r
	assert reloads(bollard_bin, b) == 0
	Path(b.conf_path).write_text(good)
	r = ctl(bollard_bin, b, "reload")
	assert r.returncode == 0 and "reloaded" in r.stdout, r
	assert reloads(bollard_bin, b) == 1


def test_reload_keeps_sessions_counters_and_listeners(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(3)
	b = bollard_factory(conf_text(apps))
	home = util.request(b.port, "GET", "/whoami").text().strip()
	for _ in range(5):
		assert util.request(b.port, "GET", "/whoami").text().strip() == home

	def total():
		m = util.request(b.ports["port_stats"], "GET", "/metrics").text()
		return sum(int(v) for v in re.findall(r'^bollard_backend_requests_total\{backend="be"\} (\d+)',
						       m, re.M))
	before = total()
	# servers in another order and a second listener
	new_port = util.free_port()
	rewrite(b, conf_text(apps, order=[2, 1, 0], extra_bind="    bind 127.0.0.1:%d\n" % new_port))
	r = ctl(bollard_bin, b, "reload")
	assert r.returncode == 0, r
	assert total() >= before
	for port in (b.port, new_port):
		for _ in range(3):
			assert util.request(port, "GET", "/whoami").text().strip() == home
	out = ctl(bollard_bin, b, "show sessions be").stdout
	assert "be source 127.0.0.1 %s" % home in out, out
