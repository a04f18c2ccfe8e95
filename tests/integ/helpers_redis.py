"""A redis-server of the test's own (Debian's, scripts/install-deps.sh test)
on a free loopback port in a temporary folder, and a minimal RESP client
over a raw socket (stdlib only) to look at what it holds."""

import os
import shutil
import signal
import socket
import subprocess
import time

import util


def _encode(args):
	out = [b"*%d\r\n" % len(args)]
	for a in args:
		if isinstance(a, str):
			a = a.encode()
		elif isinstance(a, int):
			a = str(a).encode()
		out.append(b"$%d\r\n%s\r\n" % (len(a), a))
	return b"".join(out)


class _Reader:
	def __init__(self, sock):
		self.sock, self.buf = sock, b""

	def _line(self):
		while b"\r\n" not in self.buf:
			d = self.sock.recv(65536)
			if not d:
				raise ConnectionError("redis closed the connection")
			self.buf += d
		line, _, self.buf = self.buf.partition(b"\r\n")
		return line

	def _exact(self, n):
		while len(self.buf) < n + 2:
			d = self.sock.recv(65536)
			if not d:
				raise ConnectionError("redis closed the connection")
			self.buf += d
		v, self.buf = self.buf[:n], self.buf[n + 2:]
		return v

	def reply(self):
		line = self._line()
		kind, rest = line[:1], line[1:]
		if kind == b"+":
			return rest.decode()
		if kind == b"-":
			raise RuntimeError(rest.decode())
		if kind == b":":
			return int(rest)
		if kind == b"$":
			n = int(rest)
			return None if n < 0 else self._exact(n)
		if kind == b"*":
			n = int(rest)
			return None if n < 0 else [self.reply() for _ in range(n)]
		raise RuntimeError("bad reply %r" % line)


class Redis:
	"""redis-server on a free port, its files in dir. .port .pid, cmd(),
	kill(), stop() (SIGSTOP) / cont(), restart() (empty)."""

	def __init__(self, dir):
		self.dir = str(dir)
		self.port = util.free_port()
		self.proc = None
		os.makedirs(self.dir, exist_ok=True)

	def spawn(self, *extra):
		"""Started, not waited for (it may be loading its dump.rdb);
		extra: more redis-server arguments."""
		binary = shutil.which("redis-server")
		assert binary, "redis-server missing: scripts/install-deps.sh test installs it"
		log = open(os.path.join(self.dir, "redis.log"), "ab")
		self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1",
					      "--dir", self.dir, "--save", "", "--appendonly", "no",
					      "--enable-debug-command", "local",
					      "--daemonize", "no", *extra], stdout=log, stderr=log)
		log.close()
		return self.proc

	def start(self):
		self.spawn()
		util.wait_until(self.answers, timeout=10, what="redis-server answering")
		return self

	@property
	def pid(self):
		return self.proc.pid

	def answers(self):
		try:
			return self.cmd("PING", timeout=0.5) == "PONG"
		except (OSError, RuntimeError):
			return False

	def cmd(self, *args, timeout=2.0):
		with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
			s.sendall(_encode(args))
			return _Reader(s).reply()

	def info(self, field, section="stats"):
		text = self.cmd("INFO", section).decode()
		for line in text.splitlines():
			if line.startswith(field + ":"):
				return line.split(":", 1)[1].strip()
		return None

	def keys(self, pattern="*"):
		return sorted(k.decode() for k in self.cmd("KEYS", pattern))

	def get(self, key):
		v = self.cmd("GET", key)
		return v.decode() if v is not None else None

	def kill(self):
		if self.proc and self.proc.poll() is None:
			self.proc.send_signal(signal.SIGCONT)
			self.proc.kill()
			self.proc.wait(timeout=10)

	def sigstop(self):
		self.proc.send_signal(signal.SIGSTOP)

	def sigcont(self):
		self.proc.send_signal(signal.SIGCONT)

	def restart(self):
		"""Killed, then started again empty on the same port."""
		self.kill()
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline:
			try:
				self.start()
				return self
			except AssertionError:
				self.kill()  # the port was not free yet
		raise AssertionError("redis-server did not restart on port %d" % self.port)

	def close(self):
		self.kill()
