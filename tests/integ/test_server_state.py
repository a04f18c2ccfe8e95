"""The operator's state of servers survives reloads and restarts (issue 10
item 8, as HAProxy's server-state-file): drain/maint states and weights set
at runtime and servers added with `add server` are kept by a reload, saved
with the state file and restored at start, even after a crash; `show
servers` says where each state came from (column and field `origin`). A
weight the configuration file changes meanwhile wins; a server the file
comes to define is the file's.
"""

import json
import os
import signal
import struct
import subprocess
from pathlib import Path

import util


def conf(apps, tmp, weights=None):
	weights = weights or {}
	servers = "".join("    server %s 127.0.0.1:%d weight %d\n"
			  % (a.name, a.port, weights.get(a.name, 100)) for a in apps)
	return ("global\n    threads 2\n    log stdout\n    log-format json\n"
		"    admin-socket %s/adm.sock\n    state-file %s/bollard.state\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    balance roundrobin\n    persist header X-User\n%s"
		% (tmp, tmp, servers))


def ctl(bin_, tmp, *cmd):
	r = subprocess.run([bin_, "ctl", "-s", str(Path(tmp) / "adm.sock")] + list(cmd),
			   capture_output=True, text=True, timeout=15)
	assert r.returncode == 0, r
	return r.stdout


def servers(bin_, tmp):
	doc = json.loads(ctl(bin_, tmp, "json", "show", "servers"))
	return {s["server"]: s for s in doc["servers"]}


def text_origins(bin_, tmp):
	lines = ctl(bin_, tmp, "show", "servers").splitlines()
	assert lines[0].split()[-1] == "origin", lines[0]
	return {ln.split()[1]: ln.split()[-1] for ln in lines[1:]}


def saved_servers(path):
	"""The operator's records of the state file (version 2, documented in
	src/state.c and src/srvstate.h), {server: (state, flags, weight)}."""
	data = Path(path).read_bytes()
	assert data[:14] == b"bollard-state\n"
	version, length = struct.unpack_from("<II", data, 14)
	assert version == 2, version
	p, off = data[22:22 + length], 16
	nbackends = struct.unpack_from("<I", p, 12)[0]
	out = {}

	def name():
		nonlocal off
		n = p[off]
		off += 1 + n
		return p[off - n:off].decode()
	for _ in range(nbackends):
		name()
		nids = struct.unpack_from("<I", p, off)[0]
		off += 4
		for _ in range(nids):
			name()
		nrec = struct.unpack_from("<I", p, off)[0]
		off += 4
		for _ in range(nrec):
			srv = name()
			state, flags, weight = p[off], p[off + 1], struct.unpack_from("<I", p, off + 2)[0]
			off += 15  # state, flags, weight, configured weight, maxconn, backup
			name()  # address
			out[srv] = (state, flags, weight)
	assert off == len(p)
	return out


def session_on(b, server, tries=200):
	"""An X-User key that the balancer placed on server."""
	for i in range(tries):
		r = util.request(b.port, "GET", "/whoami", [("X-User", "u%d" % i)])
		if r.text().strip() == server:
			return "u%d" % i
	raise AssertionError("no session landed on " + server)


def test_operator_state_survives_reload_crash_and_restart(demo_apps, bollard_factory, bollard_bin,
							  tmp_path):
	apps = demo_apps(4)
	cfg_apps, spare = apps[:3], apps[3]
	tmp = str(tmp_path)
	b = bollard_factory(conf(cfg_apps, tmp))
	assert set(text_origins(bollard_bin, tmp).values()) == {"config"}
	ctl(bollard_bin, tmp, "set", "server", "be/app1", "state", "drain")
	ctl(bollard_bin, tmp, "set", "server", "be/app2", "weight", "50")
	ctl(bollard_bin, tmp, "add", "server", "be/app4", "127.0.0.1:%d" % spare.port, "weight", "30",
	    "maxconn", "7")
	ctl(bollard_bin, tmp, "set", "server", "be/app4", "state", "ready")
	want = {"app1": ("drain", 100, "runtime"), "app2": ("ready", 50, "runtime"),
		"app3": ("ready", 100, "config"), "app4": ("ready", 30, "runtime")}

	def check(origin_of_runtime):
		got = servers(bollard_bin, tmp)
		assert set(got) == set(want), got
		for name, (state, weight, origin) in want.items():
			if origin == "runtime":
				origin = origin_of_runtime
			assert (got[name]["state"], got[name]["weight"], got[name]["origin"]) == \
				(state, weight, origin), (name, got[name])
		assert got["app4"]["address"] == "127.0.0.1:%d" % spare.port
		assert text_origins(bollard_bin, tmp) == {n: o if o == "config" else origin_of_runtime
							 for n, (_, _, o) in want.items()}
	check("runtime")
	key = session_on(b, "app4")

	# a reload keeps all of it, and the session on the added server
	ctl(bollard_bin, tmp, "reload")
	check("runtime")
	r = util.request(b.port, "GET", "/whoami", [("X-User", key)])
	assert r.text().strip() == "app4"

	# a crash: once the change is in the state file, kill -9 loses nothing
	ctl(bollard_bin, tmp, "set", "server", "be/app3", "state", "maint")
	want["app3"] = ("maint", 100, "runtime")
	util.wait_until(lambda: (tmp_path / "bollard.state").exists() and saved_servers(
		tmp_path / "bollard.state").get("app3", (0,))[0] == 2, what="app3 maint in the state file")
	saved = saved_servers(tmp_path / "bollard.state")
	assert saved["app1"][0] == 1 and saved["app2"][2] == 50 and saved["app4"][2] == 30, saved
	assert saved["app4"][1] & 4  # added at runtime
	os.kill(b.pid, signal.SIGKILL)
	b.proc.wait(10)
	b2 = bollard_factory(conf(cfg_apps, tmp), port=b.port)
	check("state-file")
	assert "operator state of 4 servers restored (1 added at runtime)" in b2.stderr_text(), \
		b2.stderr_text()
	# the table entry of the added server came back with it
	r = util.request(b2.port, "GET", "/whoami", [("X-User", key)])
	assert r.text().strip() == "app4"
	e = b2.wait_log(lambda x: x.get("server") == "app4")[0]
	assert e["persist"] == "hit", e

	# the file changes app2's weight and defines spare: the file wins for
	# them, the operator's states stay; after a graceful restart too
	with_spare = cfg_apps + [spare]
	Path(b2.conf_path).write_text(conf(with_spare, tmp, weights={"app2": 80, "app4": 60})
				      .format(port=b.port))
	ctl(bollard_bin, tmp, "reload")
	want["app2"] = ("ready", 80, "config")
	want["app4"] = ("ready", 60, "runtime")
	check("state-file")  # a reload keeps where a state came from
	assert b2.stop() == 0
	b3 = bollard_factory(conf(with_spare, tmp, weights={"app2": 80, "app4": 60}), port=b.port)
	check("state-file")
	assert saved_servers(tmp_path / "bollard.state")["app4"][1] & 4 == 0
