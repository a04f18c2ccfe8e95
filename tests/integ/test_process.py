"""Process conventions of a daemon (issue 10 item 7, bollard.conf(5)
`user`, `group`, `pidfile`, `log syslog`, `log udp`): bollard started as
root binds, then drops to `user`/`group` (seen in /proc/PID/status); without
them it warns once that it runs as root; `pidfile` holds its PID while it
runs; the access log and the error log go to a syslog socket (RFC 3164, as
syslog(3) writes to /dev/log) or a UDP collector (RFC 5424); a privileged
port refused says how to grant CAP_NET_BIND_SERVICE. The syslog and UDP
receivers are sockets this test creates."""

import grp
import os
import pathlib
import pwd
import re
import shutil
import socket
import subprocess
import tempfile

import pytest

import util

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

CONF = ("global\n    threads 2\n%s"
	"defaults\n    timeout connect 1s\n    timeout server 10s\n"
	"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
	"backend be\n    persist cookie BOLLARD insert\n    server %s 127.0.0.1:%d\n")

# syslog(3) on /dev/log: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG (RFC 3164 4.1)
RFC3164_RE = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} ([\w.-]+)\[(\d+)\]: (.*)$",
			re.S)
# RFC 5424 6: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
RFC5424_RE = re.compile(r"^<(\d+)>1 (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (\S+) (\S+) "
			r"(\d+) - - (.*)$", re.S)
COMBINED_PART = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "GET (\S+) HTTP/1\.1" 200 \d+ ')


def _conf(app, global_lines):
	return CONF % ("".join("    %s\n" % g for g in global_lines), app.name, app.port)


def _status(pid, key):
	for ln in open("/proc/%d/status" % pid):
		if ln.startswith(key + ":"):
			return ln.split()[1:]
	raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def test_syslog_to_a_unix_socket(demo_apps, bollard_factory, tmp_path):
	(app,) = demo_apps(1)
	path = str(tmp_path / "log.sock")
	rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	rx.bind(path)
	try:
		b = bollard_factory(_conf(app, ["log syslog facility local3 tag edge socket %s" % path]))
		for i in range(3):
			assert util.request(b.port, "GET", "/whoami?s=%d" % i).status == 200
		msgs = util.recv_datagrams(rx, lambda g: sum("/whoami?s=" in m for m in g) >= 3)
	finally:
		rx.close()
	parsed = [RFC3164_RE.match(m) for m in msgs]
	assert all(parsed), [m for m, p in zip(msgs, parsed) if not p]
	for p in parsed:
		assert p[2] == "edge" and int(p[3]) == b.pid, p.groups()
	access = [p for p in parsed if "/whoami?s=" in p[4]]
	assert len(access) == 3
	for p in access:
		assert int(p[1]) == 19 * 8 + 6, p.groups()       # local3.info
		assert COMBINED_PART.match(p[4]) and "persist=" in p[4], p[4]
		assert not p[4].endswith("\n")                 # one line, one datagram
	# the error log goes there too, with its level as the severity
	started = [p for p in parsed if re.match(r"bollard \S+ started", p[4])]
	assert started and int(started[0][1]) == 19 * 8 + 6, msgs
	if os.geteuid() == 0:
		root = [p for p in parsed if p[4].startswith("running as root")]
		assert len(root) == 1 and int(root[0][1]) == 19 * 8 + 4, msgs   # local3.warning


def test_syslog_udp_to_a_collector(demo_apps, bollard_factory):
	(app,) = demo_apps(1)
	rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	rx.bind(("127.0.0.1", 0))
	port = rx.getsockname()[1]
	try:
		b = bollard_factory(_conf(app, ["log udp 127.0.0.1:%d" % port,
						"log-format json"]))
		assert util.request(b.port, "GET", "/whoami?udp=1").status == 200
		msgs = util.recv_datagrams(rx, lambda g: any("/whoami?udp=1" in m for m in g))
	finally:
		rx.close()
	parsed = [RFC5424_RE.match(m) for m in msgs]
	assert all(parsed), [m for m, p in zip(msgs, parsed) if not p]
	for p in parsed:
		assert p[3] == socket.gethostname() and p[4] == "bollard" and int(p[5]) == b.pid
	(acc,) = [p for p in parsed if "/whoami?udp=1" in p[6]]
	assert int(acc[1]) == 3 * 8 + 6                    # daemon.info, the default
	assert acc[6].startswith("{") and '"server":"app1"' in acc[6], acc[6]


def test_syslog_socket_missing_is_a_clear_start_error(bollard_run, tmp_path):
	conf = CONF % ("    log syslog socket %s/nothing.sock\n" % tmp_path, "a", 9)
	conf = conf.replace("{port}", str(util.free_port()))
	r = bollard_run("-c", "{conf}", config=conf)
	assert r.returncode == 1, r
	assert "log syslog: cannot reach %s/nothing.sock" % tmp_path in r.stderr, r.stderr
	assert "started" not in r.stderr


