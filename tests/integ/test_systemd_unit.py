"""contrib/bollard.service (issue 10 item 9), without a running systemd:

- `systemd-analyze verify` accepts the unit as `make install` writes it;
- its commands, run as its User= and Group= with the files the operator
  documents (a 0600 secret-file the service generates, 0600 stats-auth
  users and JWT key owned by that user, the default configuration of
  contrib/bollard.conf), start, serve and reload; ExecReload checks the file
  first and a bad file fails the reload before any signal is sent;
- bollard speaks the sd_notify protocol to $NOTIFY_SOCKET (a socket this
  test creates): READY=1 once serving, RELOADING=1 with MONOTONIC_USEC then
  READY=1 around a reload, STOPPING=1 at the stop.

The unit's user is created as `make install` does (contrib/bollard.sysusers)
when the machine lacks it, and removed again afterwards."""

import os
import pathlib
import pwd
import grp
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import util

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib/bollard.service"
SAN_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _unit():
	keys = {}
	for ln in UNIT.read_text().splitlines():
		if ln and not ln.startswith(("#", "[")):
			k, _, v = ln.partition("=")
			keys.setdefault(k, []).append(v)
	return keys


def test_unit_shape():
	u = _unit()
	assert u["Type"] == ["notify"] and u["NotifyAccess"] == ["main"]
	assert "DynamicUser" not in u
	assert u["User"] == ["bollard"] and u["Group"] == ["bollard"]
	# the reload validates first, then signals
	assert u["ExecReload"] == ["/usr/local/bin/bollard check -c /etc/bollard/bollard.conf",
				   "/bin/kill -HUP $MAINPID"]
	assert u["ExecStartPre"] == ["/usr/local/bin/bollard check -c /etc/bollard/bollard.conf"]
	# hardening kept
	for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
		     ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("RestrictSUIDSGID", "yes"),
		     ("MemoryDenyWriteExecute", "yes"), ("UMask", "0027")):
		assert u[k] == [v], k
	assert u["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
	assert "~@privileged" in u["SystemCallFilter"]
	for d in ("RuntimeDirectory", "StateDirectory", "LogsDirectory", "ConfigurationDirectory"):
		assert u[d] == ["bollard"], d
	sysusers = (ROOT / "contrib/bollard.sysusers").read_text()
	assert re.search(r"^u bollard - ", sysusers, re.M), sysusers


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_installed_unit(tmp_path):
	"""The unit as installed for a prefix whose binary and man pages exist:
	verify must say nothing at all. DESTDIR=/ installs at the absolute
	PREFIX without touching this machine's users."""
	prefix = tmp_path / "usr"
	r = subprocess.run(["make", "-C", str(ROOT), "install", "DESTDIR=/", "PREFIX=%s" % prefix,
			    "SYSCONFDIR=%s" % (tmp_path / "etc")], capture_output=True, text=True,
			   timeout=600)
	assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
	unit = prefix / "lib/systemd/system/bollard.service"
	text = unit.read_text()
	assert "ExecStart=%s/bin/bollard -c %s/bollard/bollard.conf" % (prefix, tmp_path / "etc") \
		in text, text
	env = dict(os.environ, MANPATH=str(prefix / "share/man"))
	r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
			   timeout=60, env=env)
	assert r.returncode == 0 and (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr
	r = subprocess.run(["systemd-sysusers", "--root=%s" % tmp_path, "--dry-run",
			    str(prefix / "lib/sysusers.d/bollard.conf")], capture_output=True,
			   text=True, timeout=60)
	assert r.returncode == 0 and "user 'bollard'" in r.stdout + r.stderr, r


@pytest.fixture
def unit_user():
	"""The unit's User=/Group=, created as make install does if missing."""
	if os.geteuid() != 0:
		pytest.skip("running the unit's commands as its user needs root")
	name = _unit()["User"][0]
	created = False
	try:
		pwd.getpwnam(name)
	except KeyError:
		r = subprocess.run(["systemd-sysusers", str(ROOT / "contrib/bollard.sysusers")],
				   capture_output=True, text=True, timeout=60)
		assert r.returncode == 0, r.stderr
		created = True
	pw = pwd.getpwnam(name)
	assert grp.getgrnam(_unit()["Group"][0]).gr_gid == pw.pw_gid
	yield pw
	if created:
		subprocess.run(["userdel", name], capture_output=True, timeout=60)
		subprocess.run(["groupdel", name], capture_output=True, timeout=60)


def _recv(sock, want):
	"""Notifications until one satisfies want; returns them all."""
	return util.recv_datagrams(sock, lambda got: any(want(m) for m in got),
				   what="sd_notify messages")


def _as_user(pw, cmd):
	return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups"] + cmd


def test_unit_commands_as_its_user_with_sd_notify(unit_user, demo_apps, bollard_bin, request):
	pw = unit_user
	(app,) = demo_apps(1)
	u = _unit()
	# the directories systemd would make: /etc/bollard (root's, read-only),
	# /var/lib/bollard and /run/bollard (the user's, 0750)
	top = pathlib.Path(tempfile.mkdtemp(prefix="bollard-unit-"))
	request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
	os.chmod(top, 0o755)
	etc, state, run = top / "etc", top / "state", top / "run"
	etc.mkdir(mode=0o755)
	for d in (state, run):
		d.mkdir(mode=0o750)
		os.chown(d, pw.pw_uid, pw.pw_gid)
	# secrets only the service user may read, as the unit's comment says
	users = etc / "stats.users"
	users.write_text("ops:a long passphrase\n")
	jwt = etc / "jwt.key"
	jwt.write_text("0123456789abcdef0123456789abcdef\n")
	for f in (users, jwt):
		os.chown(f, pw.pw_uid, pw.pw_gid)
		os.chmod(f, 0o600)
	front, stats = util.free_port(), util.free_port()
	conf = (ROOT / "contrib/bollard.conf").read_text()
	conf = conf.replace("/run/bollard/", "%s/" % run).replace("/var/lib/bollard/", "%s/" % state)
	conf = conf.replace("127.0.0.1:8080", "127.0.0.1:%d" % front)
	conf = conf.replace("127.0.0.1:8404", "127.0.0.1:%d\n    stats-auth %s" % (stats, users))
	conf = conf.replace("127.0.0.1:9001", "127.0.0.1:%d" % app.port)
	conf = conf.replace("    persist cookie BOLLARD insert",
			    "    persist jwt sub verify hs256 %s\n    persist cookie BOLLARD insert" % jwt)
	assert conf.count(str(top)) >= 4, conf
	path = etc / "bollard.conf"
	path.write_text(conf)

	def cmd(line, mainpid=None):
		line = line.replace("/usr/local/bin/bollard", bollard_bin)
		line = line.replace("/etc/bollard/bollard.conf", str(path))
		if mainpid is not None:
			line = line.replace("$MAINPID", str(mainpid))
		return _as_user(pw, shlex.split(line))

	def run_cmds(lines, mainpid):
		"""As systemd does: in order, the first failure fails them all."""
		for ln in lines:
			r = subprocess.run(cmd(ln, mainpid), capture_output=True, text=True, timeout=30,
					   cwd=str(state))
			if r.returncode != 0:
				return r
		return r

	notify = run / "notify.sock"
	rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	rx.bind(str(notify))
	os.chown(notify, pw.pw_uid, pw.pw_gid)
	request.addfinalizer(rx.close)
	(pre,) = u["ExecStartPre"]
	r = run_cmds([pre], None)
	assert r.returncode == 0, r.stdout + r.stderr
	(start,) = u["ExecStart"]
	err = top / "bollard.err"
	env = dict(os.environ, NOTIFY_SOCKET=str(notify), ASAN_OPTIONS="detect_leaks=1")
	with open(err, "wb") as f:
		p = subprocess.Popen(cmd(start), stdout=subprocess.DEVNULL, stderr=f,
				     stdin=subprocess.DEVNULL, env=env, cwd=str(state))
	request.addfinalizer(lambda: util.stop_process(p))
	_recv(rx, lambda m: "READY=1" in m)
	assert p.poll() is None, err.read_text()
	# it runs as the unit's user, and serves
	status = open("/proc/%d/status" % p.pid).read()
	assert re.search(r"^Uid:\s+%d\s+%d" % (pw.pw_uid, pw.pw_uid), status, re.M), status
	assert util.request(front, "GET", "/whoami").status == 200
	assert util.request(stats, "GET", "/api/info").status == 401  # stats-auth read as the user
	key = state / "bollard.key"
	assert key.exists() and os.stat(key).st_uid == pw.pw_uid
	assert os.stat(key).st_mode & 0o077 == 0

	# a good reload: check, then SIGHUP; RELOADING=1 then READY=1
	before = int(time.monotonic() * 1e6)
	r = run_cmds(u["ExecReload"], p.pid)
	assert r.returncode == 0, r.stdout + r.stderr
	msgs = _recv(rx, lambda m: m.startswith("READY=1"))
	after = int(time.monotonic() * 1e6)
	(rel,) = [m for m in msgs if "RELOADING=1" in m]
	usec = int(re.search(r"^MONOTONIC_USEC=(\d+)$", rel, re.M).group(1))
	assert before <= usec <= after, (before, usec, after)
	assert msgs.index(rel) < max(i for i, m in enumerate(msgs) if m.startswith("READY=1"))
	util.wait_until(lambda: "reload" in err.read_text(), what="the reload in the error log")

	# a bad file fails the reload at its check: no signal, still serving
	path.write_text(conf + "\nbackend broken\n    blance nothing\n")
	r = run_cmds(u["ExecReload"], p.pid)
	assert r.returncode != 0 and "blance" in r.stdout + r.stderr, r
	assert util.request(front, "GET", "/whoami").status == 200
	assert p.poll() is None

	# the stop; datagrams keep their order, so the first one after the
	# failed reload being STOPPING=1 proves that reload never reached bollard
	os.kill(p.pid, signal.SIGTERM)
	msgs = _recv(rx, lambda m: "STOPPING=1" in m)
	assert msgs[0] == "STOPPING=1", msgs
	assert p.wait(timeout=15) == 0, err.read_text()
	text = err.read_text()
	assert not any(m in text for m in SAN_MARKERS), text
