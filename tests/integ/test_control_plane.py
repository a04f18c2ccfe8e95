"""The control plane under stress and misuse (issue 9 items 5, 8, 13, 17, 19),
through the real binary: the files it owns survive reloads and stops, a
second instance is refused, the admin socket and /metrics cannot be locked
out, descriptor exhaustion does not spin, bad state-file paths are refused.
"""

import os
import signal
import socket
import subprocess

import util
from test_admin_stats import _raw

CONTROL_GLOBAL = """
    admin-socket {tmp}/bollard.sock
    state-file {tmp}/bollard.state
    stats-listen 127.0.0.1:{port_stats}
"""


def tmp_of(b):
	return os.path.dirname(str(b.conf_path))


def ctl(bollard_bin, sock, *args, timeout=15):
	return subprocess.run([bollard_bin, "ctl", "-s", sock] + list(args), capture_output=True,
			      text=True, timeout=timeout)


def test_reloads_then_stop_keep_the_state_file_and_remove_the_socket(demo_apps, bollard_factory,
									config_for, bollard_bin):
	"""Item 8: the admin-socket path must not point into a configuration
	generation a reload freed (the stop used to unlink freed memory: the
	socket stayed, and sometimes the state file went)."""
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL,
				       backend_extra="    persist source"))
	sock = os.path.join(tmp_of(b), "bollard.sock")
	state = os.path.join(tmp_of(b), "bollard.state")
	assert util.request(b.port, "GET", "/whoami").status == 200
	for i in range(4):
		r = ctl(bollard_bin, sock, "reload")
		assert (r.returncode, r.stdout.strip()) == (0, "reloaded"), r
		os.kill(b.pid, signal.SIGHUP)
		util.wait_until(lambda: b.stderr_text().count("reloaded ") >= 2 * (i + 1),
				what="reload #%d" % (2 * (i + 1)))
	assert b.stop() == 0, b.stderr_text()
	assert os.path.exists(state), "state file deleted at stop:\n" + b.stderr_text()
	assert not os.path.exists(sock), "admin socket left behind at stop"


def test_admin_lines_up_to_4095_bytes(demo_apps, bollard_factory, config_for):
	"""Item 19: the documented limit of a command line is 4095 bytes; a
	longer one gets a clear error and the connection goes on."""
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL))
	sock = os.path.join(tmp_of(b), "bollard.sock")

	def show(n):
		# "show servers " + name: a line of exactly n bytes
		return b"show servers " + b"x" * (n - len("show servers ")) + b"\n"
	answers = _raw(sock, show(2000) + show(4095) + show(4096) + show(9000) +
			    b"show info\n").decode().split("\n\n")
	assert answers[0].startswith("error: no backend 'xxx"), answers[0]
	assert answers[1].startswith("error: no backend 'xxx"), answers[1]
	assert answers[2] == "error: command too long (over 4095 bytes)", answers[2]
	assert answers[3] == "error: command too long (over 4095 bytes)", answers[3]
	assert answers[4].startswith("version "), answers[4]
	# a trailing CR is not part of the command
	out = _raw(sock, show(4095)[:-1] + b"\r\n").decode()
	assert out.startswith("error: no backend 'xxx"), out


def test_reload_answer_lists_every_error_in_full(demo_apps, bollard_factory, config_for,
						 bollard_bin):
	"""Issue 10 item 14: `ctl reload` shows every configuration error, each
	as FILE:LINE: message, none cut short."""
	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL))
	sock = os.path.join(tmp_of(b), "bollard.sock")
	good = open(b.conf_path).read()
	long_name = "keyword-" + "n" * 80
	bad = good + ("    blance roundrobin\n"
		      "    %s on\n"
		      "    persist nonsense\n" % long_name)
	with open(b.conf_path, "w") as f:
		f.write(bad)
	r = ctl(bollard_bin, sock, "reload")
	assert r.returncode == 1, r
	lines = r.stdout.splitlines()
	assert lines[0] == "error: reload failed: 3 errors; still running the previous configuration", \
		r.stdout
	logged = [ln.split("reload: ", 1)[1] for ln in b.stderr_text().splitlines()
		  if "reload: %s:" % b.conf_path in ln]
	assert len(logged) == 3 and lines[1:] == logged, (r.stdout, logged)
	assert any("unknown keyword 'blance'" in ln for ln in lines[1:]), r.stdout
	assert any(long_name in ln for ln in lines[1:]), r.stdout
	# an error that is not about a line of the file, in full too
	with open(b.conf_path, "w") as f:
		f.write(good.replace("threads 1", "threads 2"))
	r = ctl(bollard_bin, sock, "reload")
	assert (r.returncode, r.stdout.strip()) == (
		1, "error: reload failed: threads cannot change on reload (restart instead)"), r
	with open(b.conf_path, "w") as f:
		f.write(good)
	assert ctl(bollard_bin, sock, "reload").stdout.strip() == "reloaded"


