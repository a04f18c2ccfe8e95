"""The command line of SPEC §2: --version, --help, `check -c FILE` with
FILE:LINE: messages and suggestions, a bad configuration at start being an
exit (never a crash), and SIGINT/SIGTERM stopping with exit 0."""

import os
import re
import signal
import socket
import subprocess

import util

GOOD = """\
global
    threads 1
    log stdout
    grace 2s

defaults
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2

frontend web
    bind 127.0.0.1:{port}
    default-backend app

backend app
    balance roundrobin
    server app1 127.0.0.1:{srv}
"""


def _out(r):
	return r.stdout + r.stderr


def test_version(bollard_run):
	r = bollard_run("--version")
	assert r.returncode == 0, _out(r)
	assert re.search(r"^bollard \d+\.\d+\.\d+", r.stdout, re.M), r.stdout


def test_help(bollard_run):
	r = bollard_run("--help")
	assert r.returncode == 0, _out(r)
	text = _out(r)
	assert "usage" in text.lower(), text
	assert "-c" in text and "check" in text, text
	# every signal bollard acts on, the reload first (issue 10 item 11)
	for sig in ("SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"):
		assert sig in text, text


def test_unknown_option_is_an_error(bollard_run):
	r = bollard_run("--no-such-option")
	assert r.returncode > 0, _out(r)


def _busy_port():
	"""A listening socket without SO_REUSEPORT: bollard cannot bind its
	port, so a run fails at once, while a configuration test (which never
	binds) succeeds."""
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	s.listen(1)
	return s


def _one_usage_line(r, *words):
	assert r.returncode == 2, _out(r)
	assert r.stdout == "", _out(r)
	lines = r.stderr.splitlines()
	assert len(lines) == 1, _out(r)
	for w in words:
		assert w in lines[0], _out(r)


def test_config_test_never_binds(bollard_run):
	# issue 10 item 1: `-t` (as nginx -t) is check, wherever it stands, and
	# neither form binds: the port below is taken, a start would fail.
	busy = _busy_port()
	try:
		conf = GOOD.format(port=busy.getsockname()[1], srv=1235)
		for args in (("-c", "{conf}", "-t"), ("-t", "-c", "{conf}"), ("check", "-c", "{conf}"),
			     ("check", "-t", "-c", "{conf}")):
			r = bollard_run(*args, config=conf)
			assert r.returncode == 0, (args, _out(r))
			assert "configuration valid" in r.stdout, (args, _out(r))
	finally:
		busy.close()


def test_misplaced_words_are_usage_errors(bollard_run):
	# None of these may start a proxy (the port is taken, so a start would
	# exit 1): each is a usage error, one line, exit 2.
	busy = _busy_port()
	try:
		conf = GOOD.format(port=busy.getsockname()[1], srv=1235)
		cases = [
			(("-c", "{conf}", "check"), ("'check' must come first", "bollard check -c FILE")),
			(("-c", "{conf}", "--foreground"), ("unknown option '--foreground'", "expected")),
			(("-c", "{conf}", "-d"), ("unknown option '-d'",)),
			(("-c", "{conf}", "extra"), ("unexpected word 'extra'",)),
			(("check", "-c", "{conf}", "extra"), ("unexpected word 'extra'",)),
			(("-c", "{conf}", "-c", "{conf}"), ("-c given twice",)),
			(("--version", "extra"), ("unexpected word 'extra' after --version",)),
			(("frobnicate",), ("unknown command 'frobnicate'",)),
			((), ("missing -c FILE",)),
		]
		for args, words in cases:
			_one_usage_line(bollard_run(*args, config=conf), *words)
	finally:
		busy.close()


def test_missing_option_values_say_so(bollard_run):
	_one_usage_line(bollard_run("-c"), "-c needs a FILE", "bollard -c FILE")
	_one_usage_line(bollard_run("check", "-c"), "-c needs a FILE", "bollard check -c FILE")
	_one_usage_line(bollard_run("check"), "missing -c FILE", "bollard check -c FILE")
	_one_usage_line(bollard_run("ctl", "-s"), "-s needs a SOCKET path")
	_one_usage_line(bollard_run("ctl", "-c"), "-c needs a configuration FILE")
	_one_usage_line(bollard_run("ctl", "-s", "x.sock"), "missing COMMAND")
	_one_usage_line(bollard_run("ctl", "--bogus", "help"), "unknown option '--bogus'")
	_one_usage_line(bollard_run("ctl", "-s", "a", "-s", "b", "help"), "-s given twice")


