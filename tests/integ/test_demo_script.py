"""`make demo` (scripts/demo.sh, the quick start of README.md):
Ctrl-C stops everything gracefully. A terminal's Ctrl-C sends SIGINT to the
whole foreground process group; the script then stops each process it
started with one SIGTERM. bollard must see one signal, not two (a second
one means "close every connection now"), and every process it started must
be gone (issue 10 item 16). The script runs here with free ports and a
configuration of its own (DEMO_PORTS, DEMO_FRONT, DEMO_CONF)."""

import os
import pathlib
import signal
import subprocess

import util

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_ctrl_c_stops_demo_gracefully(tmp_path, demo_bin):
	apps = [util.free_port() for _ in range(3)]
	front, stats = util.free_port(), util.free_port()
	conf = tmp_path / "demo.conf"
	conf.write_text(
		"global\n    threads 1\n    stats-listen 127.0.0.1:%d\n    log stdout\n    grace 5s\n"
		"defaults\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
		"frontend web\n    bind 127.0.0.1:%d\n    default-backend demo\n"
		"backend demo\n    persist cookie BOLLARD insert\n%s"
		% (stats, front, "".join("    server app%d 127.0.0.1:%d\n" % (i + 1, p)
					 for i, p in enumerate(apps))))
	out = tmp_path / "demo.out"
	# the release build is what make demo runs (the sanitizer build has no
	# demo app beside it)
	env = dict(os.environ, DEMO_PORTS=" ".join(map(str, apps)), DEMO_FRONT=str(front),
		   DEMO_CONF=str(conf), BUILD=str(pathlib.Path(demo_bin).parent))
	with open(out, "wb") as f:
		# a session of its own: its process group stands for the
		# terminal's foreground group
		p = subprocess.Popen([str(ROOT / "scripts/demo.sh")], stdout=f, stderr=subprocess.STDOUT,
				     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
	try:
		util.wait_until(lambda: "open http://127.0.0.1:%d/" % front in out.read_text()
				or p.poll() is not None, timeout=20, what="the demo to start")
		assert p.poll() is None, out.read_text()
		assert util.request(front, "GET", "/").status == 200
		os.killpg(p.pid, signal.SIGINT)           # Ctrl-C
		assert p.wait(timeout=30) == 0, out.read_text()
	finally:
		if p.poll() is None:
			os.killpg(p.pid, signal.SIGKILL)
			p.wait(timeout=5)
	text = out.read_text()
	assert text.count("info: stopping (grace") == 1, text
	assert "second signal" not in text, text
	assert "info: stopped" in text, text
	for port in apps + [front, stats]:
		assert not util.can_connect(port), "port %d still open after the demo stopped" % port