class Tricklers:
	"""n stats connections that send a request head one byte a second and
	never finish it (slowloris on the control plane)."""

	HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200

	def __init__(self, port, n):
		self.socks, self.sent, self.closed = [], [], []
		for _ in range(n):
			s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			s.settimeout(5)
			s.connect(("127.0.0.1", port))
			s.setblocking(False)
			self.socks.append(s)
			self.sent.append(0)
			self.closed.append(False)

	def tick(self):
		"""One more byte on every open connection; notes those bollard
		closed (EOF, reset, or a response then EOF)."""
		for i, s in enumerate(self.socks):
			if self.closed[i]:
				continue
			try:
				while s.recv(4096):
					pass
				self.closed[i] = True   # b"": EOF
				continue
			except BlockingIOError:
				pass
			except OSError:
				self.closed[i] = True
				continue
			try:
				s.send(self.HEAD[self.sent[i]:self.sent[i] + 1])
				self.sent[i] = min(self.sent[i] + 1, len(self.HEAD) - 1)
			except OSError:
				self.closed[i] = True

	def nopen(self):
		return self.closed.count(False)

	def close(self):
		for s in self.socks:
			s.close()


def test_trickling_stats_clients_lock_nothing_out(demo_apps, bollard_factory, config_for,
						  bollard_bin):
	"""Item 5: 300 stats connections that never finish their request head
	must not refuse `bollard ctl`, nor /metrics, and are closed by the
	head deadline (10 s from accept) although they keep sending."""
	import time

	apps = demo_apps(1)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL))
	sock = os.path.join(tmp_of(b), "bollard.sock")
	stats = b.ports["port_stats"]
	t = Tricklers(stats, 300)
	try:
		t0 = time.monotonic()
		t.tick()
		r = ctl(bollard_bin, sock, "show", "info")
		assert r.returncode == 0 and r.stdout.startswith("version "), r
		assert util.request(stats, "GET", "/metrics", timeout=5).status == 200
		# every trickler goes by the deadline, however busy it looks
		deadline = t0 + 25
		while t.nopen() and time.monotonic() < deadline:
			time.sleep(1)
			t.tick()
		assert t.nopen() == 0, "%d trickling connections still open after %.0fs" % (
			t.nopen(), time.monotonic() - t0)
		r = ctl(bollard_bin, sock, "show", "info")
		assert r.returncode == 0, r
		assert util.request(stats, "GET", "/metrics", timeout=5).status == 200
	finally:
		t.close()


def cpu_seconds(pid):
	"""utime + stime of the process, from /proc (seconds)."""
	with open("/proc/%d/stat" % pid) as f:
		fields = f.read().rsplit(")", 1)[1].split()
	return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting(demo_apps, config_for, bollard_bin, tmp_path):
	"""Item 17: at the descriptor limit neither the control thread nor the
	workers spin on accept(2) nor flood the log: accepting pauses, one line
	says so, one line says when it works again."""
	import resource
	import time

	apps = demo_apps(1)
	conf = tmp_path / "nofile.conf"
	values = {"tmp": str(tmp_path), "port": util.free_port(), "port_stats": util.free_port()}
	conf.write_text(config_for(apps, global_extra=CONTROL_GLOBAL,
				   timeouts={"http-request": "60s", "client": "60s"}).format(**values))
	sock = str(tmp_path / "bollard.sock")

	def low_limit():
		resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
	out, err = tmp_path / "nofile.out", tmp_path / "nofile.err"
	with open(out, "wb") as fo, open(err, "wb") as fe:
		proc = subprocess.Popen([bollard_bin, "-c", str(conf)], stdout=fo, stderr=fe,
					stdin=subprocess.DEVNULL, cwd=str(tmp_path), preexec_fn=low_limit)
	clients = []
	try:
		util.wait_port(values["port"], proc=proc, what="bollard")
		util.wait_port(values["port_stats"], proc=proc, what="bollard")

		def log_text():
			return out.read_text(errors="replace") + err.read_text(errors="replace")
		# hold client connections until the worker runs out of descriptors
		for _ in range(80):
			c = util.Conn.connect(values["port"])
			c.send(b"GET /whoami HTTP/1.1\r\n")   # an unfinished head, held open
			clients.append(c)
		util.wait_until(lambda: "Too many open files" in log_text(), what="the worker at the limit")
		# and the control thread: connections it cannot accept now
		pending = [socket.create_connection(("127.0.0.1", values["port_stats"]), timeout=5)
			   for _ in range(3)]
		adm = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		adm.connect(sock)
		pending.append(adm)
		cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
		util.wait_until(lambda: time.monotonic() - t0 >= 3, what="3 s at the limit")
		cpu = cpu_seconds(proc.pid) - cpu0
		wall = time.monotonic() - t0
		text = log_text()
		assert cpu < 0.3 * wall, "%.2fs of CPU in %.2fs at the descriptor limit" % (cpu, wall)
		assert len(text) < 20000, "log grew to %d bytes at the limit:\n%s" % (len(text),
										  text[-2000:])
		# one line when a spell begins, one when it ends, for the workers and
		# for each listener of the control thread. A descriptor another
		# thread frees meanwhile (a probe connection closed late, say) ends
		# a spell and the next attempt begins another: that is two more
		# lines, not a flood, so the lines are paired rather than counted.
		lines = text.splitlines()
		for begin, end in (("accept: Too many open files: not accepting for now",
				    "accept: accepting again ("),
				   ("control: accept on stats-listen: Too many open files",
				    "control: accepting on stats-listen again ("),
				   ("control: accept on admin-socket: Too many open files",
				    "control: accepting on admin-socket again (")):
			nb = sum(begin in ln for ln in lines)
			ne = sum(end in ln for ln in lines)
			assert nb >= 1 and 0 <= nb - ne <= 1, (begin, nb, ne, text[-2000:])
		# descriptors come back: everything works again, and the log says so
		for c in clients:
			c.close()
		clients = []
		for p in pending:
			p.close()
		util.wait_until(lambda: util.request(values["port_stats"], "GET", "/metrics",
						     timeout=5).status == 200, what="/metrics again")
		assert util.request(values["port"], "GET", "/whoami").status == 200
		r = ctl(bollard_bin, sock, "show", "info")
		assert r.returncode == 0, r
		for again in ("control: accepting on stats-listen again (",
			      "control: accepting on admin-socket again (", "accept: accepting again ("):
			util.wait_until(lambda: again in log_text(), what="%r logged" % again)
	finally:
		for c in clients:
			c.close()
		util.stop_process(proc)
	assert proc.returncode == 0, err.read_text()
	text = err.read_text(errors="replace")
	assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text[-3000:]