def test_check_valid(bollard_run):
	r = bollard_run("check", "-c", "{conf}",
			config=GOOD.format(port=util.free_port(), srv=util.free_port()))
	assert r.returncode == 0, _out(r)
	out = r.stdout.strip()
	assert out == "" or "configuration valid" in out, out


def test_check_misspelt_keyword_suggests(bollard_run):
	conf = GOOD.format(port=1234, srv=1235).replace("    balance roundrobin", "    balanse roundrobin")
	line = conf.splitlines().index("    balanse roundrobin") + 1
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	text = _out(r)
	assert re.search(r"check\.conf:%d: " % line, text), text
	assert "did you mean 'balance'" in text, text


def test_check_reports_every_error(bollard_run):
	conf = GOOD.format(port=1234, srv=1235)
	conf = conf.replace("    timeout connect 1s", "    timeout connect soon")
	conf = conf.replace("    balance roundrobin", "    balance bogus-algo")
	lines = conf.splitlines()
	l1 = lines.index("    timeout connect soon") + 1
	l2 = lines.index("    balance bogus-algo") + 1
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	text = _out(r)
	assert re.search(r"check\.conf:%d: \S" % l1, text), text
	assert re.search(r"check\.conf:%d: \S" % l2, text), text
	# Each error on its own FILE:LINE: line.
	for ln in text.splitlines():
		if ln.strip():
			assert re.match(r"^\S*check\.conf:\d+: ", ln) or "error" in ln.lower(), ln


def test_check_unknown_backend_reference(bollard_run):
	conf = GOOD.format(port=1234, srv=1235).replace("default-backend app", "default-backend nope")
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	# The error may be reported on the directive's line or the section's.
	assert re.search(r"check\.conf:\d+: .*nope", _out(r)), _out(r)


def test_check_persist_errors(bollard_run):
	# A persistence line with a bad option is refused with its line, never
	# silently ignored (an operator would believe sessions are sticky).
	conf = GOOD.format(port=1234, srv=1235).replace(
		"    balance roundrobin",
		"    balance roundrobin\n    persist cookie BOLLARD insert max-idel 30m\n    persist souce")
	lines = conf.splitlines()
	l1 = lines.index("    persist cookie BOLLARD insert max-idel 30m") + 1
	l2 = lines.index("    persist souce") + 1
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	assert re.search(r"check\.conf:%d: unknown option 'max-idel'" % l1, _out(r)), _out(r)
	assert re.search(r"check\.conf:%d: unknown persistence method 'souce'" % l2, _out(r)), _out(r)
	good = GOOD.format(port=1234, srv=1235).replace(
		"    balance roundrobin",
		"    balance roundrobin\n    persist cookie BOLLARD insert max-idle 30m\n    persist source mask4 24")
	r = bollard_run("check", "-c", "{conf}", config=good)
	assert r.returncode == 0, _out(r)


def test_check_missing_file(bollard_run, tmp_path):
	r = bollard_run("check", "-c", str(tmp_path / "absent.conf"))
	assert r.returncode == 1, _out(r)
	assert "absent.conf" in _out(r), _out(r)


def test_bad_config_at_start_exits_cleanly(bollard_run):
	conf = GOOD.format(port=util.free_port(), srv=1235).replace("    balance roundrobin",
								     "    balanse roundrobin")
	r = bollard_run("-c", "{conf}", config=conf)
	assert r.returncode > 0, _out(r)  # an exit, not a signal (crash)
	assert re.search(r"check\.conf:\d+: ", _out(r)), _out(r)
	assert "Sanitizer" not in _out(r), _out(r)


def test_bind_in_use_exits_cleanly(bollard_run):
	busy = socket.socket()
	busy.bind(("127.0.0.1", 0))
	busy.listen(1)
	try:
		conf = GOOD.format(port=busy.getsockname()[1], srv=1235)
		r = bollard_run("-c", "{conf}", config=conf)
	finally:
		busy.close()
	assert r.returncode > 0, _out(r)
	assert "Sanitizer" not in _out(r), _out(r)


def test_sigint_and_sigterm_exit_zero(bollard_factory):
	for sig in (signal.SIGINT, signal.SIGTERM):
		b = bollard_factory(GOOD, srv=util.free_port())
		assert b.alive()
		rc = b.stop(sig, timeout=10)
		assert rc == 0, "exit %s on %s; stderr:\n%s" % (rc, sig, b.stderr_text())


