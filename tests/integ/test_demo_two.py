"""`make demo-two` (scripts/demo-two.py, doc/scale-out.md): two instances of
examples/two-instances.conf and a Redis of the script's own agree on a
session learned by one of them, and Ctrl-C stops everything it started.
The script runs here on free ports (DEMO_PORTS, DEMO_FRONTS, DEMO_STATS,
DEMO_REDIS_PORT)."""

import os
import pathlib
import re
import signal
import subprocess

import util

ROOT = pathlib.Path(__file__).resolve().parents[2]


def up(stats):
	text = util.request(stats, "GET", "/metrics").text()
	return re.search(r"^bollard_shared_tables_up 1$", text, re.M) is not None


def kill_group_left(p):
	"""The script and what it started, if a failed assertion left them."""
	if p.poll() is None:
		os.killpg(p.pid, signal.SIGKILL)
		p.wait(timeout=5)


def test_two_instances_agree_and_ctrl_c_stops_all(tmp_path, demo_bin):
	apps = [util.free_port() for _ in range(3)]
	fronts = [util.free_port() for _ in range(2)]
	stats = [util.free_port() for _ in range(2)]
	rport = util.free_port()
	env = dict(os.environ, DEMO_PORTS=" ".join(map(str, apps)),
		   DEMO_FRONTS=" ".join(map(str, fronts)), DEMO_STATS=" ".join(map(str, stats)),
		   DEMO_REDIS_PORT=str(rport))
	out = tmp_path / "demo-two.out"
	with open(out, "wb") as f:
		p = subprocess.Popen(util.CTRL_C_ABLE + ["/usr/bin/python3", str(ROOT / "scripts/demo-two.py")],
				     stdout=f,
				     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
				     start_new_session=True)
	try:
		util.wait_until(lambda: "Ctrl-C stops everything" in out.read_text()
				or p.poll() is not None, timeout=30, what="the demo to start")
		assert p.poll() is None, out.read_text()
		for s in stats:
			util.wait_until(lambda: up(s), what="the instance's Redis links up")
		r = util.request(fronts[0], "GET", "/?format=json")
		sid, home = r.json()["session"], r.headers.get("X-Server")
		for _ in range(3):
			r = util.request(fronts[1], "GET", "/?format=json", [("Cookie", "DEMOSESSID=" + sid)])
			assert r.headers.get("X-Server") == home
			assert r.json()["session"] == sid and not r.json()["new"]
		os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
		rc = p.wait(timeout=30)
	finally:
		kill_group_left(p)
	assert rc == 0, out.read_text()
	for port in apps + fronts + stats + [rport]:
		assert not util.can_connect(port), "port %d still open after the demo stopped" % port
