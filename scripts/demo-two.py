#!/usr/bin/python3
"""scripts/demo-two.py - what `make demo-two` runs: two bollard instances
sharing their persistence tables on Redis (examples/two-instances.conf,
doc/scale-out.md), side by side on one machine.

Starts a redis-server of its own (127.0.0.1:6390, files in a temporary
folder, nothing saved), the three demo apps (127.0.0.1:9001-9003),
instance A with examples/two-instances.conf (127.0.0.1:8080, dashboard
:8404) and instance B with a copy whose bind and stats-listen ports are
8081 and 8405, prints where to look and runs until Ctrl-C/TERM; then stops
exactly what it started, by PID, with one SIGTERM each (each runs in a
session of its own, so the terminal's Ctrl-C reaches this script alone).

Environment (for testing it): BUILD (default build), DEMO_PORTS (default
"9001 9002 9003"), DEMO_FRONTS ("8080 8081"), DEMO_STATS ("8404 8405"),
DEMO_REDIS_PORT (6390), DEMO_FOREGROUND=0 to start, print and stop at once.
Python standard library only.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "examples", "two-instances.conf")


def env_ports(name, default):
	return [int(p) for p in os.environ.get(name, default).split()]


def listening(port):
	try:
		with socket.create_connection(("127.0.0.1", port), timeout=0.2):
			return True
	except OSError:
		return False


def die_with_parent():
	"""In the child: SIGTERM when this script dies. The children have
	sessions of their own (Ctrl-C reaches the script only, which stops
	them in order), so a script killed outright (kill -9, a test timing
	out) would otherwise leave Redis, the apps and both instances running."""
	PR_SET_PDEATHSIG = 1
	ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Demo:
	def __init__(self):
		self.procs = []

	def start(self, what, argv, ports, log=None):
		"""Start argv and wait until it listens on every port of ports: a
		bollard's workers bind its front before its control thread binds
		stats-listen, and the dashboard printed as ready must answer."""
		p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log or subprocess.DEVNULL,
				     stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
				     start_new_session=True, cwd=ROOT, preexec_fn=die_with_parent)
		self.procs.append(p)
		waiting = list(ports)
		for _ in range(200):            # at most 10 s
			if p.poll() is not None:
				sys.exit("bollard demo-two: %s exited at start (status %s)" % (what, p.returncode))
			waiting = [port for port in waiting if not listening(port)]
			if not waiting:
				return p
			time.sleep(0.05)
		sys.exit("bollard demo-two: %s does not listen on 127.0.0.1:%d" % (what, waiting[0]))

	def stop(self):
		for p in self.procs:
			if p.poll() is None:
				p.send_signal(signal.SIGTERM)
		deadline = time.monotonic() + 10
		for p in self.procs:
			try:
				p.wait(timeout=max(0.1, deadline - time.monotonic()))
			except subprocess.TimeoutExpired:
				p.kill()
				p.wait()


def instance_conf(text, front, stats, apps, redis_port):
	"""The example with this instance's ports (the file names A's)."""
	text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % front)
	text = text.replace("127.0.0.1:8404", "127.0.0.1:%d" % stats)
	text = text.replace("redis://127.0.0.1:6390/", "redis://127.0.0.1:%d/" % redis_port)
	for i, port in enumerate(apps):
		text = text.replace("127.0.0.1:%d\n" % (9001 + i), "127.0.0.1:%d\n" % port)
	return text


def main():
	build = os.path.join(ROOT, os.environ.get("BUILD", "build"))
	app, lb = os.path.join(build, "bollard-demo-app"), os.path.join(build, "bollard")
	apps = env_ports("DEMO_PORTS", "9001 9002 9003")
	fronts = env_ports("DEMO_FRONTS", "8080 8081")
	stats = env_ports("DEMO_STATS", "8404 8405")
	rport = int(os.environ.get("DEMO_REDIS_PORT", "6390"))
	redis = shutil.which("redis-server")
	for path, what in ((app, "make"), (lb, "make"), (redis, "scripts/install-deps.sh stores")):
		if not path or not os.access(path, os.X_OK):
			sys.exit("bollard demo-two: %s is missing (%s)" % (path or "redis-server", what))
	tmp = tempfile.mkdtemp(prefix="bollard-demo-two-")
	demo = Demo()
	signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
	try:
		demo.start("redis-server", [redis, "--port", str(rport), "--bind", "127.0.0.1",
					    "--dir", tmp, "--save", "", "--appendonly", "no"], [rport])
		for i, port in enumerate(apps):
			demo.start("app%d" % (i + 1), [app, "--name", "app%d" % (i + 1), "--port", str(port)],
				   [port])
		with open(CONF) as f:
			text = f.read()
		for name, front, st in zip("AB", fronts, stats):
			conf = os.path.join(tmp, "instance-%s.conf" % name)
			with open(conf, "w") as f:
				f.write(instance_conf(text, front, st, apps, rport))
			log = open(os.path.join(tmp, "instance-%s.log" % name), "wb")
			demo.start("bollard %s" % name, [lb, "-c", conf], [front, st], log)
		print("bollard demo-two: instance A http://127.0.0.1:%d/ (dashboard http://127.0.0.1:%d/), "
		      "instance B http://127.0.0.1:%d/ (dashboard http://127.0.0.1:%d/), Redis 127.0.0.1:%d; "
		      "logs in %s; Ctrl-C stops everything" % (fronts[0], stats[0], fronts[1], stats[1],
							       rport, tmp), flush=True)
		print("bollard demo-two: a session started on A is known to B:\n"
		      "  curl -si http://127.0.0.1:%d/ | grep -i -e set-cookie -e x-server\n"
		      "  curl -si -H 'Cookie: DEMOSESSID=VALUE' http://127.0.0.1:%d/ | grep -i x-server"
		      % (fronts[0], fronts[1]), flush=True)
		if os.environ.get("DEMO_FOREGROUND", "1") == "0":
			return 0
		while all(p.poll() is None for p in demo.procs):
			time.sleep(0.2)
		print("bollard demo-two: a process exited; stopping everything", file=sys.stderr)
		return 1
	except KeyboardInterrupt:
		print("\nbollard demo-two: stopping", flush=True)
		return 0
	finally:
		demo.stop()
		shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
	sys.exit(main())
