"""The session stores of the alternatives lab (SPEC 14), started from the
Debian packages on loopback ports in a temporary folder: redis-server,
memcached and PostgreSQL. Used by lab/lab.py and by the integration tests
(tests/integ/test_demo_stores.py, test_lab_smoke.py); stdlib only.

Every server runs in the foreground as a child of the caller, its output
in a file of its folder, and is stopped by its PID. kill() is a crash
(SIGKILL, what the lab's "kill the store" phase does); start() again
brings the same server back on the same port and folder: Redis (run as a
cache, no persistence) and Memcached come back empty, PostgreSQL recovers
its table from its write-ahead log.

PostgreSQL refuses to run as root, so when we are root initdb and postgres
run as an unprivileged user ("postgres", created by Debian's package, else
"nobody") in a folder of their own under /tmp that this user owns.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

START_TIMEOUT = 30.0


def free_port():
	with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def pg_bindir():
	"""The newest /usr/lib/postgresql/*/bin holding initdb, or None."""
	dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
		      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
	return os.path.dirname(dirs[-1]) if dirs else None


def missing():
	"""{store: reason} for the stores whose server is not installed."""
	out = {}
	if not shutil.which("redis-server"):
		out["redis"] = "redis-server not installed (scripts/install-deps.sh stores)"
	if not shutil.which("memcached"):
		out["memcached"] = "memcached not installed (scripts/install-deps.sh stores)"
	if not pg_bindir():
		out["postgresql"] = "PostgreSQL not installed (scripts/install-deps.sh stores)"
	return out


def cpu_seconds(pid):
	"""CPU time of every thread of pid, in seconds, from the scheduler's
	nanosecond accounting (/proc/PID/task/*/schedstat): clock ticks of
	/proc/PID/stat are 10 ms, too coarse for a store doing a few ms of work
	in a phase. 0 for a process that is gone."""
	total = 0
	try:
		tids = os.listdir("/proc/%d/task" % pid)
	except OSError:
		return 0.0
	for t in tids:
		try:
			with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
				total += int(f.read().split()[0])
		except (OSError, ValueError, IndexError):
			pass
	return total / 1e9


def _children(pid):
	out = []
	try:
		tids = os.listdir("/proc/%d/task" % pid)
	except OSError:
		return out
	for t in tids:           # a child is listed by the thread that forked it
		try:
			with open("/proc/%d/task/%s/children" % (pid, t)) as f:
				out += [int(x) for x in f.read().split()]
		except OSError:
			pass
	return out


class Server:
	"""One store server process: start(), kill(), stop(), cpu()."""

	name = "?"

	def __init__(self, workdir, port=None):
		self.workdir = workdir
		self.port = port or free_port()
		self.proc = None
		self.starts = 0
		self.seen = {}           # pid -> CPU seconds last read (cpu())

	def argv(self):
		raise NotImplementedError

	def popen_kw(self):
		return {}

	def ready(self):
		raise NotImplementedError

	def url(self):
		raise NotImplementedError

	def start(self, timeout=START_TIMEOUT):
		self.starts += 1
		log = open(os.path.join(self.logdir(), "%s.%d.log" % (self.name, self.starts)), "wb")
		try:
			self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
						     stdin=subprocess.DEVNULL, **self.popen_kw())
		finally:
			log.close()
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.proc.poll() is not None:
				raise RuntimeError("%s exited with %s before it was ready: %s"
						   % (self.name, self.proc.returncode, self.log_tail()))
			if self.ready():
				return self
			time.sleep(0.05)
		self.stop()
		raise RuntimeError("%s not ready within %.0fs: %s" % (self.name, timeout, self.log_tail()))

	def logdir(self):
		return self.workdir

	def log_tail(self, n=2000):
		p = os.path.join(self.logdir(), "%s.%d.log" % (self.name, self.starts))
		try:
			with open(p, "rb") as f:
				return f.read()[-n:].decode(errors="replace")
		except OSError:
			return ""

	def alive(self):
		return self.proc is not None and self.proc.poll() is None

	def pids(self):
		"""The server and its children (PostgreSQL's backends)."""
		if not self.alive():
			return []
		return [self.proc.pid] + _children(self.proc.pid)

	def cpu(self):
		"""CPU seconds the server has used, across restarts: its processes
		and their children (PostgreSQL's backends), each counted up to
		the last time it was seen alive, so that a backend that ends
		with its client (or a server that is killed) keeps its share."""
		for p in self.pids():
			c = cpu_seconds(p)
			if c > self.seen.get(p, 0.0):
				self.seen[p] = c
		return sum(self.seen.values())

	def kill(self):
		"""A crash: SIGKILL, and wait for the port to be free."""
		if not self.alive():
			return
		self.cpu()               # what it used until now stays counted
		kids = _children(self.proc.pid)
		os.kill(self.proc.pid, signal.SIGKILL)
		self.proc.wait(10)
		for k in kids:               # PostgreSQL's backends end with their postmaster
			try:
				os.kill(k, signal.SIGKILL)
			except ProcessLookupError:
				pass
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline and self._port_open():
			time.sleep(0.05)

	stop_signal = signal.SIGTERM

	def stop(self, timeout=10.0):
		if not self.alive():
			return
		os.kill(self.proc.pid, self.stop_signal)
		try:
			self.proc.wait(timeout)
		except subprocess.TimeoutExpired:
			self.kill()

	def close(self):
		"""Stop for good: resume it if a test stopped it (SIGSTOP), stop it,
		and remove what it keeps outside the caller's folder."""
		for pid in self.pids():
			try:
				os.kill(pid, signal.SIGCONT)
			except ProcessLookupError:
				pass
		self.stop()

	def _port_open(self):
		try:
			with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
				return True
		except OSError:
			return False

	def _ask(self, data, expect):
		try:
			with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
				s.sendall(data)
				got = b""
				while expect not in got and len(got) < 4096:
					d = s.recv(4096)
					if not d:
						break
					got += d
				return expect in got
		except OSError:
			return False


class Redis(Server):
	name = "redis"

	def argv(self):
		# A session cache: no snapshots, no append-only file.
		return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
			"--dir", self.workdir, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--protected-mode", "no", "--io-threads", "1"]

	def ready(self):
		return self._ask(b"PING\r\n", b"+PONG")

	def url(self):
		return "redis://127.0.0.1:%d" % self.port

	def command(self, *args):
		"""One command in RESP; the raw answer (for tests)."""
		req = b"*%d\r\n" % len(args)
		for a in args:
			a = a if isinstance(a, bytes) else str(a).encode()
			req += b"$%d\r\n%s\r\n" % (len(a), a)
		with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
			s.sendall(req)
			s.settimeout(5)
			data = s.recv(65536)
			# a bulk string may need more reads
			if data.startswith(b"$") and not data.startswith(b"$-1"):
				n = int(data[1:data.index(b"\r\n")])
				while len(data) < data.index(b"\r\n") + 2 + n + 2:
					data += s.recv(65536)
			return data


class Memcached(Server):
	name = "memcached"

	def argv(self):
		a = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
		     "-t", "1", "-c", "4096"]
		if os.geteuid() == 0:
			a += ["-u", "nobody"]   # memcached will not run as root otherwise
		return a

	def ready(self):
		return self._ask(b"version\r\n", b"VERSION")

	def url(self):
		return "memcached://127.0.0.1:%d" % self.port


