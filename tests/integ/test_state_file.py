"""The state file through the real binary (SPEC §2, §3 `state-file`, issue 3
item 8): persistence tables are saved periodically and at a graceful stop,
restored at the next start, and a damaged state file costs the sessions,
never the start.

Each test runs `persist source` (the client is always 127.0.0.1, so one
entry) with the JSON access log, reads decisions from the fields "persist"
and "persist_method", and reads table contents with `bollard ctl show
sessions`. Bollard's own messages (restored, ignored) go to its stderr.
"""

import itertools
import os
import signal
import stat
import subprocess

import util

_seq = itertools.count(1)

STATE_GLOBAL = "    state-file {tmp}/bollard.state\n    admin-socket {tmp}/bollard.sock\n"


def state_config(config_for, servers):
	return config_for(servers, log_format="json", global_extra=STATE_GLOBAL,
			  backend_extra="    persist source expire 30m")


def visit(b):
	"""One GET /whoami with a unique query: (server, access-log entry)."""
	t = "/whoami?t=%d" % next(_seq)
	r = util.request(b.port, "GET", t)
	assert r.status == 200, r
	e = b.wait_log(lambda x: x.get("target") == t)[0]
	return r.text().strip(), e


def sessions(bollard_bin, b, backend="be"):
	"""`show sessions BACKEND` rows as lists of columns (header checked)."""
	r = subprocess.run([bollard_bin, "ctl", "-c", str(b.conf_path), "show", "sessions", backend],
			   capture_output=True, text=True, timeout=15)
	assert r.returncode == 0, r.stderr + r.stdout
	lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
	assert lines and lines[0].split() == ["backend", "method", "key", "server", "idle_s", "age_s"], \
		r.stdout
	return [ln.split() for ln in lines[1:]]


def stop_ok(b):
	assert b.stop(signal.SIGTERM, timeout=15) == 0, b.stderr_text()


def test_tables_survive_a_restart(demo_apps, bollard_factory, config_for, bollard_bin, tmp_path):
	apps = demo_apps(3)
	conf = state_config(config_for, apps)
	b = bollard_factory(conf)
	home, e = visit(b)
	assert (e.get("persist"), e.get("persist_method")) == ("new", "source"), e
	for _ in range(3):
		srv, e = visit(b)
		assert srv == home
		assert e.get("persist") == "hit", e
	stop_ok(b)

	state = tmp_path / "bollard.state"
	assert state.exists(), b.stderr_text()
	assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
	assert not (tmp_path / "bollard.state.tmp").exists()

	b2 = bollard_factory(conf)
	assert "1 persistence entries restored, 0 dropped" in b2.stderr_text()
	rows = sessions(bollard_bin, b2)
	assert [r[:4] for r in rows] == [["be", "source", "127.0.0.1", home]], rows
	srv, e = visit(b2)
	assert srv == home
	assert (e.get("persist"), e.get("persist_method")) == ("hit", "source"), e


def test_saved_periodically(demo_apps, bollard_factory, config_for):
	"""No stop needed: the control thread saves every few seconds, so a
	crash loses seconds of sessions, not all of them."""
	apps = demo_apps(2)
	conf = state_config(config_for, apps)
	b = bollard_factory(conf)
	home, _ = visit(b)
	state = os.path.join(os.path.dirname(str(b.conf_path)), "bollard.state")
	util.wait_until(lambda: os.path.exists(state), timeout=20, what="a periodic save")
	# A crash (SIGKILL) after the save: the next start restores it.
	assert b.stop(signal.SIGKILL) != 0
	os.unlink(os.path.join(os.path.dirname(state), "bollard.sock"))
	b2 = bollard_factory(conf)
	assert "1 persistence entries restored" in b2.stderr_text()
	srv, e = visit(b2)
	assert srv == home
	assert e.get("persist") == "hit", e


def test_entries_of_removed_servers_are_dropped(demo_apps, bollard_factory, config_for,
						bollard_bin):
	apps = demo_apps(3)
	b = bollard_factory(state_config(config_for, apps))
	home, _ = visit(b)
	stop_ok(b)

	# The home server is gone from the configuration; the others moved.
	rest = [a for a in apps if a.name != home]
	b2 = bollard_factory(state_config(config_for, list(reversed(rest))))
	assert "0 persistence entries restored, 1 dropped" in b2.stderr_text()
	assert sessions(bollard_bin, b2) == []
	srv, e = visit(b2)
	assert srv in [a.name for a in rest]
	assert (e.get("persist"), e.get("persist_method")) == ("new", "source"), e


def test_entries_follow_server_names(demo_apps, bollard_factory, config_for, bollard_bin):
	apps = demo_apps(3)
	b = bollard_factory(state_config(config_for, apps))
	home, _ = visit(b)
	stop_ok(b)

	# Same servers in another order: the entry keeps its server by name.
	b2 = bollard_factory(state_config(config_for, list(reversed(apps))))
	rows = sessions(bollard_bin, b2)
	assert [r[:4] for r in rows] == [["be", "source", "127.0.0.1", home]], rows
	srv, e = visit(b2)
	assert srv == home
	assert e.get("persist") == "hit", e


def _check_ignored(b, bollard_bin):
	err = b.stderr_text()
	assert "state file ignored" in err, err
	assert sessions(bollard_bin, b) == []
	_, e = visit(b)
	assert (e.get("persist"), e.get("persist_method")) == ("new", "source"), e


def test_corrupt_state_file_is_ignored(demo_apps, bollard_factory, config_for, bollard_bin,
				       tmp_path):
	apps = demo_apps(2)
	conf = state_config(config_for, apps)
	state = tmp_path / "bollard.state"

	# Foreign content.
	state.write_bytes(b"this is not a state file\n" * 10)
	b = bollard_factory(conf)
	_check_ignored(b, bollard_bin)
	stop_ok(b)
	# The stop replaced it with a good file holding the new entry.
	good = state.read_bytes()
	assert good.startswith(b"bollard-state\n")

	# A good file cut short, then one with a flipped byte in its last table.
	for bad in (good[:len(good) - 10], good[:-20] + bytes([good[-20] ^ 0x40]) + good[-19:]):
		state.write_bytes(bad)
		b = bollard_factory(conf)
		_check_ignored(b, bollard_bin)
		assert b.alive()
		stop_ok(b)

	# And the intact file restores again.
	state.write_bytes(good)
	b = bollard_factory(conf)
	assert "1 persistence entries restored" in b.stderr_text()
	assert len(sessions(bollard_bin, b)) == 1