def test_check_refuses_files_that_are_not_regular(bollard_run, tmp_path):
	# /dev/zero used to be read as one endless line (5 GB and growing), a
	# FIFO blocked until a writer came: both are refused at once.
	fifo = tmp_path / "conf.fifo"
	os.mkfifo(fifo)
	for path, kind in (("/dev/zero", "a character device"), (str(fifo), "a FIFO")):
		r = bollard_run("check", "-c", path, timeout=20)
		assert r.returncode == 1, _out(r)
		assert "%s:0: cannot read configuration: %s, not a regular file" % (path, kind) in _out(r), _out(r)


def test_check_caps_line_length(bollard_run):
	conf = GOOD.format(port=1234, srv=1235).replace("    threads 1", "    threads 1" + "1" * 100000)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	assert re.search(r"check\.conf:2: line longer than 65536 bytes$", _out(r), re.M), _out(r)


def test_check_and_start_agree(bollard_run, tmp_path):
	# issue 10 item 2: what a start refuses, check refuses, with the same words.
	key = tmp_path / "cookie.key"
	key.write_text("0123456789abcdef" * 4 + "\n")
	key.chmod(0o644)
	conf = GOOD.format(port=util.free_port(), srv=1235).replace(
		"    grace 2s", "    grace 2s\n    secret-file %s" % key)
	line = conf.splitlines().index("    secret-file %s" % key) + 1
	want = "check.conf:%d: secret-file %s is readable by others (mode 0644); chmod 600 it" % (line, key)
	for args in (("check", "-c", "{conf}"), ("-c", "{conf}")):
		r = bollard_run(*args, config=conf)
		assert r.returncode == 1, (args, _out(r))
		assert want in r.stderr, (args, _out(r))
	key.chmod(0o600)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 0, _out(r)

	# an access log a start could not open
	bad_log = conf.replace("    log stdout", "    log file %s" % (tmp_path / "no" / "such" / "access.log"))
	for args in (("check", "-c", "{conf}"), ("-c", "{conf}")):
		r = bollard_run(*args, config=bad_log)
		assert r.returncode == 1, (args, _out(r))
		assert "cannot open log file %s" % (tmp_path / "no" / "such" / "access.log") in r.stderr, \
			(args, _out(r))
	assert not (tmp_path / "no").exists()


def test_check_says_what_it_did_not_check(bollard_run, tmp_path):
	port = util.free_port()
	conf = GOOD.format(port=port, srv=1235).replace(
		"    grace 2s", "    grace 2s\n    admin-socket %s/b.sock" % tmp_path)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 0, _out(r)
	assert re.search(r"^\S*check\.conf: not checked \(only a start binds\): bind 127\.0\.0\.1:%d, "
			 r"admin-socket %s/b\.sock$" % (port, re.escape(str(tmp_path))), r.stdout, re.M), _out(r)
	assert not (tmp_path / "b.sock").exists()


def test_started_is_logged_only_when_every_listener_is_bound(bollard_run):
	# a busy stats-listen port: the start fails, and never said "started"
	busy = _busy_port()
	stats = "127.0.0.1:%d" % busy.getsockname()[1]
	try:
		conf = GOOD.format(port=util.free_port(), srv=1235).replace(
			"    grace 2s", "    grace 2s\n    stats-listen %s" % stats)
		r = bollard_run("-c", "{conf}", config=conf)
	finally:
		busy.close()
	assert r.returncode == 1, _out(r)
	assert stats in r.stderr, _out(r)
	assert "started" not in _out(r), _out(r)


def test_durations_need_a_unit(bollard_run):
	# issue 10 item 5: `max-idle 30` was silently 30 ms.
	base = GOOD.format(port=1234, srv=1235)
	cases = [
		("    balance roundrobin\n    persist cookie B insert max-idle 30",
		 "invalid duration '30' for 'max-idle': a unit is needed, e.g. '30s'"),
		("    timeout connect 5000",
		 "invalid duration '5000' for 'timeout connect': a unit is needed; HAProxy reads a bare "
		 "number as milliseconds: write '5000ms' (or '5s')"),
		("    timeout server 1.5h", "invalid duration '1.5h': a whole number is needed; write '90m'"),
	]
	for new, msg in cases:
		old = "    timeout connect 1s" if new.startswith("    timeout") else "    balance roundrobin"
		conf = base.replace(old, new)
		line = conf.splitlines().index(new.splitlines()[-1]) + 1
		r = bollard_run("check", "-c", "{conf}", config=conf)
		assert r.returncode == 1, _out(r)
		assert "check.conf:%d: %s" % (line, msg) in r.stderr, _out(r)
	r = bollard_run("check", "-c", "{conf}", config=base.replace("    grace 2s", "    grace 0"))
	assert r.returncode == 0, _out(r)