class Postgres(Server):
	name = "postgresql"
	stop_signal = signal.SIGINT     # "fast" shutdown: SIGTERM waits for every client

	def __init__(self, workdir, port=None):
		super().__init__(workdir, port)
		self.bindir = pg_bindir()
		if not self.bindir:
			raise RuntimeError("PostgreSQL not installed (scripts/install-deps.sh stores)")
		self.user = None
		if os.geteuid() == 0:
			for name in ("postgres", "nobody"):
				try:
					self.user = pwd.getpwnam(name)
					break
				except KeyError:
					continue
			if self.user is None:
				raise RuntimeError("no unprivileged user to run PostgreSQL as")
		# Its own folder, owned by that user (the caller's may be 0700 root).
		self.pgdir = tempfile.mkdtemp(prefix="bollard-pg-")
		self.data = os.path.join(self.pgdir, "data")
		if self.user:
			os.chown(self.pgdir, self.user.pw_uid, self.user.pw_gid)
		self._initdb()

	def popen_kw(self):
		if not self.user:
			return {}
		return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
			"cwd": self.pgdir}

	def logdir(self):
		return self.pgdir

	def _initdb(self):
		cp = subprocess.run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "lab",
				     "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
				    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
				    stdin=subprocess.DEVNULL, **self.popen_kw())
		if cp.returncode != 0:
			raise RuntimeError("initdb failed: %s" % cp.stdout.decode(errors="replace")[-2000:])

	def argv(self):
		return [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.pgdir,
			"-c", "max_connections=200", "-c", "logging_collector=off"]

	def ready(self):
		cp = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", "127.0.0.1",
				     "-p", str(self.port), "-U", "lab", "-d", "postgres", "-t", "1"],
				    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
		return cp.returncode == 0

	def url(self):
		return "postgresql://lab@127.0.0.1:%d/postgres" % self.port

	def sql(self, query):
		"""Run query with psql; its unaligned output (for tests)."""
		cp = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
				     "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
				     "-U", "lab", "-d", "postgres", "-c", query],
				    capture_output=True, text=True, timeout=30)
		if cp.returncode != 0:
			raise RuntimeError("psql %r: %s" % (query, cp.stderr))
		return cp.stdout.strip()

	def close(self):
		super().close()
		shutil.rmtree(self.pgdir, ignore_errors=True)


KINDS = {"redis": Redis, "memcached": Memcached, "postgresql": Postgres}