def wait_exit(proc, timeout=15):
	try:
		return proc.wait(timeout=timeout)
	except subprocess.TimeoutExpired:
		return None


def test_second_instance_is_refused(demo_apps, bollard_factory, config_for, bollard_bin):
	"""Item 13: the same configuration started twice. The second must not
	delete the live admin socket nor share the frontend's traffic through
	SO_REUSEPORT: it refuses to start, saying why; the first goes on."""
	apps = demo_apps(1)
	a = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL))
	sock = os.path.join(tmp_of(a), "bollard.sock")
	pid_a = ctl(bollard_bin, sock, "show", "info").stdout.split("pid ")[1].split()[0]
	assert pid_a == str(a.pid)
	b = bollard_factory(a.config_text, wait=False)
	assert wait_exit(b.proc) == 1, "a second instance kept running:\n" + b.stderr_text()
	err = b.stderr_text()
	assert "another bollard (pid %d)" % a.pid in err and "bollard.sock" in err, err
	assert "started" not in err, err
	# the first one still owns everything
	r = ctl(bollard_bin, sock, "show", "info")
	assert r.returncode == 0 and "pid %d\n" % a.pid in r.stdout, r
	for _ in range(5):
		assert util.request(a.port, "GET", "/whoami").status == 200
	# once it is gone, the same configuration starts (the lock files stay)
	assert a.stop() == 0
	c = bollard_factory(a.config_text)
	r = ctl(bollard_bin, sock, "show", "info")
	assert r.returncode == 0 and "pid %d\n" % c.pid in r.stdout, r


def test_frontend_address_served_elsewhere_is_refused(demo_apps, bollard_factory, config_for):
	"""Item 13, without an admin socket or a state file to lock: a frontend
	address another process already listens on (SO_REUSEPORT would let a
	second bollard share it silently) refuses the start."""
	apps = demo_apps(1)
	a = bollard_factory(config_for(apps))
	b = bollard_factory(a.config_text, wait=False)
	assert wait_exit(b.proc) == 1, "a second instance kept running:\n" + b.stderr_text()
	err = b.stderr_text()
	assert "127.0.0.1:%d" % a.port in err and "already" in err, err
	assert a.alive() and util.request(a.port, "GET", "/whoami").status == 200


def test_state_file_must_be_a_regular_file(demo_apps, bollard_factory, config_for, tmp_path):
	"""Item 19: a FIFO as the state file blocked the start for ever (the
	open waits for a writer); a directory or a device is no better.
	Refused at once, with a clear message."""
	apps = demo_apps(1)
	fifo = tmp_path / "bollard.state"
	os.mkfifo(fifo)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL), wait=False)
	assert wait_exit(b.proc, timeout=10) == 1, "start blocked:\n" + b.stderr_text()
	err = b.stderr_text()
	assert "state-file %s: not a regular file" % fifo in err, err
	os.unlink(fifo)
	os.mkdir(fifo)
	b = bollard_factory(config_for(apps, global_extra=CONTROL_GLOBAL), wait=False)
	assert wait_exit(b.proc, timeout=10) == 1, b.stderr_text()
	assert "state-file %s: not a regular file" % fifo in b.stderr_text(), b.stderr_text()
