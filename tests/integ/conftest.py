"""Shared pytest fixtures for bollard's black-box integration tests.

The tests drive the real binaries through their public interfaces only
(SPEC §2-4, §7, §8): a configuration file, the command line, sockets, and the
access log. Every process or server a fixture starts is stopped at teardown
by PID (SIGTERM, then SIGKILL after a bound), every wait is bounded.

Fixtures
--------
bollard_bin, demo_bin
    Paths of the binaries under test: $BOLLARD_BIN (default
    build/san/bollard, the ASan/UBSan build) and $BOLLARD_DEMO_BIN (default
    build/bollard-demo-app).

demo_apps(n, threads=1, names=None, extra_args=()) -> [DemoApp]
    Starts n demo apps on free loopback ports, named app1..appN (or names),
    waits until each listens. DemoApp has .name .port .pid .proc and
    .stats() (the app's /stats JSON, asked directly, not through bollard;
    util.AppActivity(apps) turns it into "requests/connections since").

bollard_factory(config, wait=True, **values) -> Bollard
    Writes config to tmp_path/bollard.conf after str.format_map() with
    values; any placeholder named {port...} not given (e.g. {port},
    {port_fe2}) gets a fresh free port; {tmp} is tmp_path; write {{ and }}
    for literal braces. Starts bollard
    with stdout/stderr captured to files and waits (10 s) until every
    `bind` and `stats-listen` address of the file accepts; if bollard exits
    first, the test fails with its stderr. Bollard has .pid .proc .port
    (the value of {port}, else the first port allocated) .ports (dict)
    .conf_path, .log_lines(), .access_log() (parsed entries, combined or
    JSON), .wait_log(pred, n=1), .stderr_text(), .stop(sig=SIGTERM,
    timeout) -> exit code. At teardown, an ASan/UBSan report on its stderr
    fails the test.

bollard_run(*args, config=None, timeout=10) -> CompletedProcess
    Runs the binary to completion (check, --version, --help); when config
    is given it is written to tmp_path/check.conf and `{conf}` in args is
    replaced by its path.

py_backend(respond=None, handler=None) -> PyBackend
    A tiny threaded Python TCP server on a free port for scripted raw
    behaviour. respond(req, backend) is called for each request parsed with
    util.read_request() on a keep-alive loop and returns the raw bytes to
    send, None to close without answering, or (bytes, True) to send then
    close. handler(conn, backend) instead takes the whole connection
    (util.Conn). PyBackend has .port, .accepted (connections accepted),
    .requests (every util.Request seen), .close().

config_for(servers, balance=..., threads=1, log_format=None, *_extra=...,
	timeouts={...}, retries=None, bind=..., grace="2s") -> str
    The function simple_config(): a configuration with one frontend `fe`
    bound to {port} and one backend `be` listing servers (DemoApp,
    PyBackend or (name, port[, options]) tuples), ready for
    bollard_factory().

proxy -> (Bollard, [DemoApp])
    One demo app behind bollard with simple_config().
"""

import os
import re
import signal
import socketserver
import subprocess
import threading
from pathlib import Path

import pytest

import util

ROOT = Path(__file__).resolve().parents[2]
BOLLARD_BIN = os.environ.get("BOLLARD_BIN", str(ROOT / "build" / "san" / "bollard"))
DEMO_BIN = os.environ.get("BOLLARD_DEMO_BIN", str(ROOT / "build" / "bollard-demo-app"))

SAN_ENV = {
	"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
	"UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
	# `make tsan`: report every race (the test fails on the report) and go on
	"TSAN_OPTIONS": "halt_on_error=0:second_deadlock_stack=1",
}
SAN_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
	       "WARNING: ThreadSanitizer",
	       "SUMMARY: UndefinedBehaviorSanitizer")


def _env():
	env = dict(os.environ)
	for k, v in SAN_ENV.items():
		env.setdefault(k, v)
	return env


def _need(path, what):
	if not os.access(path, os.X_OK):
		pytest.fail("%s not built: %s (run `make build/san/bollard build/bollard-demo-app`)"
			    % (what, path))


@pytest.fixture(scope="session")
def bollard_bin():
	_need(BOLLARD_BIN, "bollard")
	return BOLLARD_BIN


@pytest.fixture(scope="session")
def demo_bin():
	_need(DEMO_BIN, "bollard-demo-app")
	return DEMO_BIN


# ---------------------------------------------------------------- demo apps

class DemoApp:
	def __init__(self, name, port, proc):
		self.name = name
		self.port = port
		self.proc = proc
		self.pid = proc.pid

	def stats(self):
		"""The app's own counters, asked directly (this costs one accepted
		connection, which callers account for)."""
		return util.request(self.port, "GET", "/stats").json()

	def __repr__(self):
		return "<DemoApp %s :%d pid %d>" % (self.name, self.port, self.pid)