def test_duplicate_persist_lines(bollard_run):
	conf = GOOD.format(port=1234, srv=1235).replace(
		"    balance roundrobin", "    balance roundrobin\n    persist source\n    persist source mask4 24")
	lines = conf.splitlines()
	first, second = lines.index("    persist source") + 1, lines.index("    persist source mask4 24") + 1
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	assert "check.conf:%d: duplicate 'persist source' (first at line %d)" % (second, first) in r.stderr, _out(r)


def test_bad_server_line_has_no_follow_on_error(bollard_run):
	# a refused server line is one error, not also "backend 'app' has no server"
	conf = GOOD.format(port=1234, srv=99999)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	assert r.stderr.splitlines() == ["%s:%d: invalid server address '127.0.0.1:99999': invalid port "
					 "(1..65535)" % (r.args[-1], len(conf.splitlines()))], _out(r)


def test_migration_hints(bollard_run):
	# issue 10 item 4: an HAProxy configuration brought over as it is
	conf = """\
global
    nbthread 2
    stats socket /run/haproxy/admin.sock mode 660

frontend web
    bind 127.0.0.1:1234
    default_backend app

backend app
    balance source
    cookie SERVERID insert indirect nocache
    option redispatch
    server app1 127.0.0.1:9001 check
"""
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	want = {
		2: "HAProxy's 'nbthread' is 'threads N' in bollard",
		3: "HAProxy's 'stats socket' is 'admin-socket PATH' in bollard",
		7: "HAProxy's 'default_backend' is 'default-backend NAME' in bollard",
		10: "HAProxy's 'balance source' is 'balance hash source' in bollard",
		11: "HAProxy's 'cookie' is 'persist cookie NAME insert' in bollard",
		12: "HAProxy's 'option redispatch' is 'on-server-down redispatch' in bollard",
		13: "HAProxy's 'server ... check' is 'health tcp|http ...' in bollard",
	}
	for line, msg in want.items():
		assert re.search(r"^\S*check\.conf:%d: .*%s" % (line, re.escape(msg)), r.stderr, re.M), \
			(line, _out(r))
	# and NGINX's words
	conf = """\
worker_processes 2;
frontend web
    listen 80;
    bind 127.0.0.1:1234
    default-backend app
backend app
    ip_hash;
    server 127.0.0.1:9001 weight=5;
"""
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1, _out(r)
	for line, msg in {1: "NGINX's 'worker_processes' is 'threads N' in bollard",
			  3: "NGINX's 'listen' is 'bind ADDR' in bollard",
			  7: "NGINX's 'ip_hash' is 'persist source' in bollard",
			  8: "NGINX's 'server ADDRESS' is 'server NAME IP:PORT' in bollard"}.items():
		assert re.search(r"^\S*check\.conf:%d: .*%s" % (line, re.escape(msg)), r.stderr, re.M), \
			(line, _out(r))


def test_include(bollard_run, bollard_factory, demo_apps, tmp_path):
	# issue 10 item 6: include FILE|DIR/*.conf, errors naming the included file
	app = demo_apps(1)[0]
	(tmp_path / "conf.d").mkdir()
	(tmp_path / "conf.d" / "10-app.conf").write_text(
		"backend app\n    balance roundrobin\n    server one 127.0.0.1:%d\n" % app.port)
	(tmp_path / "conf.d" / "20-bad.conf").write_text("    # a comment\n    wieght 5\n")
	main = "global\n    threads 1\n    log stdout\nfrontend web\n    bind 127.0.0.1:{port}\n" \
	       "    default-backend app\ninclude conf.d/*.conf\n"
	r = bollard_run("check", "-c", "{conf}", config=main.format(port=1234))
	assert r.returncode == 1, _out(r)
	assert "%s/conf.d/20-bad.conf:2: unknown keyword 'wieght' in backend section" % tmp_path \
		in r.stderr, _out(r)
	(tmp_path / "conf.d" / "20-bad.conf").unlink()
	r = bollard_run("check", "-c", "{conf}", config=main.format(port=1234))
	assert r.returncode == 0, _out(r)
	# and it runs: the backend of the included file answers
	b = bollard_factory(main)
	resp = util.request(b.port, "GET", "/")
	assert resp.status == 200, resp
	b.wait_log(lambda e: e.get("server") == "one")
	# an include loop is an error, not a hang
	(tmp_path / "conf.d" / "30-loop.conf").write_text("include ../conf.d/*.conf\n")
	r = bollard_run("check", "-c", "{conf}", config=main.format(port=1234))
	assert r.returncode == 1, _out(r)
	assert re.search(r"^%s/conf\.d/30-loop\.conf:1: include loop: \S*30-loop\.conf is already "
			 r"being read" % re.escape(str(tmp_path)), r.stderr, re.M), _out(r)


