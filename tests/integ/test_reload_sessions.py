"""Sessions across reloads under load (SPEC §6, issue 9 item 14).

A reload builds a new configuration generation while the old one finishes
its in-flight requests. The persistence tables of rules that kept their
backend, method and name must serve both generations as one: a session
learned from a response still in flight on the old generation must be
known to the new one, and the new one must never answer from a table that
is not filled yet. Here simulated users log in (the demo app's Set-Cookie
JSESSIONID is learned by `persist learn JSESSIONID`) and come back with
their cookie, on keep-alive and fresh connections, while bollard reloads
30 times, alternating the same configuration, the servers in another
order, a spare server added and removed, and another table size; every
returning request must reach the server that holds its session
(the demo app says so: "new": false and its name), and be logged
persist=hit.
"""

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import util

RELOADS = 30
USERS = 6


def conf(apps, order=(0, 1, 2), spare=None, size="1m"):
	servers = "".join("    server %s 127.0.0.1:%d\n" % (apps[i].name, apps[i].port)
			  for i in order)
	if spare:
		# weight 0: takes no new session, so adding and removing it moves no one
		servers += "    server spare 127.0.0.1:%d weight 0\n" % spare.port
	return ("global\n    threads 2\n    log stdout\n    log-format json\n"
		"    admin-socket {tmp}/adm.sock\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    balance roundrobin\n"
		"    persist learn JSESSIONID size %s\n%s" % (size, servers))


def reloads(bin_, b):
	sock = str(Path(b.conf_path).parent / "adm.sock")
	out = subprocess.run([bin_, "ctl", "-s", sock, "show info"], capture_output=True,
			     text=True, timeout=15).stdout
	return int(re.search(r"reloads (\d+)", out).group(1))


def test_no_session_moves_across_reloads_under_load(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(4, extra_args=("--session-cookie", "JSESSIONID"))
	spare, apps = apps[3], apps[:3]
	text = conf(apps)
	b = bollard_factory(text)
	variants = [conf(apps), conf(apps, order=(2, 0, 1)), conf(apps, spare=spare),
		    conf(apps, order=(1, 2, 0), size="500k")]
	stop = threading.Event()
	lock = threading.Lock()
	seen = {"logins": 0, "returns": 0, "moves": [], "errors": []}

	def user(u):
		n = 0
		while not stop.is_set():
			n += 1
			name = "u%d-%d" % (u, n)
			try:
				with util.Conn.connect(b.port) as c:
					c.send(util.build_request("GET", "/?format=json&user=%s&r=0" % name))
					r = util.read_response(c)
					assert r.status == 200, r
					m = re.match(r"JSESSIONID=([^;]+)", r.headers.get("Set-Cookie", ""))
					assert m, r.headers
					sid, home = m.group(1), r.json()["server"]
					for k in range(1, 7):
						req = util.build_request(
							"GET", "/?format=json&user=%s&r=%d" % (name, k),
							[("Cookie", "JSESSIONID=" + sid)])
						if k % 3 == 0:  # some on a fresh connection
							r = util.request(b.port, "GET",
									 "/?format=json&user=%s&r=%d" % (name, k),
									 [("Cookie", "JSESSIONID=" + sid)])
						else:
							c.send(req)
							r = util.read_response(c)
						j = r.json()
						with lock:
							seen["returns"] += 1
							if j["server"] != home or j["new"]:
								seen["moves"].append((name, k, home, j["server"]))
				with lock:
					seen["logins"] += 1
			except Exception as e:  # noqa: BLE001 - any failure is reported
				with lock:
					seen["errors"].append("%s: %r" % (name, e))
				if not b.alive():
					return

	threads = [threading.Thread(target=user, args=(u,)) for u in range(USERS)]
	for t in threads:
		t.start()
	try:
		util.wait_until(lambda: seen["logins"] >= USERS, timeout=20, what="first logins")
		for i in range(1, RELOADS + 1):
			Path(b.conf_path).write_text(variants[i % len(variants)].format(
				tmp=str(Path(b.conf_path).parent), port=b.port))
			os.kill(b.pid, signal.SIGHUP)
			util.wait_until(lambda: not b.alive() or reloads(bollard_bin, b) >= i,
					timeout=15, what="reload %d" % i)
			assert b.alive(), b.stderr_text()[-3000:]
			# let requests run on the new generation before the next one
			base = seen["returns"]
			util.wait_until(lambda: seen["returns"] >= base + 20 or seen["errors"],
					timeout=15, what="requests after reload %d" % i)
	finally:
		stop.set()
		for t in threads:
			t.join(20)
	assert b.alive(), b.stderr_text()[-3000:]
	assert seen["errors"] == [], seen["errors"][:5]
	assert seen["moves"] == [], "%d of %d returning requests reached another server: %s" % (
		len(seen["moves"]), seen["returns"], seen["moves"][:5])
	assert seen["returns"] >= 20 * RELOADS
	# and the log agrees: every returning request was a hit
	entries = [e for e in b.access_log() if "&r=" in e.get("target", "")]
	misses = [e for e in entries if not e["target"].endswith("&r=0") and e.get("persist") != "hit"]
	assert not misses, misses[:5]
	assert "reloaded" in b.stderr_text()