@pytest.fixture
def demo_apps(demo_bin, tmp_path):
	started = []

	def start(n, threads=1, names=None, extra_args=()):
		names = names or ["app%d" % (i + 1) for i in range(n)]
		apps = []
		for name in names:
			for _attempt in range(3):
				port = util.free_port()
				args = [demo_bin, "--name", name, "--port", str(port)]
				if threads:
					args += ["--threads", str(threads)]
				args += list(extra_args)
				proc = util.start_process(args, tmp_path / ("%s.out" % name),
							  tmp_path / ("%s.err" % name), env=_env())
				started.append(proc)
				try:
					util.wait_port(port, proc=proc, what="demo app %s" % name)
					break
				except AssertionError:
					# The port may have been taken between choosing and
					# binding it; try another one.
					util.stop_process(proc, signal.SIGKILL)
					if _attempt == 2:
						raise AssertionError("demo app %s did not start: %s" % (
							name, (tmp_path / ("%s.err" % name)).read_text(errors="replace")))
			apps.append(DemoApp(name, port, proc))
		return apps

	yield start
	for p in started:
		util.stop_process(p, signal.SIGTERM, timeout=3)


# ---------------------------------------------------------------- bollard

class _Values(dict):
	"""format_map() mapping that allocates a free port for unknown {port*}."""

	def __init__(self, *a, **kw):
		super().__init__(*a, **kw)
		self.allocated = []

	def __missing__(self, key):
		if key.startswith("port"):
			p = util.free_port()
			self[key] = p
			self.allocated.append(key)
			return p
		raise KeyError(key)


BIND_RE = re.compile(r"^\s+(?:bind|stats-listen)\s+(\S+)", re.M)
GLOBAL_STATS_RE = re.compile(r"^\s+stats-listen\s+(\S+)", re.M)


def _split_addr(text):
	if text.startswith("["):
		host, _, port = text[1:].partition("]:")
		return host, int(port)
	host, _, port = text.rpartition(":")
	return host or "127.0.0.1", int(port)


class Bollard:
	def __init__(self, proc, conf_path, out_path, err_path, ports, main_port, text):
		self.proc = proc
		self.pid = proc.pid
		self.conf_path = conf_path
		self.stdout_path = out_path
		self.stderr_path = err_path
		self.ports = ports
		self.port = main_port
		self.config_text = text

	def log_lines(self):
		"""Lines written so far on stdout (the access log with `log stdout`)."""
		try:
			data = Path(self.stdout_path).read_text(errors="replace")
		except FileNotFoundError:
			return []
		# A line still being written has no newline yet: leave it out.
		lines = data.split("\n")
		return [ln for ln in lines[:-1] if ln.strip()]

	def access_log(self):
		"""Parsed access-log entries (combined or JSON), unparseable lines
		returned as {'unparsed': line}."""
		out = []
		for ln in self.log_lines():
			d = util.parse_json_line(ln) if ln.lstrip().startswith("{") else util.parse_combined(ln)
			out.append(d if d is not None else {"unparsed": ln})
		return out

	def wait_log(self, pred=lambda e: True, n=1, timeout=10.0):
		"""Wait until at least n parsed entries satisfy pred; returns them."""
		def ok():
			got = [e for e in self.access_log() if "unparsed" not in e and pred(e)]
			return got if len(got) >= n else None
		try:
			return util.wait_until(ok, timeout=timeout, what="%d access-log entries" % n)
		except AssertionError:
			raise AssertionError("access log has not got %d matching entries; it is:\n%s"
					     % (n, "\n".join(self.log_lines()[-30:])))

	def stderr_text(self):
		try:
			return Path(self.stderr_path).read_text(errors="replace")
		except FileNotFoundError:
			return ""

	def alive(self):
		return self.proc.poll() is None

	def stop(self, sig=signal.SIGTERM, timeout=10.0):
		return util.stop_process(self.proc, sig, timeout)

	def sanitizer_report(self):
		err = self.stderr_text()
		for m in SAN_MARKERS:
			if m in err:
				return err
		return None


@pytest.fixture
def bollard_factory(bollard_bin, tmp_path):
	started = []
	counter = [0]

	def start(config, wait=True, **values):
		vals = _Values(values)
		vals.setdefault("tmp", str(tmp_path))
		text = config.format_map(vals)
		counter[0] += 1
		suffix = "" if counter[0] == 1 else str(counter[0])
		conf = tmp_path / ("bollard%s.conf" % suffix)
		conf.write_text(text)
		out = tmp_path / ("bollard%s.out" % suffix)
		err = tmp_path / ("bollard%s.err" % suffix)
		proc = util.start_process([bollard_bin, "-c", str(conf)], out, err, env=_env(),
					  cwd=str(tmp_path))
		ports = {k: v for k, v in vals.items() if k.startswith("port")}
		main = vals.get("port")
		if main is None and vals.allocated:
			main = vals[vals.allocated[0]]
		b = Bollard(proc, conf, out, err, ports, main, text)
		started.append(b)
		if wait:
			for addr in BIND_RE.findall(text):
				host, port = _split_addr(addr)
				if host in ("0.0.0.0", "*", ""):
					host = "127.0.0.1"
				elif host == "::":
					host = "::1"
				try:
					util.wait_port(port, host=host, proc=proc, what="bollard")
				except AssertionError as e:
					raise AssertionError("%s\n--- config ---\n%s\n--- stderr ---\n%s"
							     % (e, text, b.stderr_text()))
		return b

	yield start
	reports = []
	for b in started:
		b.stop(signal.SIGTERM, timeout=5)
		rep = b.sanitizer_report()
		if rep:
			reports.append(rep)
	if reports:
		pytest.fail("sanitizer report from bollard:\n" + "\n".join(r[-6000:] for r in reports))