def test_environment_variables(bollard_run, bollard_factory, demo_apps, tmp_path, monkeypatch):
	# issue 10 item 6: ${VAR} and ${VAR:-default} in values, also in included files
	app = demo_apps(1)[0]
	(tmp_path / "conf.d").mkdir()
	(tmp_path / "conf.d" / "app.conf").write_text(
		"backend app\n    server ${APP_NAME:-one} 127.0.0.1:${APP_PORT}\n")
	main = "global\n    threads 1\n    log stdout\nfrontend web\n    bind 127.0.0.1:{port}\n" \
	       "    default-backend app\ninclude ${{CONF_DIR}}/*.conf\n"
	monkeypatch.setenv("CONF_DIR", "conf.d")
	monkeypatch.delenv("APP_PORT", raising=False)
	monkeypatch.delenv("APP_NAME", raising=False)
	r = bollard_run("check", "-c", "{conf}", config=main.format(port=1234))
	assert r.returncode == 1, _out(r)
	assert "%s/conf.d/app.conf:2: environment variable 'APP_PORT' is not set (write " \
	       "${APP_PORT:-default} to give a default)" % tmp_path in r.stderr, _out(r)
	monkeypatch.setenv("APP_PORT", str(app.port))
	b = bollard_factory(main)
	assert util.request(b.port, "GET", "/").status == 200
	b.wait_log(lambda e: e.get("server") == "one")


def test_ctl_reaches_the_instance_through_a_file_with_errors(bollard_factory, bollard_bin, tmp_path):
	# issue 10 item 3: the file is being edited (or was refused by the last
	# reload); the running instance keeps serving and must stay reachable
	conf = GOOD.replace("    grace 2s", "    grace 2s\n    admin-socket {tmp}/admin.sock")
	b = bollard_factory(conf, srv=util.free_port())
	sock_line = b.config_text.splitlines().index("    admin-socket %s/admin.sock" % tmp_path) + 1
	util.wait_until(lambda: (tmp_path / "admin.sock").exists(), what="the admin socket")
	broken = b.config_text.replace("    balance roundrobin", "    balanse roundrobin")
	b.conf_path.write_text(broken)
	r = subprocess.run([bollard_bin, "ctl", "-c", str(b.conf_path), "show", "info"],
			   capture_output=True, text=True, timeout=30)
	assert r.returncode == 0, _out(r)
	assert "version" in r.stdout, _out(r)
	assert "bollard ctl: %s has errors (bollard check -c %s); using admin-socket %s/admin.sock " \
	       "from %s:%d" % (b.conf_path, b.conf_path, tmp_path, b.conf_path, sock_line) in r.stderr, _out(r)
	# the socket line in an included file: named with its file and line
	(tmp_path / "admin.inc").write_text("global\n    admin-socket %s/admin.sock\n" % tmp_path)
	b.conf_path.write_text(broken.replace("    admin-socket %s/admin.sock" % tmp_path, "include admin.inc"))
	r = subprocess.run([bollard_bin, "ctl", "-c", str(b.conf_path), "show", "info"],
			   capture_output=True, text=True, timeout=30)
	assert r.returncode == 0, _out(r)
	assert "from %s/admin.inc:2" % tmp_path in r.stderr, _out(r)
	# no admin-socket at all: said so, exit 1
	b.conf_path.write_text(GOOD.format(port=1234, srv=1235))
	r = subprocess.run([bollard_bin, "ctl", "-c", str(b.conf_path), "show", "info"],
			   capture_output=True, text=True, timeout=30)
	assert r.returncode == 1, _out(r)
	assert "bollard ctl: no admin-socket in %s" % b.conf_path in r.stderr, _out(r)