@needs_root
def test_user_and_group_drop_root(demo_apps, bollard_factory, bollard_bin, tmp_path, request):
	(app,) = demo_apps(1)
	nobody = pwd.getpwnam("nobody")
	nogroup = grp.getgrgid(nobody.pw_gid).gr_name
	# a directory nobody can reach (pytest's own are root's, 0700), as
	# /run/bollard is the service user's
	run = pathlib.Path(tempfile.mkdtemp(prefix="bollard-run-"))
	request.addfinalizer(lambda: shutil.rmtree(run, ignore_errors=True))
	os.chmod(run, 0o711)
	sock = run / "adm.sock"
	pidfile = tmp_path / "bollard.pid"
	b = bollard_factory(_conf(app, ["user nobody", "group %s" % nogroup,
					"admin-socket %s" % sock, "pidfile %s" % pidfile]))
	util.wait_until(lambda: "running as user nobody" in b.stderr_text(),
			what="the drop to be logged")
	uids = _status(b.pid, "Uid")
	gids = _status(b.pid, "Gid")
	assert uids == [str(nobody.pw_uid)] * 4, uids     # real, effective, saved, fs
	assert gids == [str(nobody.pw_gid)] * 4, gids
	groups = _status(b.pid, "Groups")
	assert set(groups) <= {str(g.gr_gid) for g in grp.getgrall() if "nobody" in g.gr_mem} | \
		{str(nobody.pw_gid)}, groups
	assert "running as root" not in b.stderr_text()
	# still serving, and the admin socket is the user's
	assert util.request(b.port, "GET", "/whoami").status == 200
	assert os.stat(sock).st_uid == nobody.pw_uid
	# the binary as the user may run it: the checkout may sit in a
	# directory only root can enter (a clone under mktemp -d is 0700)
	ctl_bin = run / "bollard"
	shutil.copy(bollard_bin, ctl_bin)
	os.chmod(ctl_bin, 0o755)
	r = subprocess.run([str(ctl_bin), "ctl", "-s", str(sock), "show", "info"],
			   capture_output=True, text=True, timeout=10,
			   preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
	assert r.returncode == 0 and "version" in r.stdout, r
	assert pidfile.read_text() == "%d\n" % b.pid


def test_root_without_user_warns_once_and_pidfile(demo_apps, bollard_factory, tmp_path):
	(app,) = demo_apps(1)
	pidfile = tmp_path / "run" / "bollard.pid"
	pidfile.parent.mkdir()
	b = bollard_factory(_conf(app, ["pidfile %s" % pidfile]))
	util.wait_until(pidfile.exists, what="the pidfile")
	assert pidfile.read_text() == "%d\n" % b.pid
	assert [p.name for p in pidfile.parent.iterdir()] == ["bollard.pid"]   # no temporary left
	assert util.request(b.port, "GET", "/whoami").status == 200
	err = b.stderr_text()
	if os.geteuid() == 0:
		assert err.count("running as root") == 1, err
		assert "user` and `group`" in err
	else:
		assert "running as root" not in err
	assert b.stop() == 0
	assert not pidfile.exists(), "pidfile left after a clean stop"


def test_unknown_user_is_a_check_error(bollard_run):
	conf = CONF % ("    user no-such-user-x\n    group no-such-group-x\n", "a", 9)
	conf = conf.replace("{port}", str(util.free_port()))
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode == 1
	out = r.stdout + r.stderr
	assert re.search(r"check\.conf:3: unknown user 'no-such-user-x'", out), out
	assert re.search(r"check\.conf:4: unknown group 'no-such-group-x'", out), out


@needs_root
def test_privileged_port_refused_says_cap_net_bind_service(bollard_bin, request):
	start = int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read())
	if start <= 1:
		pytest.skip("this kernel lets anyone bind any port")
	port = min(start - 1, 1023)
	# a configuration nobody can read (pytest's directories are root's)
	d = pathlib.Path(tempfile.mkdtemp(prefix="bollard-priv-"))
	request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
	os.chmod(d, 0o755)
	nobody = pwd.getpwnam("nobody")
	# the cookie key, readable by that user alone: the start gets as far as
	# binding (without it, the default ./bollard.key in / could not be made)
	key = d / "bollard.key"
	key.write_text(os.urandom(32).hex() + "\n")
	os.chmod(key, 0o600)
	os.chown(key, nobody.pw_uid, nobody.pw_gid)
	conf = d / "priv.conf"
	conf.write_text(CONF.replace("{port}", str(port)) % ("    secret-file %s\n" % key, "a", 9))
	os.chmod(conf, 0o644)
	# an unprivileged user, as a service without the capability runs
	r = subprocess.run(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
			    "--clear-groups", bollard_bin, "-c", str(conf)], capture_output=True,
			   text=True, timeout=20, cwd="/")
	assert r.returncode == 1, r
	assert "cannot bind 127.0.0.1:%d: Permission denied" % port in r.stderr, r.stderr
	assert "CAP_NET_BIND_SERVICE" in r.stderr and "AmbientCapabilities" in r.stderr
	assert "`user` and `group`" in r.stderr


def test_syslog_daemon_behind_drops_lines_never_requests(demo_apps, bollard_factory, tmp_path):
	"""A log daemon that reads nothing: its socket queue fills (a few
	datagrams), then lines are dropped and counted while every request is
	still answered at once."""
	(app,) = demo_apps(1)
	path = str(tmp_path / "full.sock")
	rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	rx.bind(path)
	try:
		b = bollard_factory(_conf(app, ["log syslog socket %s" % path,
						"stats-listen 127.0.0.1:{port_stats}"]))
		with util.Conn.connect(b.port) as c:
			for i in range(200):
				c.send(util.build_request("GET", "/whoami?n=%d" % i))
				assert util.read_response(c).status == 200
		def dropped():
			m = re.search(r"^bollard_log_dropped_total (\d+)$",
				      util.request(b.ports["port_stats"], "GET", "/metrics").text(), re.M)
			return m and int(m.group(1)) > 0
		util.wait_until(dropped, what="bollard_log_dropped_total > 0")
	finally:
		rx.close()