@pytest.fixture
def bollard_run(bollard_bin, tmp_path):
	def run(*args, config=None, timeout=10):
		conf = tmp_path / "check.conf"
		if config is not None:
			conf.write_text(config)
		argv = [bollard_bin] + [str(conf) if a == "{conf}" else a for a in args]
		return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
				      env=_env(), cwd=str(tmp_path))
	return run


# ---------------------------------------------------------------- scripted Python backends

class PyBackend:
	def __init__(self, respond=None, handler=None):
		self.respond = respond
		self.handler = handler
		self.accepted = 0
		self.requests = []
		self.lock = threading.Lock()
		self.conns = []
		backend = self

		class H(socketserver.BaseRequestHandler):
			def handle(self):
				with backend.lock:
					backend.accepted += 1
				conn = util.Conn(self.request, timeout=15)
				with backend.lock:
					backend.conns.append(conn)
				try:
					if backend.handler:
						backend.handler(conn, backend)
					else:
						backend._loop(conn)
				except (util.Closed, OSError, AssertionError):
					pass

		class S(socketserver.ThreadingTCPServer):
			daemon_threads = True
			allow_reuse_address = True
			# socketserver's default backlog is 5: bollard opening more
			# server connections at once than that overflows the accept
			# queue, and the kernel then drops handshakes for a while
			request_queue_size = 512

		self.server = S(("127.0.0.1", 0), H)
		self.port = self.server.server_address[1]
		self.thread = threading.Thread(target=self.server.serve_forever,
					       kwargs={"poll_interval": 0.05}, daemon=True)
		self.thread.start()

	def _loop(self, conn):
		while True:
			req = util.read_request(conn)
			if req is None:
				return
			with self.lock:
				self.requests.append(req)
			out = self.respond(req, self)
			if out is None:
				return
			close = False
			if isinstance(out, tuple):
				out, close = out
			conn.send(out)
			if close:
				return

	def close(self):
		self.server.shutdown()
		self.server.server_close()
		with self.lock:
			for c in self.conns:
				c.close()


@pytest.fixture
def py_backend():
	made = []

	def make(respond=None, handler=None):
		b = PyBackend(respond, handler)
		made.append(b)
		return b

	yield make
	for b in made:
		b.close()


# ---------------------------------------------------------------- configurations

def simple_config(servers, balance="roundrobin", threads=1, log_format=None,
		  global_extra="", defaults_extra="", frontend_extra="", backend_extra="",
		  timeouts=None, retries=None, bind="127.0.0.1:{port}", grace="2s"):
	"""One frontend `fe` on {port} to one backend `be`. servers: DemoApp,
	PyBackend, or (name, port[, options]) tuples."""
	to = {"connect": "1s", "client": "10s", "server": "10s", "http-request": "5s",
	      "http-keep-alive": "5s"}
	to.update(timeouts or {})
	lines = ["global", "    threads %d" % threads, "    log stdout", "    grace %s" % grace]
	if log_format:
		lines.append("    log-format %s" % log_format)
	lines += [ln for ln in global_extra.splitlines() if ln.strip()]
	lines += ["", "defaults"]
	lines += ["    timeout %s %s" % kv for kv in to.items()]
	if retries is not None:
		lines.append("    retries %d" % retries)
	lines += [ln for ln in defaults_extra.splitlines() if ln.strip()]
	lines += ["", "frontend fe", "    bind %s" % bind, "    default-backend be"]
	lines += [ln for ln in frontend_extra.splitlines() if ln.strip()]
	lines += ["", "backend be", "    balance %s" % balance]
	lines += [ln for ln in backend_extra.splitlines() if ln.strip()]
	for i, s in enumerate(servers):
		if isinstance(s, DemoApp):
			lines.append("    server %s 127.0.0.1:%d" % (s.name, s.port))
		elif isinstance(s, PyBackend):
			lines.append("    server py%d 127.0.0.1:%d" % (i + 1, s.port))
		else:
			name, port = s[0], s[1]
			opts = (" " + s[2]) if len(s) > 2 and s[2] else ""
			lines.append("    server %s 127.0.0.1:%d%s" % (name, port, opts))
	return "\n".join(lines) + "\n"


@pytest.fixture
def config_for():
	return simple_config


@pytest.fixture
def proxy(demo_apps, bollard_factory):
	"""Most common setup: one demo app behind bollard (1 thread).
	Returns (bollard, [app])."""
	apps = demo_apps(1)
	b = bollard_factory(simple_config(apps))
	return b, apps
